using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>Routing on the largest machine and with sparse x2APIC IDs (lapic-reference.md §2, §10, §12).</summary>
public sealed class LargeMachineTests
{
    [Fact]
    public void FourThousandNinetySixCpus_UnicastToTheLastAndBroadcastToAll()
    {
        VirtualMachine machine = NewMachine(MachineOptions.MaxVcpus);
        Assert.Equal(ApicMode.X2Apic, machine.GetVcpu(0).Mode()); // IDs above 0xFE force x2APIC
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendX2ApicIpi(4095, 0x0000_4041);
        Assert.Equal([4095], machine.WithIrr(0x41));

        cpu0.SendX2ApicIpi(0xFFFF_FFFF, 0x0000_4042);
        Assert.Equal(Enumerable.Range(0, 4096), machine.WithIrr(0x42));

        // x2APIC logical: ID 4095 = cluster 0xFF, member 15.
        cpu0.SendX2ApicIpi(0x00FF_8000, 0x0000_4843);
        Assert.Equal([4095], machine.WithIrr(0x43));

        // Every CPU but the sender through the shorthand.
        cpu0.SendX2ApicIpi(0, 0x000C_4044);
        Assert.Equal(Enumerable.Range(1, 4095), machine.WithIrr(0x44));
    }

    [Fact]
    public void FourThousandNinetySixCpus_MsiWithExtendedDestinationReachesTheLast()
    {
        VirtualMachine machine = NewMachine(MachineOptions.MaxVcpus);
        machine.GetVcpu(4095).EnableSoftware();

        machine.SendMsi(Msi.EncodeAddress(4095, DestinationMode.Physical, redirectionHint: false), 0x51);

        Assert.True(machine.GetVcpu(4095).IrrHas(0x51));
        Assert.Equal(1, machine.GetVcpu(4095).Apic.Counters.FixedAccepted);
    }

    private static readonly uint[] SparseIds = [0, 0x100, 0x7FFF, 0x1_2345];

    [Fact]
    public void SparseX2ApicIds_ReachedByPhysicalIpis()
    {
        VirtualMachine machine = NewMachine(4, ids: SparseIds);
        machine.EnableAll();
        for (int i = 0; i < SparseIds.Length; i++)
        {
            Assert.Equal(SparseIds[i], (uint)machine.GetVcpu(i).RdMsr(Msr.X2ApicId));
        }

        for (int i = 0; i < SparseIds.Length; i++)
        {
            machine.GetVcpu(3).SendX2ApicIpi(SparseIds[i], 0x0000_4040u + (uint)i);
            Assert.Equal([i], machine.WithIrr(0x40 + i));
        }

        // Neighbours of the sparse IDs exist nowhere.
        foreach (uint id in new uint[] { 1, 0xFF, 0x101, 0x7FFE, 0x8000, 0x1_2344, 0x1_2346, 0x2345 })
        {
            machine.GetVcpu(0).SendX2ApicIpi(id, 0x0000_4050);
        }

        Assert.Empty(machine.WithIrr(0x50));
        Assert.Equal(8, machine.Counters.NoDestination);
    }

    [Fact]
    public void SparseX2ApicIds_LogicalClustersFromDerivedLdr()
    {
        VirtualMachine machine = NewMachine(4, ids: SparseIds);
        machine.EnableAll();

        machine.GetVcpu(0).SendX2ApicIpi(X2ApicLogicalId(0x1_2345), 0x0000_4860);
        machine.GetVcpu(0).SendX2ApicIpi(X2ApicLogicalId(0x7FFF), 0x0000_4861);
        machine.GetVcpu(0).SendX2ApicIpi(0x0010_0001, 0x0000_4862); // cluster 0x10 = ID 0x100

        Assert.Equal([3], machine.WithIrr(0x60));
        Assert.Equal([2], machine.WithIrr(0x61));
        Assert.Equal([1], machine.WithIrr(0x62));
    }

    [Fact]
    public void SparseX2ApicIds_ReachedByMsiExtendedDestination()
    {
        VirtualMachine machine = NewMachine(4, ids: SparseIds);
        machine.EnableAll();

        machine.SendMsi(Msi.EncodeAddress(0x100, DestinationMode.Physical, redirectionHint: false), 0x71);
        machine.SendMsi(Msi.EncodeAddress(0x7FFF, DestinationMode.Physical, redirectionHint: false), 0x72);
        machine.SendMsi(Msi.EncodeAddress(0x0, DestinationMode.Physical, redirectionHint: false), 0x73);

        // 0x1_2345 needs 17 bits: the 15-bit extended destination can only say 0x2345, which nobody has.
        machine.SendMsi(Msi.EncodeAddress(0x2345, DestinationMode.Physical, redirectionHint: false), 0x74);

        Assert.Equal([1], machine.WithIrr(0x71));
        Assert.Equal([2], machine.WithIrr(0x72));
        Assert.Equal([0], machine.WithIrr(0x73));
        Assert.Empty(machine.WithIrr(0x74));
    }

    [Fact]
    public void SparseX2ApicIds_ReachedByIoApicExtendedDestination()
    {
        VirtualMachine machine = NewMachine(4, ids: SparseIds);
        machine.EnableAll();

        // 0x7FFF: bits 63:56 = 0xFF, bits 55:49 = 0x7F.
        machine.IoApic.WriteRegister(RteHigh(4), 0xFF00_0000 | (0x7Fu << 17));
        machine.IoApic.WriteRegister(RteLow(4), 0x0000_0081);
        machine.SetIrq(4, true);

        Assert.Equal([2], machine.WithIrr(0x81));
    }

    [Fact]
    public void SparseX2ApicIds_LowestPriorityOverBroadcastHashesInVcpuOrder()
    {
        VirtualMachine machine = NewMachine(4, ids: SparseIds);
        machine.EnableAll();

        // 32-bit broadcast with lowest priority is not downgraded (only 8-bit 0xFF is): 0x47 mod 4 = 3.
        machine.GetVcpu(0).SendX2ApicIpi(0xFFFF_FFFF, 0x0000_4147);

        Assert.Equal([3], machine.WithIrr(0x47));
    }
}
