using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>The AVIC scenario vectors of virtualization-reference §9 (TV31-TV40, TV43) as exact assertions.</summary>
public class AvicScenarioTests
{
    [Fact]
    public void TV31_FixedPhysicalIpiToRunningTarget_SetsIrrAndRingsDoorbellWithoutExit()
    {
        var m = new AvicTestMachine(3);
        AvicIncompleteIpiInfo? bootIpi = m.Mode.LastIncompleteIpi; // the INIT-SIPI of the boot
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00EC, destination: 2);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[2].Apic.Irr.Get(0xEC));
        Assert.Equal(bootIpi, m.Mode.LastIncompleteIpi);

        // The target takes it by virtual interrupt delivery: still no exit.
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xEC), m[2].Accept());
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(0, d.Events(CostEvent.Injection));
    }

    [Fact]
    public void TV32_TargetNotRunning_IncompleteIpiCause1_IrrAlreadySet_TargetWoken()
    {
        var m = new AvicTestMachine(3);
        m[2].SetHostState(VcpuHostState.Halted);
        Assert.False(m.Mode.PhysicalIdTable[2].IsRunning);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00EC, destination: 2);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        AvicIncompleteIpiInfo info = m.Mode.LastIncompleteIpi!.Value;
        Assert.Equal(AvicIncompleteIpiCause.TargetNotRunning, info.Cause);
        Assert.Equal(2u, info.Index);
        Assert.Equal(0x0200_0000_0000_00ECUL, info.ExitInfo1);
        Assert.Equal((1UL << 32) | 2, info.ExitInfo2);
        Assert.True(m[2].Apic.Irr.Get(0xEC));
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(VcpuHostState.Running, m[2].HostState);
        Assert.True(m.Mode.PhysicalIdTable[2].IsRunning);
    }

    [Fact]
    public void TV32_PreemptedTarget_IncompleteIpiWithoutWakeup_IrrEvaluatedAtNextEntry()
    {
        var m = new AvicTestMachine(3);
        m[2].SetHostState(VcpuHostState.Preempted);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00EC, destination: 2);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(0, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[2].Apic.Irr.Get(0xEC));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xEC), m[2].Accept());
        Assert.Equal(1, d.TotalExits);
    }

    [Fact]
    public void TV33_NmiIpi_IncompleteIpiCause0_EmulatedAndBusyClear()
    {
        var m = new AvicTestMachine(3);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_0400, destination: 1);
        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal(AvicIncompleteIpiCause.InvalidIntType, m.Mode.LastIncompleteIpi!.Value.Cause);

        // KVM emulates the NMI: the running target is kicked out to have it injected.
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(2, d.TotalExits);
        Assert.Equal(0u, m.Read(0, 0x300) & InterruptCommand.DeliveryStatus);
        Assert.Equal(CpuEventKind.Nmi, m[1].Accept().Kind);
    }

    [Fact]
    public void TV34_VectorBelow16_IncompleteIpiCause4_NothingDelivered()
    {
        var m = new AvicTestMachine(3);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_000A, destination: 2);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(AvicIncompleteIpiCause.InvalidIpiVector, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.False(m[2].Apic.Irr.Get(0x0A));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(CpuEvent.None, m[2].Accept());
    }

    [Fact]
    public void TV35_ClusterLdrWrite_TrapsAtD0_LogicalEntry8NamesTheWriter()
    {
        var m = new AvicTestMachine(2);
        m.Write(0, 0x0E0, 0x0FFF_FFFF);
        m.Write(1, 0x0E0, 0x0FFF_FFFF);
        Assert.True(m.Mode.IsAccelerated);
        LedgerDelta d = m.Measure();
        m.Write(1, 0x0D0, 0x2100_0000);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        AvicNoAccelInfo info = m.Mode.LastNoAccel!.Value;
        Assert.True(info.IsTrap);
        Assert.True(info.IsWrite);
        Assert.Equal(0x0D0, info.Offset);
        Assert.Equal(0x1_0000_00D0UL, info.ExitInfo1);
        Assert.Equal(new AvicLogicalIdEntry(1, Valid: true), m.Mode.LogicalIdTable[8]);
        Assert.Equal(0x8000_0001u, m.Mode.LogicalIdTable[8].Raw);
    }

    [Fact]
    public void TV36_FlatLdr_LogicalIndex3()
    {
        var m = new AvicTestMachine(2);
        m.Write(1, 0x0D0, 0x0800_0000);
        Assert.Equal(3, AvicLogicalIdTable.IndexOf(0x0800_0000, flat: true));
        Assert.Equal(new AvicLogicalIdEntry(1, Valid: true), m.Mode.LogicalIdTable[3]);
        Assert.False(m.Mode.LogicalIdTable[0].Valid);
    }

    [Fact]
    public void TV37_CurrentCountRead_FaultsAndIsEmulated()
    {
        var m = new AvicTestMachine(1);
        m.Write(0, 0x3E0, 0xB);            // divide by 1
        m.Write(0, 0x380, 1000);
        m.Machine.Advance(100);
        LedgerDelta d = m.Measure();
        Assert.Equal(900u, m.Read(0, 0x390));
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        AvicNoAccelInfo info = m.Mode.LastNoAccel!.Value;
        Assert.False(info.IsTrap);
        Assert.False(info.IsWrite);
        Assert.Equal(0x390, info.Offset);
    }

    [Fact]
    public void TV38_LevelEoiTrapsAtB0AndReachesIoApic_EdgeEoiDoesNot()
    {
        var m = new AvicTestMachine(1);
        m.TakeLevelInterrupt(0, 0x40);
        long broadcasts = m.Machine.Counters.EoiBroadcasts;
        LedgerDelta d = m.Measure();
        m.Machine.SetIrq(1, false);
        m.Write(0, 0x0B0, 0);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        AvicNoAccelInfo info = m.Mode.LastNoAccel!.Value;
        Assert.True(info.IsTrap);
        Assert.Equal(0x0B0, info.Offset);
        Assert.Equal(0x40, info.Vector);
        Assert.Equal(broadcasts + 1, m.Machine.Counters.EoiBroadcasts);

        // An edge vector: self-IPI, take, EOI, all without exit.
        m.SendIpi(0, 0x0004_0041, 0);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), m[0].Accept());
        m.Write(0, 0x0B0, 0);
        Assert.Equal(1, d.TotalExits);
        Assert.Equal(broadcasts + 1, m.Machine.Counters.EoiBroadcasts);
    }

    [Fact]
    public void TV39_WithoutX2Avic_ApicId300_SetsPhysicalIdTooBig()
    {
        var m = new AvicTestMachine(2, x2Apic: true, features: new AvicFeatures { X2Avic = false }, apicIds: [0, 300]);
        Assert.Equal(0xFE, m.Mode.Features.MaxPhysicalIdIndex);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.PhysicalIdTooBig));
        Assert.False(m.Mode.IsAccelerated);
        Assert.Equal(-1, m.Mode.PhysicalIdTable.IndexOf(1));
    }

    [Theory]
    [InlineData(300u, 0x1FF, false)]
    [InlineData(600u, 0x1FF, true)]
    [InlineData(600u, 0xFFF, false)]
    public void TV39_X2AvicTableLimits(uint apicId, int maxIndex, bool tooBig)
    {
        var m = new AvicTestMachine(2, x2Apic: true, features: new AvicFeatures { MaxPhysicalIdIndex = maxIndex }, apicIds: [0, apicId]);
        Assert.Equal(tooBig, m.Mode.Inhibits.Contains(ApicvInhibit.PhysicalIdTooBig));
        Assert.Equal(!tooBig, m.Mode.IsAccelerated);
        if (!tooBig)
        {
            Assert.Equal(1, m.Mode.PhysicalIdTable[apicId].VcpuIndex);
        }
    }

    [Fact]
    public void TV40_X2Avic_LvtTimerMsrStaysIntercepted()
    {
        var m = new AvicTestMachine(1, x2Apic: true);
        LedgerDelta d = m.Measure();
        Assert.Equal(ApicAccessResult.Ok, m[0].WriteMsr(0x832, 0x0001_00EF));
        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal(ApicAccessResult.Ok, m[0].ReadMsr(0x832, out _));
        Assert.Equal(1, d.Exits(ExitReason.MsrRead));
    }

    [Fact]
    public void TV43_SecondSvmReasonOnlyUpdatesTheMask()
    {
        var mode = new AvicMode();
        _ = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        mode.SetInhibit(ApicvInhibit.PitReinject, true);
        long toggles = mode.Inhibits.Toggles;
        mode.SetInhibit(ApicvInhibit.IrqWindow, true);
        Assert.Equal(toggles, mode.Inhibits.Toggles);
        Assert.Equal(ApicvInhibitMask.PitReinject | ApicvInhibitMask.IrqWindow, mode.Inhibits.Effective);
        Assert.False(mode.IsAccelerated);
    }

    [Fact]
    public void NestedSetVmWide_FallsBackToEmulation()
    {
        // A caller may still set NESTED VM-wide; KVM's own NESTED is per vCPU (TV44, AvicNestedInhibitTests).
        var m = new AvicTestMachine(3);
        m.Mode.SetInhibit(ApicvInhibit.Nested, true);
        Assert.False(m.Mode.PhysicalIdTable[2].IsRunning);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00EC, destination: 2);
        Assert.Equal(2, d.Exits(ExitReason.ApicMmio));
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xEC), m[2].Accept());
        Assert.Equal(1, d.Events(CostEvent.Injection));

        m.Mode.SetInhibit(ApicvInhibit.Nested, false);
        Assert.True(m.Mode.PhysicalIdTable[2].IsRunning);
    }
}
