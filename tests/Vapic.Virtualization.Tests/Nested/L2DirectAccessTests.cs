using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Vapic.Virtualization.Nested;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// L2 reaching L1's own APIC page: through L1's mapping (BitVisor, TV45) or because the
/// <c>nested-apic-access-clear</c> quirk dropped APIC-access virtualization. The RFC of August
/// 2023 sets L2_PASSTHROUGH_ACCESS VM-wide where L1's APIC is accelerated (virtualization-reference
/// §4.4); the quirk <c>l2-passthrough-no-inhibit</c> shows the loss without it.
/// </summary>
public sealed class L2DirectAccessTests
{
    private const ulong Apic = NestedRig.L1ApicBase;

    private static NestedRig Enter(VirtualizationMode mode, NestedQuirks quirks = NestedQuirks.None, int vcpus = 1)
    {
        var rig = new NestedRig(mode, vcpus, quirks);
        rig.PassL1ApicThrough();
        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);
        return rig;
    }

    public static TheoryData<string> AcceleratedModes() => ["apicv", "avic"];

    [Theory]
    [MemberData(nameof(AcceleratedModes))]
    public void Tv45_FirstDirectAccessWhileAccelerated_SetsTheInhibitVmWide(string mode)
    {
        NestedRig rig = Enter(NestedRig.CreateMode(mode), vcpus: 2);
        Assert.True(rig.Mode.IsAccelerated);
        Assert.True(rig.Nested.IsApicAccessPageActive);

        L2AccessResult read = rig.Nested.L2Read(0, Apic + 0x20);

        Assert.Equal(L2AccessOutcome.Completed, read.Outcome);
        Assert.Equal(L2AccessTarget.L1Apic, read.Target);
        Assert.Equal(0u, read.Value);
        Assert.True(rig.Mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess));
        Assert.Equal(ApicvInhibitMask.L2PassthroughAccess, rig.Mode.Inhibits.Effective);
        Assert.False(rig.Mode.IsAccelerated);
        Assert.False(rig.Nested.IsApicAccessPageActive);
        Assert.Equal(1, rig.Nested.Counters.DirectAccessesWhileAccelerated);
        Assert.Equal(1, rig.Mode.Inhibits.Toggles);

        // Later accesses are plain emulation: no second detection, no toggle.
        rig.Nested.L2Write(0, Apic + 0x80, 0x20);
        Assert.Equal(1, rig.Nested.Counters.DirectAccessesWhileAccelerated);
        Assert.Equal(1, rig.Mode.Inhibits.Toggles);
        Assert.Equal(0x20, rig.Machine.GetVcpu(0).Apic.TaskPriority);
        Assert.True(rig.Nested.Counters.L2TouchedL1Mmio);
    }

    [Theory]
    [InlineData("emulated")]
    [InlineData("passthrough")]
    public void WithoutAnApicAccessPage_DirectAccessIsPlainEmulationAndSetsNothing(string mode)
    {
        NestedRig rig = Enter(NestedRig.CreateMode(mode));

        Assert.False(rig.Nested.IsApicAccessPageActive);
        rig.Nested.L2Read(0, Apic + 0x20);

        Assert.Equal(ApicvInhibitMask.None, rig.Mode.Inhibits.Reasons);
        Assert.Equal(0, rig.Nested.Counters.DirectAccessesWhileAccelerated);
        Assert.Equal(1, rig.Nested.Counters.L1ApicAccesses);
    }

    [Fact]
    public void AlreadyInhibited_NoDetection()
    {
        var mode = new ApicvMode();
        NestedRig rig = Enter(mode);
        mode.SetInhibit(ApicvInhibit.BlockIrq, true);

        rig.Nested.L2Read(0, Apic + 0x20);

        Assert.False(mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess));
        Assert.Equal(0, rig.Nested.Counters.DirectAccessesWhileAccelerated);
    }

    [Fact]
    public void Inhibit_MovesHeldPostedInterruptsIntoIrrBeforeTheAccessIsEmulated()
    {
        var mode = new ApicvMode();
        NestedRig rig = Enter(mode);
        Vcpu cpu = rig.Machine.GetVcpu(0);
        cpu.SetHostState(VcpuHostState.Preempted);
        rig.Machine.SendMsi(0xFEE0_0000, 0x41);
        Assert.False(mode.GetVcpuState(0).Descriptor.Pir.IsEmpty);
        Assert.False(cpu.Apic.Irr.Get(0x41));

        // L2 reads IRR word 2 (vectors 0x40-0x5F) straight from L1's APIC.
        L2AccessResult irr = rig.Nested.L2Read(0, Apic + 0x220);

        Assert.Equal(0x0000_0002u, irr.Value);
        Assert.True(mode.GetVcpuState(0).Descriptor.Pir.IsEmpty);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), cpu.Accept());
    }

    [Theory]
    [MemberData(nameof(AcceleratedModes))]
    public void Quirk_EoiBehindTheAccelerationIsLost_AndLaterInterruptsWithIt(string mode)
    {
        NestedRig rig = Enter(NestedRig.CreateMode(mode), NestedQuirks.L2PassthroughNoInhibit);
        Vcpu cpu = rig.Machine.GetVcpu(0);

        rig.Machine.SendMsi(0xFEE0_0000, 0x41);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), cpu.Accept());
        Assert.Equal(L2AccessOutcome.Completed, rig.Nested.L2Write(0, Apic + 0xB0, 0).Outcome);

        Assert.True(rig.Mode.IsAccelerated);
        Assert.Equal(ApicvInhibitMask.None, rig.Mode.Inhibits.Reasons);
        Assert.Equal(1, rig.Nested.Counters.EoisLost);
        Assert.True(cpu.Apic.Isr.Get(0x41));
        rig.Machine.SendMsi(0xFEE0_0000, 0x41);
        rig.Machine.SendMsi(0xFEE0_0000, 0x41);
        Assert.Equal(CpuEvent.None, cpu.Accept());
        Assert.True(cpu.Apic.Irr.Get(0x41));
    }

    [Theory]
    [InlineData("emulated")]
    [InlineData("passthrough")]
    public void Quirk_WithoutAnApicAccessPage_LosesNothing(string mode)
    {
        NestedRig rig = Enter(NestedRig.CreateMode(mode), NestedQuirks.L2PassthroughNoInhibit);
        Vcpu cpu = rig.Machine.GetVcpu(0);

        rig.Machine.SendMsi(0xFEE0_0000, 0x41);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), cpu.Accept());
        rig.Nested.L2Write(0, Apic + 0xB0, 0);
        rig.Machine.SendMsi(0xFEE0_0000, 0x41);

        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), cpu.Accept());
        Assert.Equal(0, rig.Nested.Counters.EoisLost);
    }

    [Fact]
    public void ApicAccessClearQuirk_L2ReadsAndWritesL1sApic()
    {
        var rig = new NestedRig(new ApicvMode(), quirks: NestedQuirks.NestedApicAccessClear);
        rig.VirtualizeApic(Apic);
        rig.Nested.L1Memory.Write32(NestedRig.VirtualApicPage + 0x20, 0x0100_0000);
        Vcpu cpu = rig.Machine.GetVcpu(0);
        rig.Machine.SendMsi(0xFEE0_0000, 0x30);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x30), cpu.Accept());
        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);

        L2AccessResult id = rig.Nested.L2Read(0, Apic + 0x20);
        rig.Nested.L2Write(0, Apic + 0x80, 0x20);
        rig.Nested.L2Write(0, Apic + 0xB0, 0);

        // L2 saw L1's APIC ID, not the one L1 put in L2's virtual-APIC page, and changed L1's state.
        Assert.Equal(L2AccessTarget.L1Apic, id.Target);
        Assert.Equal(0u, id.Value);
        Assert.Equal(0x20, cpu.Apic.TaskPriority);
        Assert.False(cpu.Apic.Isr.Get(0x30));
        Assert.True(rig.Nested.Counters.L2TouchedL1Mmio);
        Assert.True(rig.Mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess));
    }

    [Fact]
    public void ApicAccessClearQuirk_HoleAndDeviceMmio()
    {
        var rig = new NestedRig(new EmulatedMode(), vcpus: 2, quirks: NestedQuirks.NestedApicAccessClear);
        rig.VirtualizeApic(NestedRig.Hole, vcpu: 0);
        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);

        L2AccessResult hole = rig.Nested.L2Read(0, Apic + 0x20);

        Assert.Equal(L2AccessOutcome.Unbacked, hole.Outcome);
        Assert.Equal(L2AccessTarget.Hole, hole.Target);
        Assert.Equal(1, rig.Nested.Counters.VmmMmioExits);
        Assert.Equal(1, rig.Mode.Ledger.ExitsOf(ExitReason.UnbackedMmio));
        Assert.False(rig.Nested.Counters.L2TouchedL1Mmio);

        // vCPU 1: the APIC-access address is the IOAPIC window; L2 programs the L1 device.
        Vmcs12 vmcs12 = rig.Nested.GetVmcs12(1);
        vmcs12.Controls = Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.EnableEpt;
        vmcs12.ApicAccessAddress = L1GuestMemory.IoApicWindow;
        vmcs12.VirtualApicAddress = 0x20_1000;
        rig.Nested.L2Translation.Map(Apic, L1GuestMemory.IoApicWindow);
        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(1).Outcome);
        rig.Nested.L2Write(1, Apic, 0x01);
        L2AccessResult version = rig.Nested.L2Read(1, Apic + 0x10);

        Assert.Equal(L2AccessTarget.L1Mmio, version.Target);
        Assert.Equal(0x0017_0020u, version.Value);
        Assert.True(rig.Nested.Counters.L2TouchedL1Mmio);
    }

    [Fact]
    public void Translation_EptViolationAndShadowPagingPageFault()
    {
        var rig = new NestedRig(new EmulatedMode());
        rig.Nested.L2Translation.Unmap(0x20_0000);
        rig.Nested.L2Translation.Map(0x40_0000, 0x30_0000);
        rig.Nested.L1Memory.Write32(0x30_0004, 0x1234);
        rig.Vmcs12.Controls = Vmcs12Controls.EnableEpt;
        rig.Nested.VmLaunch(0);

        Assert.Equal(new L1Exit(L1ExitReason.EptViolation, 1), rig.Nested.L2Read(0, 0x20_0010).Exit);
        Assert.Equal(new L1Exit(L1ExitReason.EptViolation, 2), rig.Nested.L2Write(0, 0x20_0010, 1).Exit);
        Assert.Equal(0x1234u, rig.Nested.L2Read(0, 0x40_0004).Value);
        Assert.Equal(0x1234u, rig.Nested.L2Read(0, 0x30_0004).Value);

        rig.Vmcs12.Controls = Vmcs12Controls.None;
        rig.Nested.VmLaunch(0);
        Assert.Equal(new L1Exit(L1ExitReason.ExceptionOrNmi, 0x20_0010), rig.Nested.L2Read(0, 0x20_0010).Exit);
    }
}
