using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Nested;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// vmcs02 construction and the VM-entry checks (virtualization-reference §2.1, §5.1, §5.2; TV46-TV50).
/// These are L0's nested logic and do not depend on how L0 virtualizes L1's own APIC, so every case
/// runs in every mode.
/// </summary>
public sealed class NestedVmEntryTests
{
    [Theory]
    [MemberData(nameof(NestedRig.ModeNames), MemberType = typeof(NestedRig))]
    public void Tv46_ApicAccessAddressInL1Ram_IsMappedIntoVmcs02(string mode)
    {
        var rig = new NestedRig(NestedRig.CreateMode(mode));
        rig.VirtualizeApic(NestedRig.ApicAccessPage);

        VmEntryResult entry = rig.Nested.VmLaunch(0);

        Assert.Equal(VmEntryOutcome.EnteredL2, entry.Outcome);
        Vmcs02 vmcs02 = rig.Nested.GetVmcs02(0)!;
        Assert.Equal(L1GuestMemory.RamHostBase + NestedRig.ApicAccessPage, vmcs02.ApicAccessHostAddress);
        Assert.Equal(L1GuestMemory.RamHostBase + NestedRig.VirtualApicPage, vmcs02.VirtualApicHostAddress);
        Assert.Equal(L1GuestMemory.RamHostBase + NestedRig.Descriptor, vmcs02.PostedInterruptDescriptorHostAddress);
        Assert.Equal(Vmcs02.NestedPostedInterruptVector, vmcs02.NotificationVector);
        Assert.Equal(NestedRig.FullApicVirtualization, vmcs02.Controls);
        Assert.Equal(Vmcs02Adjustments.None, vmcs02.Adjustments);
        Assert.Equal(NestedVcpuState.InL2, rig.Nested.GetState(0));
    }

    [Theory]
    [InlineData("emulated", NestedRig.Hole, L1MemoryKind.Hole)]
    [InlineData("apicv", NestedRig.Hole, L1MemoryKind.Hole)]
    [InlineData("avic", NestedRig.Hole, L1MemoryKind.Hole)]
    [InlineData("emulated", NestedRig.L1ApicBase, L1MemoryKind.L1Apic)]
    [InlineData("apicv", NestedRig.L1ApicBase, L1MemoryKind.L1Apic)]
    [InlineData("avic", NestedRig.L1ApicBase, L1MemoryKind.L1Apic)]
    [InlineData("passthrough", NestedRig.L1ApicBase, L1MemoryKind.L1Apic)]
    [InlineData("apicv", 0xFEC0_0000UL, L1MemoryKind.Mmio)]
    public void Tv47_UnbackedApicAccessAddress_StopsTheVcpuWithAnInternalErrorNamingFieldAndAddress(string mode, ulong address, L1MemoryKind backing)
    {
        var rig = new NestedRig(NestedRig.CreateMode(mode));
        rig.VirtualizeApic(address);
        uint l1Tpr = rig.Machine.GetVcpu(0).Apic.TaskPriority;

        VmEntryResult entry = rig.Nested.VmLaunch(0);

        Assert.Equal(VmEntryOutcome.InternalError, entry.Outcome);
        NestedInternalError error = entry.Error!;
        Assert.Equal(Vmcs12Field.ApicAccessAddress, error.Field);
        Assert.Equal(address, error.Address);
        Assert.Equal(backing, error.Backing);
        Assert.Equal(17, NestedInternalError.KvmExitReason);
        Assert.Equal(1, NestedInternalError.Suberror);
        Assert.Equal(0, NestedInternalError.DataCount);
        Assert.Contains("APIC-access address", error.Message);
        Assert.Contains("0x2014", error.Message);
        Assert.Contains($"0x{address:x}", error.Message);
        Assert.Equal(NestedVcpuState.Stopped, rig.Nested.GetState(0));
        Assert.Null(rig.Nested.GetVmcs02(0));

        // L2 never runs, so it never touches L1's APIC.
        Assert.Equal(L2AccessOutcome.NotInL2, rig.Nested.L2Read(0, NestedRig.L1ApicBase + 0x20).Outcome);
        Assert.Equal(L2AccessOutcome.NotInL2, rig.Nested.L2Write(0, NestedRig.L1ApicBase + 0x80, 0xF0).Outcome);
        Assert.Equal(l1Tpr, rig.Machine.GetVcpu(0).Apic.TaskPriority);
        Assert.False(rig.Nested.Counters.L2TouchedL1Mmio);
        Assert.Equal(VmEntryOutcome.InternalError, rig.Nested.VmLaunch(0).Outcome);
    }

    [Fact]
    public void Tv47Quirk_ClearsVirtualizeApicAccessesInVmcs02AndEnters()
    {
        var rig = new NestedRig(new EmulatedMode(), quirks: NestedQuirks.NestedApicAccessClear);
        rig.VirtualizeApic(NestedRig.L1ApicBase);

        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);

        Vmcs02 vmcs02 = rig.Nested.GetVmcs02(0)!;
        Assert.Equal(Vmcs02Adjustments.ApicAccessesCleared, vmcs02.Adjustments);
        Assert.False(vmcs02.Has(Vmcs12Controls.VirtualizeApicAccesses));
        Assert.Null(vmcs02.ApicAccessHostAddress);
        Assert.True(rig.Vmcs12.Has(Vmcs12Controls.VirtualizeApicAccesses));
    }

    [Fact]
    public void Tv48_UnmappableDescriptor_ClearsPostedInterruptsThenStopsWhenL0MustReadIt()
    {
        var rig = new NestedRig(new ApicvMode());
        rig.VirtualizeApic(NestedRig.ApicAccessPage);
        rig.Vmcs12.PostedInterruptDescriptorAddress = NestedRig.Hole;

        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);
        Vmcs02 vmcs02 = rig.Nested.GetVmcs02(0)!;
        Assert.Equal(Vmcs02Adjustments.PostedInterruptsCleared, vmcs02.Adjustments);
        Assert.False(vmcs02.Has(Vmcs12Controls.ProcessPostedInterrupts));
        Assert.Null(vmcs02.PostedInterruptDescriptorHostAddress);

        NestedPostResult post = rig.Nested.PostToL2(0, 0x61);

        Assert.Equal(NestedPostOutcome.InternalError, post.Outcome);
        Assert.Equal(Vmcs12Field.PostedInterruptDescriptorAddress, post.Error!.Field);
        Assert.Equal(NestedRig.Hole, post.Error.Address);
        Assert.Contains("0x2016", post.Error.Message);
        Assert.Equal(NestedVcpuState.Stopped, rig.Nested.GetState(0));
    }

    [Fact]
    public void Tv49_UnmappableVirtualApicPageWithCr8Exiting_ClearsTheTprShadow()
    {
        var rig = new NestedRig(new ApicvMode());
        rig.Vmcs12.Controls = Vmcs12Controls.UseTprShadow | Vmcs12Controls.Cr8LoadExiting | Vmcs12Controls.Cr8StoreExiting | Vmcs12Controls.EnableEpt;
        rig.Vmcs12.VirtualApicAddress = NestedRig.Hole;

        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);

        Vmcs02 vmcs02 = rig.Nested.GetVmcs02(0)!;
        Assert.Equal(Vmcs02Adjustments.TprShadowCleared, vmcs02.Adjustments);
        Assert.False(vmcs02.Has(Vmcs12Controls.UseTprShadow));
        Assert.Null(vmcs02.VirtualApicHostAddress);
    }

    [Theory]
    [InlineData(Vmcs12Controls.UseTprShadow | Vmcs12Controls.Cr8LoadExiting)]
    [InlineData(Vmcs12Controls.UseTprShadow | Vmcs12Controls.Cr8StoreExiting)]
    [InlineData(Vmcs12Controls.UseTprShadow | Vmcs12Controls.Cr8LoadExiting | Vmcs12Controls.Cr8StoreExiting | Vmcs12Controls.VirtualizeApicAccesses)]
    [InlineData(Vmcs12Controls.UseTprShadow | Vmcs12Controls.Cr8LoadExiting | Vmcs12Controls.Cr8StoreExiting | Vmcs12Controls.ApicRegisterVirtualization)]
    public void Tv49_UnmappableVirtualApicPageOtherwise_FailsTheEntry(Vmcs12Controls controls)
    {
        var rig = new NestedRig(new ApicvMode());
        rig.Vmcs12.Controls = controls;
        rig.Vmcs12.VirtualApicAddress = NestedRig.Hole;
        rig.Vmcs12.ApicAccessAddress = NestedRig.ApicAccessPage;

        VmEntryResult entry = rig.Nested.VmLaunch(0);

        Assert.Equal(VmEntryOutcome.VmFailValid, entry.Outcome);
        Assert.Equal(VmEntryResult.InvalidControlField, entry.VmInstructionError);
        Assert.Equal(NestedVcpuState.InL1, rig.Nested.GetState(0));
    }

    [Theory]
    [MemberData(nameof(NestedRig.ModeNames), MemberType = typeof(NestedRig))]
    public void Tv50_VirtualizeX2ApicModeWithVirtualizeApicAccesses_FailsWithError7(string mode)
    {
        var rig = new NestedRig(NestedRig.CreateMode(mode));
        rig.VirtualizeApic(NestedRig.ApicAccessPage);
        rig.Vmcs12.Controls |= Vmcs12Controls.VirtualizeX2ApicMode;

        VmEntryResult entry = rig.Nested.VmLaunch(0);

        Assert.Equal(VmEntryOutcome.VmFailValid, entry.Outcome);
        Assert.Equal(7, entry.VmInstructionError);
        Assert.Contains("virtualize x2APIC mode", entry.Reason);
        Assert.Equal(NestedVcpuState.InL1, rig.Nested.GetState(0));
        Assert.Equal(L2AccessOutcome.NotInL2, rig.Nested.L2Read(0, NestedRig.L1ApicBase).Outcome);
    }

    public static TheoryData<string, Vmcs12Controls, ulong, ulong, ushort, uint> EntryCheckCases() => new()
    {
        // name, controls, APIC-access address, descriptor address, notification vector, TPR threshold
        { "x2APIC mode needs TPR shadow", Vmcs12Controls.VirtualizeX2ApicMode, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "register virtualization needs TPR shadow", Vmcs12Controls.ApicRegisterVirtualization, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "VID needs TPR shadow", Vmcs12Controls.VirtualInterruptDelivery | Vmcs12Controls.ExternalInterruptExiting, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "VID needs external-interrupt exiting", Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualInterruptDelivery, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "posted interrupts need VID", Vmcs12Controls.UseTprShadow | Vmcs12Controls.ProcessPostedInterrupts | Vmcs12Controls.AcknowledgeInterruptOnExit, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "posted interrupts need acknowledge on exit", NestedRig.FullApicVirtualization & ~Vmcs12Controls.AcknowledgeInterruptOnExit, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0 },
        { "notification vector bits 15:8", NestedRig.FullApicVirtualization, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0x1F2, 0 },
        { "descriptor 64-byte aligned", NestedRig.FullApicVirtualization, NestedRig.ApicAccessPage, NestedRig.Descriptor + 0x20, 0xF2, 0 },
        { "descriptor below MAXPHYADDR", NestedRig.FullApicVirtualization, NestedRig.ApicAccessPage, 1UL << 46, 0xF2, 0 },
        { "APIC-access address 4 KiB aligned", NestedRig.FullApicVirtualization, NestedRig.ApicAccessPage + 0x10, NestedRig.Descriptor, 0xF2, 0 },
        { "APIC-access address below MAXPHYADDR", NestedRig.FullApicVirtualization, 1UL << 46, NestedRig.Descriptor, 0xF2, 0 },
        { "TPR threshold bits 31:4 without VID", Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 0x10 },
        { "TPR threshold above VTPR without VID and APIC-access virtualization", Vmcs12Controls.UseTprShadow, NestedRig.ApicAccessPage, NestedRig.Descriptor, 0xF2, 1 },
    };

    [Theory]
    [MemberData(nameof(EntryCheckCases))]
    public void EntryChecks_FailWithVmFailValid7(string check, Vmcs12Controls controls, ulong apicAccess, ulong descriptor, ushort vector, uint threshold)
    {
        var rig = new NestedRig(new ApicvMode());
        rig.Vmcs12.Controls = controls;
        rig.Vmcs12.ApicAccessAddress = apicAccess;
        rig.Vmcs12.VirtualApicAddress = NestedRig.VirtualApicPage;
        rig.Vmcs12.PostedInterruptDescriptorAddress = descriptor;
        rig.Vmcs12.PostedInterruptNotificationVector = vector;
        rig.Vmcs12.TprThreshold = threshold;

        VmEntryResult entry = rig.Nested.VmLaunch(0);

        Assert.True(entry.Outcome == VmEntryOutcome.VmFailValid, $"{check}: {entry}");
        Assert.Equal(7, entry.VmInstructionError);
        Assert.Equal(1, rig.Nested.Counters.VmFails);
    }

    [Fact]
    public void EntryCheck_TprThresholdAtOrBelowVtpr_Enters()
    {
        var rig = new NestedRig(new ApicvMode());
        rig.Vmcs12.Controls = Vmcs12Controls.UseTprShadow;
        rig.Vmcs12.VirtualApicAddress = NestedRig.VirtualApicPage;
        rig.Vmcs12.TprThreshold = 5;
        rig.Nested.L1Memory.Write32(NestedRig.VirtualApicPage + 0x80, 0x50);

        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);
    }
}
