using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Xunit;

namespace Vapic.Virtualization.Tests.Apicv;

/// <summary>The APICv scenario vectors of virtualization-reference §9 (TV01-TV30, TV41, TV42).</summary>
public sealed class ApicvScenarioTests
{
    private const ulong Base = ApicvRig.ApicBase;

    // TV01/TV02: TPR shadow without VID, threshold 5 (IRR holds 0x55 masked by TPR 0x60).
    private static ApicvRig ThresholdFive()
    {
        var rig = new ApicvRig(1, features: ApicvFeatures.TprShadowOnly);
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteCr8(6));
        rig.Inject(0, 0x55);
        Assert.Equal(0x60, rig[0].Apic.TaskPriority);
        Assert.Equal(5, rig.State(0).TprThreshold);
        return rig;
    }

    [Fact]
    public void TV01_MovToCr8BelowThreshold_ExitsTrapLike()
    {
        ApicvRig rig = ThresholdFive();
        LedgerProbe probe = rig.Probe();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteCr8(3));
        Assert.Equal(0x30, rig[0].Apic.TaskPriority);
        Assert.Equal(1, probe.Exits(ExitReason.TprBelowThreshold));
        Assert.Equal(1, probe.TotalExits);
        ApicvExit exit = Assert.NotNull(rig.State(0).LastExit);
        Assert.Equal(new ApicvExit(ExitReason.TprBelowThreshold, 0), exit);
        Assert.True(exit.IsTrapLike);
    }

    [Fact]
    public void TV02_MovToCr8AtThreshold_DoesNotExit()
    {
        ApicvRig rig = ThresholdFive();
        LedgerProbe probe = rig.Probe();
        rig[0].WriteCr8(5);
        Assert.Equal(0x50, rig[0].Apic.TaskPriority);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(1, probe.Events(CostEvent.AcceleratedAccess));
    }

    [Fact]
    public void TV03_ThresholdProgrammedAtEntryNeverExceedsVtprClass()
    {
        // TV03 needs threshold[3:0] > VTPR[7:4] at VM entry. KVM's policy programs either 0 or the
        // highest IRR class when TPR masks it, so the condition cannot arise: after the TV01 exit
        // the vCPU re-enters with the threshold recomputed for VTPR 0x30 (IRR 0x55 now unmasked).
        ApicvRig rig = ThresholdFive();
        rig[0].WriteCr8(3);
        Assert.Equal(0, rig.State(0).TprThreshold);
        LedgerProbe probe = rig.Probe();
        rig[0].ReadCr8();
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV04_MovFromCr8_ReadsVtprClassWithoutExit()
    {
        var rig = new ApicvRig(1);
        rig.Write(0, 0x080, 0xA7);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(0xAUL, rig[0].ReadCr8());
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV05_CurrentCountRead_IsApicAccessExit()
    {
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].ReadMmio(Base + 0x390, out _);
        Assert.Equal(1, probe.Exits(ExitReason.ApicAccess));
        Assert.Equal(new ApicvExit(ExitReason.ApicAccess, 0x0390), rig.State(0).LastExit);
        Assert.False(rig.State(0).LastExit!.Value.IsTrapLike);
    }

    [Fact]
    public void TV06_IsrReadServedFromVirtualApicPage()
    {
        // Vector 0x28 is bit 8 of the ISR word at 0x100 | ((0x28 & 0xE0) >> 1) = 0x110 (the
        // reference's "read 0x100" names the first ISR word, which holds vectors 0-31).
        var rig = new ApicvRig(1);
        rig.Inject(0, 0x28);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x28), rig[0].Accept());
        LedgerProbe probe = rig.Probe();
        Assert.Equal(0x100UL, rig.Read(0, 0x110));
        Assert.Equal(0UL, rig.Read(0, 0x100));
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(2, probe.Events(CostEvent.AcceleratedAccess));
    }

    [Fact]
    public void TV07_ReadNotInsideOneWindow_IsApicAccessExit()
    {
        // A 64-bit read at 0x300 spans 0x300-0x307; the model's accesses are 32-bit, so the same
        // rule is shown with 0x304-0x307, which is in no listed 4-byte window either.
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].ReadMmio(Base + 0x304, out uint value);
        Assert.Equal(0u, value);
        Assert.Equal(1, probe.Exits(ExitReason.ApicAccess));
        Assert.Equal(new ApicvExit(ExitReason.ApicAccess, 0x304), rig.State(0).LastExit);
    }

    [Fact]
    public void TV08_InitialCountWrite_IsTrapLikeApicWriteExit()
    {
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x380, 1000);
        Assert.Equal(1000u, rig[0].Apic.InitialCount);
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(1, probe.TotalExits);
        ApicvExit exit = Assert.NotNull(rig.State(0).LastExit);
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x380), exit);
        Assert.True(exit.IsTrapLike);
    }

    [Fact]
    public void TV09_WithoutRegisterVirtualization_InitialCountWriteIsApicAccessExit()
    {
        var rig = new ApicvRig(1, features: new ApicvFeatures { ApicRegisterVirtualization = false });
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x380, 1000);
        Assert.Equal(1, probe.Exits(ExitReason.ApicAccess));
        Assert.Equal(new ApicvExit(ExitReason.ApicAccess, 0x1380), rig.State(0).LastExit);
    }

    [Fact]
    public void TV10_SelfIpiShorthand_IsVirtualizedWithoutExit()
    {
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x300, 0x0004_0031);
        Assert.True(rig[0].Apic.Irr.Get(0x31));
        Assert.Equal(0x31, rig.State(0).Rvi);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(0, probe.Events(CostEvent.PostedNotify));
    }

    [Fact]
    public void TV11_SelfIpiWithVectorBelow16_IsApicWriteExit()
    {
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x300, 0x0004_0005);
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x300), rig.State(0).LastExit);
    }

    [Fact]
    public void TV12_WithoutIpiv_UnicastIcrWriteExitsAndHypervisorPosts()
    {
        var rig = new ApicvRig(2, features: ApicvFeatures.WithoutIpiVirtualization);
        rig[0].WriteMmio(Base + 0x310, 0x0100_0000);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x300, 0x0000_00EC);
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(1, probe.TotalExits);
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x300), rig.State(0).LastExit);
        Assert.True(rig[1].Apic.Irr.Get(0xEC));
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(1, probe.Events(CostEvent.PostedReceive));
    }

    [Fact]
    public void TV13_IcrHighWrite_KeepsOnlyDestinationByteWithoutExit()
    {
        var rig = new ApicvRig(1);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x310, 0xAABB_CCDD);
        Assert.Equal(0xAA00_0000UL, rig.Read(0, 0x310));
        Assert.Equal(0, probe.TotalExits);
    }

    private static ApicvRig InServiceFortyAndThirtyOne(bool fortyLevel)
    {
        var rig = new ApicvRig(1);
        rig.Inject(0, 0x31);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x31), rig[0].Accept());
        rig.Inject(0, 0x40, levelTriggered: fortyLevel);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x40), rig[0].Accept());
        Assert.Equal(0x40, rig.State(0).Svi);
        Assert.Equal(fortyLevel, rig.State(0).EoiExitBitmap.Get(0x40));
        return rig;
    }

    [Fact]
    public void TV14_EdgeEoi_IsVirtualizedWithoutExit()
    {
        ApicvRig rig = InServiceFortyAndThirtyOne(fortyLevel: false);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x0B0, 0);
        Assert.False(rig[0].Apic.Isr.Get(0x40));
        Assert.True(rig[0].Apic.Isr.Get(0x31));
        Assert.Equal(0x31, rig.State(0).Svi);
        Assert.Equal(0x30, rig[0].Apic.ProcessorPriority);
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV15_LevelEoi_IsEoiInducedExitWithVector()
    {
        ApicvRig rig = InServiceFortyAndThirtyOne(fortyLevel: true);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x0B0, 0);
        Assert.Equal(0x31, rig.State(0).Svi);
        Assert.Equal(0x30, rig[0].Apic.ProcessorPriority);
        Assert.Equal(1, probe.Exits(ExitReason.EoiInduced));
        Assert.Equal(1, probe.TotalExits);
        ApicvExit exit = Assert.NotNull(rig.State(0).LastExit);
        Assert.Equal(new ApicvExit(ExitReason.EoiInduced, 0x40), exit);
        Assert.True(exit.IsTrapLike);
    }

    [Fact]
    public void TV16_VirtualInterruptDelivery_TakesRviWithoutExit()
    {
        var rig = new ApicvRig(1);
        rig.Write(0, 0x080, 0x40);
        rig.Inject(0, 0x51);
        Assert.Equal(0x51, rig.State(0).Rvi);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x51), rig[0].Accept());
        Assert.True(rig[0].Apic.Isr.Get(0x51));
        Assert.False(rig[0].Apic.Irr.Get(0x51));
        Assert.Equal(0x51, rig.State(0).Svi);
        Assert.Equal(0x50, rig[0].Apic.ProcessorPriority);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(1, probe.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(0, probe.Events(CostEvent.Injection));
    }

    [Fact]
    public void TV17_RviClassNotAboveVpprClass_IsNotRecognized()
    {
        var rig = new ApicvRig(1);
        rig.Write(0, 0x080, 0x40);
        rig.Inject(0, 0x45);
        Assert.Equal(0x45, rig.State(0).Rvi);
        Assert.Equal(CpuEvent.None, rig[0].Accept());
        Assert.True(rig[0].Apic.Irr.Get(0x45));
    }

    [Fact]
    public void TV18_X2ApicEoiWithNonZeroValue_FaultsWithoutExit()
    {
        var rig = new ApicvRig(1, x2Apic: true);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(ApicAccessResult.GeneralProtection, rig[0].WriteMsr(0x80B, 1));
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV19_X2ApicSelfIpiWithVectorBelow16_IsApicWriteExitAt3F0()
    {
        var rig = new ApicvRig(1, x2Apic: true);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x83F, 0x0F));
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x3F0), rig.State(0).LastExit);
    }

    [Fact]
    public void TV20_X2ApicTprWithHighBits_Faults()
    {
        var rig = new ApicvRig(1, x2Apic: true);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(ApicAccessResult.GeneralProtection, rig[0].WriteMsr(0x808, 0x100));
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV21_X2ApicIcrRead_Returns64BitValueWithoutExit()
    {
        var rig = new ApicvRig(2, x2Apic: true);
        rig[0].WriteMsr(0x830, (1UL << 32) | 0x0000_40EC);
        LedgerProbe probe = rig.Probe();
        Assert.Equal(ApicAccessResult.Ok, rig[0].ReadMsr(0x830, out ulong icr));
        Assert.Equal((1UL << 32) | 0x0000_40EC, icr);
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV22_PostToRunningTarget_IsProcessedWithoutExit()
    {
        var rig = new ApicvRig(2);
        LedgerProbe probe = rig.Probe();
        rig.Inject(1, 0x61);
        PostedInterruptDescriptor pid = rig.State(1).Descriptor;
        Assert.True(pid.Pir.IsEmpty);
        Assert.False(pid.OutstandingNotification);
        Assert.True(rig[1].Apic.Irr.Get(0x61));
        Assert.True(rig.State(1).Rvi >= 0x61);
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(1, probe.Events(CostEvent.PostedReceive));
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV23_PostWithOnAlreadySet_SetsPirWithoutNotification()
    {
        var rig = new ApicvRig(2);
        rig[1].SetHostState(VcpuHostState.Preempted);
        LedgerProbe probe = rig.Probe();
        rig.Inject(1, 0x61);
        PostedInterruptDescriptor pid = rig.State(1).Descriptor;
        Assert.True(pid.OutstandingNotification);
        rig.Inject(1, 0x62);
        Assert.True(pid.Pir.Get(0x61));
        Assert.True(pid.Pir.Get(0x62));
        Assert.Equal(0, probe.Events(CostEvent.PostedNotify));
        Assert.False(rig[1].Apic.Irr.Get(0x62));
    }

    [Fact]
    public void TV24_IommuPostToPreemptedTarget_WaitsForNextEntry()
    {
        var rig = new ApicvRig(2);
        rig[1].SetHostState(VcpuHostState.Preempted);
        PostedInterruptDescriptor pid = rig.State(1).Descriptor;
        Assert.True(pid.SuppressNotification);
        LedgerProbe probe = rig.Probe();
        rig.SendMsi(1, 0x63);
        Assert.True(pid.Pir.Get(0x63));
        Assert.False(pid.OutstandingNotification);
        Assert.False(rig[1].Apic.Irr.Get(0x63));
        Assert.Equal(0, probe.Events(CostEvent.PostedNotify));

        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x63), rig[1].Accept());
        Assert.Equal(1, probe.Events(CostEvent.PostedMergeOnEntry));
        Assert.True(pid.Pir.IsEmpty);
        Assert.False(pid.SuppressNotification);
        Assert.Equal(0, probe.TotalExits);
    }

    [Fact]
    public void TV25_PostToHaltedTarget_UsesWakeupVectorAndWakes()
    {
        var rig = new ApicvRig(2);
        rig[1].SetHostState(VcpuHostState.Halted);
        PostedInterruptDescriptor pid = rig.State(1).Descriptor;
        Assert.Equal(PostedInterruptDescriptor.WakeupVector, pid.NotificationVector);
        LedgerProbe probe = rig.Probe();
        rig.SendMsi(1, 0x64);
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(1, probe.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(VcpuHostState.Running, rig[1].HostState);
        Assert.Equal(PostedInterruptDescriptor.PostedInterruptVector, pid.NotificationVector);
        Assert.True(rig[1].Apic.Irr.Get(0x64));
        Assert.True(pid.Pir.IsEmpty);
    }

    [Fact]
    public void TV26_PostToSenderInRootMode_IsMergedBeforeReentryWithoutNotification()
    {
        var rig = new ApicvRig(2);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMmio(Base + 0x300, 0x0008_0041); // fixed 0x41, all including self
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.True(rig[0].Apic.Irr.Get(0x41));
        Assert.True(rig[1].Apic.Irr.Get(0x41));
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify)); // to vCPU 1 only
        Assert.Equal(1, probe.Events(CostEvent.PostedReceive));
        Assert.Equal(1, probe.Events(CostEvent.PostedMergeOnEntry)); // the sender's own PIR
        Assert.Equal(0, probe.Exits(ExitReason.ExternalInterrupt));
    }

    [Fact]
    public void TV27_IpivUnicast_PostsToTargetPidWithoutSenderExit()
    {
        var rig = new ApicvRig(4, x2Apic: true);
        rig[3].SetHostState(VcpuHostState.Preempted);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMsr(0x830, (3UL << 32) | 0xEC);
        Assert.Equal(0, probe.TotalExits);
        PostedInterruptDescriptor? pid = rig.Mode.PidTable[3];
        Assert.NotNull(pid);
        Assert.Equal(3, pid.VcpuIndex);
        Assert.True(pid.Pir.Get(0xEC));
        Assert.Equal(0, probe.Events(CostEvent.PostedNotify)); // SN = 1

        // The same to a running target notifies it (ON = 0, SN = 0).
        rig[0].WriteMsr(0x830, (2UL << 32) | 0xEC);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.True(rig[2].Apic.Irr.Get(0xEC));
    }

    [Theory]
    [InlineData(0x0000_08ECu, 0x01u)] // logical destination
    [InlineData(0x000C_00ECu, 0x00u)] // shorthand all excluding self
    [InlineData(0x0000_04ECu, 0x01u)] // NMI
    [InlineData(0x0000_01ECu, 0x01u)] // lowest priority
    public void TV28_IpivDoesNotVirtualizeLogicalShorthandOrOtherModes(uint low, uint destination)
    {
        var rig = new ApicvRig(4, x2Apic: true);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMsr(0x830, ((ulong)destination << 32) | low);
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x300), rig.State(0).LastExit);
    }

    [Fact]
    public void TV29_IpivDestinationBeyondLastIndex_IsApicWriteExit()
    {
        var rig = new ApicvRig(4, x2Apic: true);
        Assert.Equal(3u, rig.Mode.PidTable.LastIndex);
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMsr(0x830, (7UL << 32) | 0xEC);
        Assert.Equal(1, probe.Exits(ExitReason.ApicWrite));
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x300), rig.State(0).LastExit);
    }

    [Fact]
    public void TV30_XApicIdWrite_SetsStickyInhibitAndTurnsApicvOff()
    {
        var rig = new ApicvRig(2);
        LedgerProbe probe = rig.Probe();
        rig[1].WriteMmio(Base + 0x020, 0x0500_0000);
        Assert.Equal(new ApicvExit(ExitReason.ApicWrite, 0x020), rig.State(1).LastExit);
        Assert.True(rig.Mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.False(rig.Mode.IsAccelerated);

        // Sticky: restoring the ID does not lift it; every access is now emulated.
        rig[1].WriteMmio(Base + 0x020, 0x0100_0000);
        Assert.True(rig.Mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        LedgerProbe after = rig.Probe();
        rig[0].ReadMmio(Base + 0x080, out _);
        rig[0].WriteMmio(Base + 0x310, 0x0100_0000);
        rig[0].WriteMmio(Base + 0x300, 0x0000_0041);
        Assert.Equal(3, after.Exits(ExitReason.ApicMmio));
        Assert.Equal(0, after.Events(CostEvent.PostedNotify));
        Assert.Equal(1, after.Exits(ExitReason.ExternalInterrupt)); // emulated kick
        Assert.True(probe.Exits(ExitReason.ApicWrite) >= 1);
    }

    [Fact]
    public void TV41_BlockIrq_MovesPirIntoIrrAndFallsBackToInjection()
    {
        var rig = new ApicvRig(2);
        rig[1].SetHostState(VcpuHostState.Preempted);
        rig.Inject(1, 0x61, levelTriggered: true);
        Assert.True(rig.State(1).Descriptor.Pir.Get(0x61));
        LedgerProbe probe = rig.Probe();

        rig.Mode.SetInhibit(ApicvInhibit.BlockIrq, true);
        Assert.False(rig.Mode.IsAccelerated);
        Assert.True(rig.State(1).Descriptor.Pir.IsEmpty);
        Assert.True(rig[1].Apic.Irr.Get(0x61));
        Assert.True(rig[1].Apic.Tmr.Get(0x61)); // the held trigger mode reaches TMR
        Assert.Equal(1, probe.Exits(ExitReason.ExternalInterrupt)); // KVM_REQ_APICV_UPDATE kicks the running vCPU 0

        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x61), rig[1].Accept());
        Assert.Equal(1, probe.Events(CostEvent.Injection));
        Assert.Equal(0, probe.Events(CostEvent.VirtualInterruptDelivery));

        // A level EOI is emulated now: an APIC MMIO exit, not EOI-induced.
        rig[1].WriteMmio(Base + 0x0B0, 0);
        Assert.Equal(1, probe.Exits(ExitReason.ApicMmio));
        Assert.Equal(0, probe.Exits(ExitReason.EoiInduced));
    }

    [Fact]
    public void TV42_PitReinject_IsIgnoredByVmx()
    {
        var rig = new ApicvRig(1);
        rig.Mode.SetInhibit(ApicvInhibit.PitReinject, true);
        Assert.True(rig.Mode.IsAccelerated);
        Assert.Equal(0, rig.Mode.Inhibits.Toggles);
    }

    [Fact]
    public void LiftingTheLastInhibit_TurnsApicvBackOn()
    {
        var rig = new ApicvRig(2);
        rig.Mode.SetInhibit(ApicvInhibit.BlockIrq, true);
        rig.Mode.SetInhibit(ApicvInhibit.BlockIrq, false);
        Assert.True(rig.Mode.IsAccelerated);
        LedgerProbe probe = rig.Probe();
        rig[0].ReadMmio(Base + 0x080, out _);
        Assert.Equal(0, probe.TotalExits);
    }

    [Theory]
    [InlineData(false, true, false, false, false)] // APIC-register virtualization without TPR shadow
    [InlineData(false, false, true, false, false)] // VID without TPR shadow
    [InlineData(true, true, false, true, false)]   // posted interrupts without VID
    [InlineData(true, true, true, false, true)]    // IPIv without posted interrupts
    public void ImpossibleControlCombinations_AreRejected(bool tpr, bool regs, bool vid, bool pi, bool ipiv)
    {
        var features = new ApicvFeatures
        {
            TprShadow = tpr,
            ApicRegisterVirtualization = regs,
            VirtualInterruptDelivery = vid,
            PostedInterrupts = pi,
            IpiVirtualization = ipiv,
        };
        Assert.NotNull(features.Validate());
        Assert.Throws<ArgumentException>(() => new ApicvMode(features));
    }

    [Fact]
    public void PossibleControlCombinations_AreAccepted()
    {
        Assert.Null(ApicvFeatures.Default.Validate());
        Assert.Null(ApicvFeatures.WithoutIpiVirtualization.Validate());
        Assert.Null(ApicvFeatures.TprShadowOnly.Validate());
        Assert.Null(new ApicvFeatures { TprShadow = false, ApicRegisterVirtualization = false, VirtualInterruptDelivery = false, PostedInterrupts = false, IpiVirtualization = false }.Validate());
        var mode = new ApicvMode();
        Assert.Equal("apicv", mode.Name);
        Assert.Equal(ApicvInhibitMask.Vmx, mode.Inhibits.VendorMask);
    }

    [Fact]
    public void PidTable_HasAValidEntryAtEveryInitialApicId()
    {
        var mode = new ApicvMode();
        _ = new VirtualMachine(new MachineOptions { VcpuCount = 3, ApicIds = [0, 0x10, 0x08] }, mode);
        Assert.Equal(0x10u, mode.PidTable.LastIndex);
        Assert.Equal(3, mode.PidTable.Count);
        Assert.Equal(1, mode.PidTable[0x10]!.VcpuIndex);
        Assert.Equal(2, mode.PidTable[0x08]!.VcpuIndex);
        Assert.Null(mode.PidTable[0x01]);
        Assert.Null(mode.PidTable[0x11]);
        Assert.Equal(2u, mode.GetVcpuState(2).Descriptor.NotificationDestination); // host pCPU = vCPU index
        mode.PlaceVcpu(2, 0x40);
        Assert.Equal(0x40u, mode.GetVcpuState(2).Descriptor.NotificationDestination);
    }
}
