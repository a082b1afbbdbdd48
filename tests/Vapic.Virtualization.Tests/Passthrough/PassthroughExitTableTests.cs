using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// virtualization-reference §1.3, column PT (ACRN LAPIC passthrough after the x2APIC switch, running
/// target unless stated): one test per row, counting the exits of the vCPU named and checking that
/// the target takes none.
/// </summary>
public class PassthroughExitTableTests
{
    [Fact]
    public void ReadTprIsrIrr_NoExit_ReadIdOrLdr_OneExit()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.Read(0, 0x080);
        rig.Read(0, 0x100);
        rig.Read(0, 0x200);
        d.AssertNoExit();
        Assert.Equal(3, d.Events(CostEvent.AcceleratedAccess));

        d = rig.Measure();
        Assert.Equal(0u, rig.Read(0, 0x020));
        Assert.Equal(0x0000_0001u, rig.Read(0, 0x0D0));
        d.AssertOnly(ExitReason.MsrRead, 2);
        Assert.Equal(2, rig.Mode.Counters.IdentityReadsVirtualized);
    }

    [Fact]
    public void ReadTimerCurrentCount_NoExit()
    {
        var rig = new PassthroughRig();
        rig.Write(0, 0x3E0, 0xB); // divide by 1: one tick per ns
        rig.Write(0, 0x380, 1000);
        rig.Machine.Advance(10);

        var d = rig.Measure();
        Assert.Equal(990u, rig.Read(0, 0x390));
        d.AssertNoExit();
    }

    [Fact]
    public void WriteTpr_NoExit()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.Write(0, 0x080, 0x20);
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteCr8(3));
        d.AssertNoExit();
        Assert.Equal(0x30, rig[0].Apic.TaskPriority);
    }

    [Fact]
    public void EoiOfAnEdgeVector_NoExit()
    {
        var rig = new PassthroughRig();
        rig.Write(0, 0x3F0, 0x41); // SELF IPI
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), rig[0].Accept());

        var d = rig.Measure();
        rig.Write(0, 0x0B0, 0);
        d.AssertNoExit();
        Assert.True(rig[0].Apic.Isr.IsEmpty);
    }

    [Fact]
    public void EoiOfALevelVector_NoExit()
    {
        var rig = new PassthroughRig();
        rig.ProgramIoApic(1, 0x61, level: true, destination: 0);
        rig.Machine.SetIrq(1, true);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x61), rig[0].Accept());
        Assert.True(rig[0].Apic.Tmr.Get(0x61));

        var d = rig.Measure();
        rig.Write(0, 0x0B0, 0);
        d.AssertNoExit();
    }

    [Fact]
    public void SelfIpi_NoExit_AndStaysOnItsOwnPcpu()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.Write(1, 0x3F0, 0x42);
        d.AssertNoExit();
        Assert.Equal([new PhysicalIpi(3, 0x16, 0x42, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestSelfIpi)], d.NewIpis());
        Assert.True(rig[1].Apic.Irr.Get(0x42));
    }

    [Fact]
    public void UnicastFixedPhysicalIpi_OneSenderExit_TargetNone()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.SendIpi(0, 0xEC, 2);

        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal([new PhysicalIpi(1, 0x1A, 0xEC, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr)], d.NewIpis());

        d = rig.Measure();
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xEC), rig[2].Accept());
        d.AssertNoExit();
        Assert.Equal(1, d.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(0, d.Events(CostEvent.Injection));
    }

    [Theory]
    [InlineData(VcpuHostState.Preempted)]
    [InlineData(VcpuHostState.Halted)]
    public void UnicastToATargetNotRunning_OneExit_NoWake(VcpuHostState state)
    {
        var rig = new PassthroughRig();
        rig[2].SetHostState(state);

        var d = rig.Measure();
        rig.SendIpi(0, 0xEC, 2);

        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal(0, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(1, d.PhysicalIpis);

        // A halted passthrough vCPU sits in HLT inside the guest (HLT exiting off): the physical
        // interrupt resumes it without the host; a preempted one stays off its pCPU.
        Assert.Equal(state == VcpuHostState.Halted ? VcpuHostState.Running : state, rig[2].HostState);
    }

    [Fact]
    public void LogicalOrBroadcastFixedIpi_OneExit()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.SendIpi(0, 0x851, 0x0000_0006); // logical, cluster 0, vCPUs 1 and 2
        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal(2, d.PhysicalIpis);

        d = rig.Measure();
        rig.SendIpi(1, 0x52, 0xFFFF_FFFF); // physical broadcast
        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal([0x12u, 0x16u, 0x1Au], d.NewIpis().Select(ipi => ipi.DestinationPhysicalId));
    }

    [Fact]
    public void NmiIpi_OneSenderExit_DeliveredWithoutExit()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.SendIpi(0, 0x400, 1);
        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal([new PhysicalIpi(1, 0x16, 0, DeliveryMode.Nmi, PhysicalIpiOrigin.GuestIcr)], d.NewIpis());

        d = rig.Measure();
        Assert.Equal(CpuEventKind.Nmi, rig[1].Accept().Kind);
        d.AssertNoExit();
    }

    [Fact]
    public void InitAndSipiIpi_OneSenderExit_EmulatedWithAKick()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.SendIpi(0, 0x4500, 2);

        // The sender's ICR exit, and the target kicked out of the guest (ACRN's INIT-signal kick).
        Assert.Equal(1, d.Exits(ExitReason.MsrWrite));
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(2, d.TotalExits);
        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(1, rig.Mode.Counters.InitSipiEmulated);
    }

    [Fact]
    public void TimerInitialCountWrite_NoExit_AndTheExpiryNeither()
    {
        var rig = new PassthroughRig();
        rig.Write(1, 0x320, 0x31);
        rig.Write(1, 0x3E0, 0xB);

        var d = rig.Measure();
        rig.Write(1, 0x380, 100);
        rig.Machine.Advance(100);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x31), rig[1].Accept());
        d.AssertNoExit();
    }

    [Theory]
    [InlineData(0L, 0L)]
    [InlineData(5_000L, 1L)]
    public void TscDeadlineWrite_NoExitExactlyWhenTheOffsetIsZero(long offset, long exits)
    {
        var rig = new PassthroughRig(vcpus: 1, tscOffset: offset);
        rig.Write(0, 0x320, 0x4_0031); // LVT timer: TSC-deadline mode, vector 0x31

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x6E0, 1_000_000));
        Assert.Equal(exits, d.TotalExits);
        Assert.Equal(exits, d.Exits(ExitReason.MsrWrite));
    }

    [Fact]
    public void DeviceMsi_NoExit_StraightToThePcpu()
    {
        var rig = new PassthroughRig();
        var d = rig.Measure();
        rig.Machine.SendMsi(0xFEE0_1000, 0x55); // physical destination 1

        d.AssertNoExit();
        Assert.Equal([new PhysicalIpi(-1, 0x16, 0x55, DeliveryMode.Fixed, PhysicalIpiOrigin.DeviceMsi)], d.NewIpis());
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x55), rig[1].Accept());
        d.AssertNoExit();
    }

    [Fact]
    public void BeforeTheSwitch_EveryAccessExitsAsUnderEmulation()
    {
        var rig = new PassthroughRig(switchToX2Apic: false);
        var d = rig.Measure();
        rig.Write(0, 0x080, 0x20);
        rig.Read(0, 0x020);
        rig.SendIpi(0, 0x41, 1);
        Assert.Equal(4, d.Exits(ExitReason.ApicMmio)); // TPR, ID, ICR high, ICR low
        rig[0].ReadCr8();
        Assert.Equal(1, d.Exits(ExitReason.Cr8Read));
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt)); // the running target kicked
        Assert.Equal(0, d.PhysicalIpis);
    }
}
