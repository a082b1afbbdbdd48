using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>The host model: pCPUs, pinning, physical APIC IDs, ownership, and the options' checks.</summary>
public class PassthroughHostTests
{
    [Fact]
    public void Default_HostHasTwiceTheCpusAndTheVmGetsEveryOtherOne()
    {
        var rig = new PassthroughRig(vcpus: 3);
        PassthroughHost host = rig.Host;

        Assert.Equal(6, host.CpuCount);
        Assert.Equal([1, 3, 5], Enumerable.Range(0, 3).Select(host.PcpuOf));
        Assert.Equal([-1, 0, -1, 1, -1, 2], Enumerable.Range(0, 6).Select(host.VcpuOn));
        Assert.Equal([false, true, false, true, false, true], Enumerable.Range(0, 6).Select(host.IsOwnedByVm));
    }

    [Fact]
    public void PhysicalIds_Are0x10Plus2p_AndDifferFromTheVirtualOnes()
    {
        var rig = new PassthroughRig(vcpus: 3);
        PassthroughHost host = rig.Host;

        Assert.Equal([0x10u, 0x12u, 0x14u, 0x16u, 0x18u, 0x1Au], Enumerable.Range(0, 6).Select(host.PhysicalApicId));
        for (int i = 0; i < 3; i++)
        {
            int pcpu = host.PcpuOf(i);
            Assert.NotEqual(rig[i].Apic.Id, host.PhysicalApicId(pcpu));
            Assert.NotEqual(rig[i].Apic.LogicalDestination, host.PhysicalLogicalId(pcpu));
        }

        // pCPU 1 (vCPU 0): physical ID 0x12, LDR cluster 1, bit 2.
        Assert.Equal(0x0001_0004u, host.PhysicalLogicalId(1));
        Assert.True(host.TryFindPcpu(0x14, out int found));
        Assert.Equal(2, found);
        Assert.False(host.TryFindPcpu(0x13, out _));
        Assert.False(host.TryFindPcpu(0x0E, out _));
        Assert.False(host.TryFindPcpu(0x1C, out _));
    }

    [Fact]
    public void ExplicitPinning_AndHostSize_AreHonored()
    {
        var rig = new PassthroughRig(vcpus: 2, options: new PassthroughOptions { HostCpuCount = 8, Pinning = [6, 2] });

        Assert.Equal(8, rig.Host.CpuCount);
        Assert.Equal(6, rig.Host.PcpuOf(0));
        Assert.Equal(2, rig.Host.PcpuOf(1));
        Assert.Equal(0x1Cu, rig.Host.PhysicalApicId(6));
    }

    [Theory]
    [InlineData(2, 3, null, "the default pinning (vCPU i on pCPU 2i+1) needs 4 host CPUs, not 3: give the host more CPUs or an explicit pinning")]
    [InlineData(3, 2, new[] { 0, 1, 2 }, "a host of 2 CPUs cannot give each of 3 vCPUs its own pCPU")]
    [InlineData(2, 4, new[] { 1 }, "the pinning lists 1 pCPUs for 2 vCPUs")]
    [InlineData(2, 4, new[] { 1, 4 }, "vCPU 1 is pinned to pCPU 4, but the host has pCPUs 0 to 3")]
    [InlineData(2, 4, new[] { 3, 3 }, "pCPU 3 is given to vCPU 0 and to vCPU 1: each vCPU needs its own pCPU")]
    [InlineData(1, 0, null, "the host CPU count must be between 1 and 65536, not 0")]
    public void InvalidOptions_AreRefusedWithAReason(int vcpus, int hostCpus, int[]? pinning, string message)
    {
        var options = new PassthroughOptions { HostCpuCount = hostCpus, Pinning = pinning };

        Assert.Equal(message, options.Validate(vcpus));
        var e = Assert.Throws<ArgumentException>(() => new VirtualMachine(new MachineOptions { VcpuCount = vcpus }, new PassthroughMode(options)));
        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Log_KeepsTheMostRecentIpis()
    {
        var rig = new PassthroughRig(vcpus: 2, options: new PassthroughOptions { IpiLogCapacity = 2 });
        for (int v = 0x40; v < 0x45; v++)
        {
            rig.SendIpi(0, (uint)v, 1);
        }

        Assert.Equal(5, rig.Host.PhysicalIpiCount);
        Assert.Equal(5, rig.Host.IpisReceived(3));
        Assert.Equal(
            [
                new PhysicalIpi(1, 0x16, 0x43, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr),
                new PhysicalIpi(1, 0x16, 0x44, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr),
            ],
            rig.Host.RecentIpis());
    }

    [Fact]
    public void Mode_NeedsAMachine()
    {
        var mode = new PassthroughMode();

        Assert.Throws<InvalidOperationException>(() => mode.Host);
    }
}
