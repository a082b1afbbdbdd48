using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Xunit;

namespace Vapic.Virtualization.Tests.Apicv;

/// <summary>
/// The VID and IPIV columns of the exits-per-operation table (virtualization-reference §1.3), one
/// test per row, in xAPIC and x2APIC mode. Exits are counted for the guest operation's vCPU and
/// its target; "posted" rows also check the notification.
/// </summary>
public sealed class ApicvExitTableTests
{
    public static TheoryData<string, bool> Columns => new()
    {
        { "VID", false }, { "VID", true }, { "IPIV", false }, { "IPIV", true },
    };

    private static ApicvRig Rig(string column, bool x2Apic, int vcpus = 2) =>
        new(vcpus, x2Apic, column == "IPIV" ? ApicvFeatures.Default : ApicvFeatures.WithoutIpiVirtualization);

    [Theory]
    [MemberData(nameof(Columns))]
    public void ReadTprIsrIrrId_NoExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        rig.Read(0, 0x080);
        rig.Read(0, 0x100);
        rig.Read(0, 0x200);
        rig.Read(0, 0x020);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(4, probe.Events(CostEvent.AcceleratedAccess));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void ReadTimerCurrentCount_OneExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        rig.Read(0, 0x390);
        Assert.Equal(1, probe.TotalExits);
        Assert.Equal(1, probe.Exits(x2Apic ? ExitReason.MsrRead : ExitReason.ApicAccess));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void WriteTpr_NoExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        rig.Write(0, 0x080, 0x20);
        rig[0].WriteCr8(0);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(0, rig[0].Apic.TaskPriority);
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void EoiOfEdgeVector_NoExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        rig.Inject(0, 0x41);
        rig[0].Accept();
        LedgerProbe probe = rig.Probe();
        rig.Write(0, 0x0B0, 0);
        Assert.Equal(0, probe.TotalExits);
        Assert.True(rig[0].Apic.Isr.IsEmpty);
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void EoiOfLevelVector_OneEoiInducedExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        rig.Inject(0, 0x41, levelTriggered: true);
        rig[0].Accept();
        LedgerProbe probe = rig.Probe();
        rig.Write(0, 0x0B0, 0);
        Assert.Equal(1, probe.TotalExits);
        Assert.Equal(1, probe.Exits(ExitReason.EoiInduced));
        Assert.Equal(1, rig.Machine.Counters.EoiBroadcasts);
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void SelfIpi_NoExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        if (x2Apic)
        {
            rig[0].WriteMsr(0x83F, 0x41);
        }
        else
        {
            rig[0].WriteMmio(ApicvRig.ApicBase + 0x300, 0x0004_0041);
        }

        Assert.Equal(0, probe.TotalExits);
        Assert.True(rig[0].Apic.Irr.Get(0x41));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), rig[0].Accept());
        Assert.Equal(0, probe.TotalExits);
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void UnicastFixedPhysicalIpi_RunningTarget(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        if (!x2Apic)
        {
            rig[0].WriteMmio(ApicvRig.ApicBase + 0x310, 0x0100_0000);
        }

        LedgerProbe probe = rig.Probe();
        if (x2Apic)
        {
            rig[0].WriteMsr(0x830, (1UL << 32) | 0x41);
        }
        else
        {
            rig[0].WriteMmio(ApicvRig.ApicBase + 0x300, 0x0000_0041);
        }

        // VID: 1 (APIC write in xAPIC, WRMSR in x2APIC) + posted; IPIV: 0 + posted.
        if (column == "IPIV")
        {
            Assert.Equal(0, probe.TotalExits);
        }
        else
        {
            Assert.Equal(1, probe.TotalExits);
            Assert.Equal(1, probe.Exits(x2Apic ? ExitReason.MsrWrite : ExitReason.ApicWrite));
        }

        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(1, probe.Events(CostEvent.PostedReceive));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), rig[1].Accept());
        Assert.Equal(column == "IPIV" ? 0 : 1, probe.TotalExits); // the target takes none
        Assert.Equal(1, probe.Events(CostEvent.VirtualInterruptDelivery));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void UnicastFixedPhysicalIpi_HaltedTarget(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        if (!x2Apic)
        {
            rig[0].WriteMmio(ApicvRig.ApicBase + 0x310, 0x0100_0000);
        }

        rig[1].SetHostState(VcpuHostState.Halted);
        LedgerProbe probe = rig.Probe();
        rig.SendIpi(0, 0x41, 1);

        // VID: 1 + wake; IPIV: 0 + wake through the wakeup vector.
        Assert.Equal(column == "IPIV" ? 0 : 1, probe.TotalExits);
        Assert.Equal(1, probe.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(column == "IPIV" ? 1 : 0, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(VcpuHostState.Running, rig[1].HostState);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), rig[1].Accept());
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void LogicalOrBroadcastFixedIpi_OneExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic, vcpus: 3);
        if (!x2Apic)
        {
            rig.Write(1, 0x0D0, 0x0200_0000);
        }

        uint logicalDestination = x2Apic ? 0x0000_0002u : 0x02u; // vCPU 1 (x2APIC cluster 0 bit 1, xAPIC flat bit 1)
        LedgerProbe probe = rig.Probe();
        rig.SendIpi(0, 0x0000_0841, logicalDestination);
        Assert.Equal(1, probe.TotalExits);
        Assert.True(rig[1].Apic.Irr.Get(0x41));

        LedgerProbe broadcast = rig.Probe();
        rig.SendIpi(0, 0x000C_0042, 0); // all excluding self
        Assert.Equal(1, broadcast.TotalExits);
        Assert.True(rig[1].Apic.Irr.Get(0x42));
        Assert.True(rig[2].Apic.Irr.Get(0x42));
        Assert.Equal(2, broadcast.Events(CostEvent.PostedNotify));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void NmiInitSipiIpi_OneExitEach(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        if (!x2Apic)
        {
            rig[0].WriteMmio(ApicvRig.ApicBase + 0x310, 0x0100_0000);
        }

        foreach (uint low in new uint[] { 0x0000_0400, 0x0000_4500, 0x0000_4608 })
        {
            LedgerProbe probe = rig.Probe();
            rig.SendIpi(0, low, 1);
            ExitReason senderExit = x2Apic && column == "VID" ? ExitReason.MsrWrite : ExitReason.ApicWrite;
            Assert.Equal(1, probe.Exits(senderExit));

            // Not posted: the target is kicked (at most once until it re-enters) and the event injected.
            Assert.Equal(0, probe.Events(CostEvent.PostedNotify));
            rig[1].Accept();
        }
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void TimerInitialCountWrite_OneExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        rig.Write(0, 0x380, 1000);
        Assert.Equal(1, probe.TotalExits);
        Assert.Equal(1, probe.Exits(x2Apic ? ExitReason.MsrWrite : ExitReason.ApicWrite));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void TscDeadlineMsrWrite_OneExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        rig.Write(0, 0x320, 0x0004_0041); // LVT timer: TSC-deadline mode, vector 0x41
        LedgerProbe probe = rig.Probe();
        rig[0].WriteMsr(0x6E0, 1_000_000);
        Assert.Equal(1, probe.TotalExits);
        Assert.Equal(1, probe.Exits(ExitReason.MsrWrite));
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void DeviceInterruptWithIommuPosting_NoExit(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        LedgerProbe probe = rig.Probe();
        rig.SendMsi(1, 0x51);
        Assert.Equal(0, probe.TotalExits);
        Assert.Equal(1, probe.Events(CostEvent.PostedNotify));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x51), rig[1].Accept());
        Assert.Equal(0, probe.TotalExits);
    }

    [Theory]
    [MemberData(nameof(Columns))]
    public void TimerExpiry_OnRunningVcpuCostsHostTimerExit_OnHaltedVcpuAWakeup(string column, bool x2Apic)
    {
        ApicvRig rig = Rig(column, x2Apic);
        rig.Write(0, 0x320, 0x41);  // one-shot, vector 0x41
        rig.Write(0, 0x3E0, 0x0B);  // divide by 1
        rig.Write(0, 0x380, 100);
        LedgerProbe probe = rig.Probe();
        rig.Machine.Advance(1_000_000);
        Assert.Equal(1, probe.Exits(ExitReason.ExternalInterrupt));
        Assert.True(rig[0].Apic.Irr.Get(0x41));
        rig[0].Accept();

        rig.Write(0, 0x380, 100);
        rig[0].SetHostState(VcpuHostState.Halted);
        LedgerProbe halted = rig.Probe();
        rig.Machine.Advance(1_000_000);
        Assert.Equal(0, halted.TotalExits);
        Assert.Equal(1, halted.Events(CostEvent.WakeupBlockedVcpu));
    }
}
