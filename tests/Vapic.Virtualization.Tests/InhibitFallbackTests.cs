using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests;

/// <summary>
/// Every inhibit reason the model can raise is raised and cleared here, for both vendors: an
/// honored reason makes the mode fall back to emulation (an edge EOI exits again) and a reason
/// outside the vendor's mask changes nothing; interrupts sent before, during and after the
/// inhibit all arrive exactly once (virtualization-reference §4.2, §4.3).
/// </summary>
public class InhibitFallbackTests
{
    public static TheoryData<string, ApicvInhibit> ReasonsByVendor()
    {
        var data = new TheoryData<string, ApicvInhibit>();
        foreach (string mode in new[] { "apicv", "avic" })
        {
            foreach (ApicvInhibit reason in Enum.GetValues<ApicvInhibit>())
            {
                data.Add(mode, reason);
            }
        }

        return data;
    }

    private static VirtualizationMode Create(string mode) => mode == "apicv" ? new ApicvMode() : new AvicMode();

    private static (VirtualMachine Machine, VirtualizationMode Mode) Boot(string modeName)
    {
        VirtualizationMode mode = Create(modeName);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);
        bsp.WriteMsr(0x1B, 0xFEE0_0D00);
        ap.WriteMsr(0x1B, 0xFEE0_0C00);
        bsp.WriteMsr(0x80F, 0x1FF);
        ap.WriteMsr(0x80F, 0x1FF);

        // Start the AP (INIT keeps x2APIC mode and the enable bits; SVR goes back to 0xFF).
        bsp.WriteMsr(0x830, (1UL << 32) | 0x4500);
        ap.Accept();
        bsp.WriteMsr(0x830, (1UL << 32) | 0x4608);
        ap.Accept();
        ap.WriteMsr(0x80F, 0x1FF);
        return (machine, mode);
    }

    /// <summary>Sends vector 0x41 from the BSP to the AP, the AP takes it and EOIs; returns the exits the EOI took.</summary>
    private static long RoundTrip(VirtualMachine machine, VirtualizationMode mode, byte vector)
    {
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);
        bsp.WriteMsr(0x830, (1UL << 32) | vector);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, vector), ap.Accept());
        long before = mode.Ledger.TotalExits;
        Assert.Equal(ApicAccessResult.Ok, ap.WriteMsr(0x80B, 0));
        return mode.Ledger.TotalExits - before;
    }

    [Theory]
    [MemberData(nameof(ReasonsByVendor))]
    public void RaisingAndClearingFallsBackAndReturnsWithoutLoss(string modeName, ApicvInhibit reason)
    {
        var (machine, mode) = Boot(modeName);
        bool honored = (mode.Inhibits.VendorMask & ApicvInhibitSet.ToMask(reason)) != 0;

        Assert.True(mode.IsAccelerated);
        Assert.Equal(0, RoundTrip(machine, mode, 0x41));

        // A vector left pending in the AP's IRR across the transition must survive it.
        machine.GetVcpu(0).WriteMsr(0x830, (1UL << 32) | 0x52);

        mode.SetInhibit(reason, true);
        Assert.True(mode.Inhibits.Contains(reason));
        Assert.Equal(!honored, mode.IsAccelerated);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x52), machine.GetVcpu(1).Accept());
        Assert.Equal(honored ? 1 : 0, EoiExits(machine, mode));
        Assert.Equal(honored ? 1 : 0, RoundTrip(machine, mode, 0x43));

        mode.SetInhibit(reason, false);
        Assert.True(mode.IsAccelerated);
        Assert.Equal(0, RoundTrip(machine, mode, 0x44));
        Assert.Equal(CpuEvent.None, machine.GetVcpu(1).Accept());
        Assert.Equal(4, machine.GetVcpu(1).Apic.Counters.Acknowledged);
    }

    private static long EoiExits(VirtualMachine machine, VirtualizationMode mode)
    {
        long before = mode.Ledger.TotalExits;
        machine.GetVcpu(1).WriteMsr(0x80B, 0);
        return mode.Ledger.TotalExits - before;
    }

    [Theory]
    [InlineData("apicv")]
    [InlineData("avic")]
    public void GuestRelocatingTheApicBaseRaisesApicBaseModified(string modeName)
    {
        VirtualizationMode mode = Create(modeName);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1 }, mode);
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(0).WriteMsr(0x1B, 0xFED4_0900));
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.ApicBaseModified));
        Assert.False(mode.IsAccelerated);

        // Sticky, as in KVM: moving it back does not clear the reason.
        machine.GetVcpu(0).WriteMsr(0x1B, 0xFEE0_0900);
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.ApicBaseModified));
    }

    [Theory]
    [InlineData("apicv")]
    [InlineData("avic")]
    public void GuestChangingAnXApicIdRaisesApicIdModifiedAndAliasingRaisesPhysicalIdAliased(string modeName)
    {
        VirtualizationMode mode = Create(modeName);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        machine.GetVcpu(1).WriteMmio(0xFEE0_0020, 0x0000_0000); // AP takes ID 0, the BSP's
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.PhysicalIdAliased));
        Assert.False(mode.IsAccelerated);

        // Aliasing is recomputed and clears; the ID change is sticky.
        machine.GetVcpu(1).WriteMmio(0xFEE0_0020, 0x0500_0000);
        Assert.False(mode.Inhibits.Contains(ApicvInhibit.PhysicalIdAliased));
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
    }

    [Fact]
    public void AvicRaisesPhysicalIdTooBigForIdsAboveTheTable()
    {
        var mode = new AvicMode();
        _ = new VirtualMachine(new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x300] }, mode);
        Assert.True(mode.Inhibits.Contains(ApicvInhibit.PhysicalIdTooBig));
        Assert.False(mode.IsAccelerated);
    }

    [Fact]
    public void AvicRaisesAndClearsLogicalIdAliased()
    {
        var mode = new AvicMode();
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            vcpu.WriteMmio(0xFEE0_00F0, 0x1FF);
            vcpu.WriteMmio(0xFEE0_00D0, 0x0100_0000);
        }

        Assert.True(mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
        machine.GetVcpu(1).WriteMmio(0xFEE0_00D0, 0x0200_0000);
        Assert.False(mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
    }
}
