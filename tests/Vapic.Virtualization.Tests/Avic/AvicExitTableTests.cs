using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>
/// virtualization-reference §1.3, columns AVIC (xAPIC guest, <c>x2Apic: false</c>) and X2AVIC
/// (x2APIC guest, <c>x2Apic: true</c>): one test per row, running targets unless the row says otherwise.
/// </summary>
public class AvicExitTableTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadTprIsrIrrId_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(2, x2Apic);
        LedgerDelta d = m.Measure();
        m.Read(0, 0x080);
        m.Read(0, 0x100);
        m.Read(0, 0x200);
        m.Read(0, 0x020);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(4, d.Events(CostEvent.AcceleratedAccess));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadTimerCurrentCount_OneNoAccelFault(bool x2Apic)
    {
        // X2AVIC: KVM leaves TMCCT (0x839) unintercepted; the hardware faults on it (§1.3 note).
        var m = new AvicTestMachine(1, x2Apic);
        LedgerDelta d = m.Measure();
        m.Read(0, 0x390);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        Assert.Equal(1, m.Mode.NoAccelFaults);
        Assert.Equal(0x390, m.Mode.LastNoAccel!.Value.Offset);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriteTpr_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(1, x2Apic);
        LedgerDelta d = m.Measure();
        m.Write(0, 0x080, 0x30);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(0x30, m[0].Apic.TaskPriority);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EoiOfEdgeVector_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(2, x2Apic);
        m.SendIpi(1, 0x0000_0051, destination: 0);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x51), m[0].Accept());
        LedgerDelta d = m.Measure();
        m.Write(0, 0x0B0, 0);
        Assert.Equal(0, d.TotalExits);
        Assert.False(m[0].Apic.Isr.Get(0x51));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EoiOfLevelVector_OneNoAccelTrap(bool x2Apic)
    {
        var m = new AvicTestMachine(1, x2Apic);
        m.TakeLevelInterrupt(0, 0x61);
        m.Machine.SetIrq(1, false);
        LedgerDelta d = m.Measure();
        m.Write(0, 0x0B0, 0);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        Assert.True(m.Mode.LastNoAccel!.Value.IsTrap);
        Assert.Equal(0x61, m.Mode.LastNoAccel!.Value.Vector);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SelfIpiByShorthand_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(1, x2Apic);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0004_0071, 0);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x71), m[0].Accept());
        Assert.Equal(0, d.TotalExits);
    }

    [Fact]
    public void X2Avic_SelfIpiMsr_IsIntercepted()
    {
        // KVM's x2AVIC pass-through list does not contain SELF IPI (0x83F): the WRMSR exits.
        var m = new AvicTestMachine(1, x2Apic: true);
        LedgerDelta d = m.Measure();
        Assert.Equal(ApicAccessResult.Ok, m[0].WriteMsr(0x83F, 0x72));
        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.True(m[0].Apic.Irr.Get(0x72));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UnicastFixedPhysicalIpi_NoExitPlusDoorbell(bool x2Apic)
    {
        var m = new AvicTestMachine(3, x2Apic);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00B1, destination: 1);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[1].Apic.Irr.Get(0xB1));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UnicastFixedPhysicalIpi_TargetHalted_OneIncompleteIpiPlusWake(bool x2Apic)
    {
        var m = new AvicTestMachine(3, x2Apic);
        m[1].SetHostState(VcpuHostState.Halted);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00B1, destination: 1);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(AvicIncompleteIpiCause.TargetNotRunning, m.Mode.LastIncompleteIpi!.Value.Cause);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LogicalFixedIpi_AllTargetsValidAndRunning_NoExit_ElseOne(bool x2Apic)
    {
        var m = new AvicTestMachine(3, x2Apic);
        if (!x2Apic)
        {
            for (int i = 0; i < 3; i++)
            {
                m.Write(i, 0x0D0, 1u << (24 + i)); // flat, one bit each
            }
        }

        // vCPUs 1 and 2: flat bits 1|2, or x2APIC cluster 0 members 1|2 (the same mask).
        Assert.True(m.Mode.IsAccelerated);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_08C1, destination: 0x6);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(2, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[1].Apic.Irr.Get(0xC1) && m[2].Apic.Irr.Get(0xC1));

        m[2].SetHostState(VcpuHostState.Preempted);
        m.SendIpi(0, 0x0000_08C2, destination: 0x6);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(2u, m.Mode.LastIncompleteIpi!.Value.Index);
        Assert.True(m[1].Apic.Irr.Get(0xC2) && m[2].Apic.Irr.Get(0xC2));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BroadcastFixedIpi_AllTargetsRunning_NoExit_ElseOne(bool x2Apic)
    {
        var m = new AvicTestMachine(4, x2Apic);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x000C_00D1, 0); // all excluding self
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(3, d.Events(CostEvent.AvicDoorbell));

        m.SendIpi(0, 0x0000_00D2, x2Apic ? 0xFFFF_FFFF : 0xFF); // physical broadcast, including self
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(6, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[0].Apic.Irr.Get(0xD2));

        m[3].SetHostState(VcpuHostState.Halted);
        m.SendIpi(0, 0x000C_00D3, 0);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(3u, m.Mode.LastIncompleteIpi!.Value.Index);
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
    }

    [Theory]
    [InlineData(false, 0x0000_0400u)] // NMI
    [InlineData(false, 0x0000_4500u)] // INIT
    [InlineData(false, 0x0000_0608u)] // SIPI
    [InlineData(false, 0x0000_0200u)] // SMI
    [InlineData(false, 0x0000_0131u)] // lowest priority
    [InlineData(false, 0x0000_8031u)] // fixed, level trigger
    [InlineData(true, 0x0000_0400u)]
    [InlineData(true, 0x0000_4500u)]
    [InlineData(true, 0x0000_0608u)]
    public void NonFixedOrNonEdgeIpi_OneIncompleteIpiInvalidIntType(bool x2Apic, uint low)
    {
        var m = new AvicTestMachine(2, x2Apic);
        long before = m.Mode.IncompleteIpis(AvicIncompleteIpiCause.InvalidIntType); // the boot's INIT and SIPI
        LedgerDelta d = m.Measure();
        m.SendIpi(0, low, destination: 1);
        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal(AvicIncompleteIpiCause.InvalidIntType, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.Equal(before + 1, m.Mode.IncompleteIpis(AvicIncompleteIpiCause.InvalidIntType));
        Assert.Equal(((ulong)(x2Apic ? 1u : 0x0100_0000u) << 32) | low, m.Mode.LastIncompleteIpi!.Value.ExitInfo1);

        // What else happens is KVM's emulated send: a kick for NMI/INIT/SMI, a doorbell for the
        // fixed-class messages, nothing for a SIPI the running target ignores.
        Assert.Equal(d.TotalExits, 1 + d.Exits(ExitReason.ExternalInterrupt));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TimerInitialCountWrite_OneNoAccelTrap(bool x2Apic)
    {
        // X2AVIC: KVM leaves TMICT (0x838) unintercepted, so the write traps as in the xAPIC page.
        var m = new AvicTestMachine(1, x2Apic);
        LedgerDelta d = m.Measure();
        m.Write(0, 0x380, 5000);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        Assert.True(m.Mode.LastNoAccel!.Value.IsTrap);
        Assert.Equal(0x380, m.Mode.LastNoAccel!.Value.Offset);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TscDeadlineMsrWrite_OneMsrExit(bool x2Apic)
    {
        var m = new AvicTestMachine(1, x2Apic);
        m.Write(0, 0x320, 0x0004_00E0); // TSC-deadline mode
        LedgerDelta d = m.Measure();
        Assert.Equal(ApicAccessResult.Ok, m[0].WriteMsr(0x6E0, 1_000_000));
        d.AssertOnly(ExitReason.MsrWrite, 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DeviceInterrupt_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(2, x2Apic);
        LedgerDelta d = m.Measure();
        Assert.Equal(MsiDecodeResult.Ok, m.Machine.SendMsi(0xFEE0_1000, 0x0000_0044)); // fixed, edge, dest 1
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x44), m[1].Accept());
        Assert.Equal(0, d.TotalExits);

        // Halted: woken; preempted: nothing until the next entry (IRR evaluated at VMRUN).
        m[1].SetHostState(VcpuHostState.Halted);
        m.Machine.SendMsi(0xFEE0_1000, 0x0000_0045);
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        m[1].SetHostState(VcpuHostState.Preempted);
        m.Machine.SendMsi(0xFEE0_1000, 0x0000_0046);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.True(m[1].Apic.Irr.Get(0x46));
        Assert.Equal(0, d.TotalExits);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cr8ReadAndWrite_NoExit(bool x2Apic)
    {
        var m = new AvicTestMachine(1, x2Apic);
        LedgerDelta d = m.Measure();
        Assert.Equal(ApicAccessResult.Ok, m[0].WriteCr8(5));
        Assert.Equal(5UL, m[0].ReadCr8());
        Assert.Equal(0, d.TotalExits);
    }

    [Fact]
    public void HybridAvic_EveryX2ApicMsrExits_ButDeliveryStaysAccelerated()
    {
        var m = new AvicTestMachine(2, x2Apic: true, features: new AvicFeatures { X2Avic = false });
        Assert.True(m.Mode.IsAccelerated);
        LedgerDelta d = m.Measure();
        m.Read(0, 0x080);
        m.Write(0, 0x080, 0x10);
        Assert.Equal(1, d.Exits(ExitReason.MsrRead));
        Assert.Equal(1, d.Exits(ExitReason.MsrWrite));

        m.SendIpi(0, 0x0000_00E1, destination: 1);
        Assert.Equal(2, d.Exits(ExitReason.MsrWrite));
        Assert.Equal(0, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(0, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xE1), m[1].Accept());
        Assert.Equal(1, d.Events(CostEvent.VirtualInterruptDelivery));
    }

    [Fact]
    public void ApicBaseMsr_AlwaysExits()
    {
        var m = new AvicTestMachine(1, x2Apic: true);
        LedgerDelta d = m.Measure();
        Assert.Equal(ApicAccessResult.Ok, m[0].ReadMsr(0x1B, out _));
        d.AssertOnly(ExitReason.MsrRead, 1);
    }
}
