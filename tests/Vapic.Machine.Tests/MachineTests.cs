using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests;

/// <summary>
/// The machine as a whole: configuration, power-on state, virtual time and the timer queue, the
/// machine-level MSRs and reset (trace-format.md "The machine", "Devices and time"; lapic-reference §4, §9).
/// </summary>
public sealed class MachineTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(4097)]
    public void VcpuCountOutsideRange_IsRejected(int vcpus) =>
        Assert.Throws<ArgumentException>(() => NewMachine(vcpus));

    [Fact]
    public void DuplicateOrBroadcastIds_AreRejected()
    {
        Assert.Throws<ArgumentException>(() => NewMachine(2, ids: [3, 3]));
        Assert.Throws<ArgumentException>(() => NewMachine(1, ids: [0xFFFF_FFFF]));
        Assert.Throws<ArgumentException>(() => NewMachine(2, ids: [0]));
    }

    [Fact]
    public void PowerOn_BspRunsApsWait_AllXApicSoftwareDisabled()
    {
        VirtualMachine machine = NewMachine(3);
        Assert.Equal(VcpuRunState.Running, machine.GetVcpu(0).RunState);
        for (int i = 0; i < 3; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            Assert.Equal(i == 0 ? 0xFEE0_0900UL : 0xFEE0_0800UL, cpu.RdMsr(Msr.ApicBase));
            Assert.Equal((uint)i << 24, cpu.Read(Reg.Id)); // §15 #1
            Assert.Equal(0x0105_0014u, cpu.Read(Reg.Version)); // §15 #2
            Assert.Equal(0xFFu, cpu.Read(Reg.SpuriousVector));
            Assert.Equal(0xFFFF_FFFFu, cpu.Read(Reg.DestinationFormat));
            if (i > 0)
            {
                Assert.Equal(VcpuRunState.WaitForSipi, cpu.RunState);
            }
        }

        Assert.Equal(0, machine.Now);
        Assert.Equal(long.MaxValue, machine.NextTimerDeadline);
    }

    [Fact]
    public void IdAboveFE_StartsEveryLapicInX2ApicMode() // §15 #27
    {
        VirtualMachine machine = NewMachine(2, ids: [0, 0x123]);
        Assert.Equal(0xFEE0_0D00UL, machine.GetVcpu(0).RdMsr(Msr.ApicBase));
        Assert.Equal(0xFEE0_0C00UL, machine.GetVcpu(1).RdMsr(Msr.ApicBase));
        Assert.Equal(0x123UL, machine.GetVcpu(1).RdMsr(Msr.X2ApicId));
        Assert.Equal(0x0012_0008UL, machine.GetVcpu(1).RdMsr(Msr.X2ApicLogicalDestination));
        Assert.Equal(ApicAccessResult.Unmapped, machine.GetVcpu(0).ReadMmio(ApicBase + Reg.Version, out _));
    }

    [Fact]
    public void ForceX2Apic_LockedAcrossInit()
    {
        VirtualMachine machine = NewMachine(2, forceX2Apic: true);
        Vcpu cpu1 = machine.GetVcpu(1);
        Assert.Equal(0x20_0000UL, cpu1.RdMsr(Vcpu.MsrArchCapabilities));
        Assert.Equal(1UL, cpu1.RdMsr(Vcpu.MsrXApicDisableStatus));
        Assert.Equal(ApicAccessResult.GeneralProtection, cpu1.WriteMsr(Msr.ApicBase, 0xFEE0_0800));
        Assert.Equal(ApicAccessResult.GeneralProtection, cpu1.WriteMsr(Msr.ApicBase, 0xFEE0_0000));

        machine.GetVcpu(0).SendX2ApicIpi(1, 0x0000_4500);
        Assert.Equal(Init, cpu1.Accept());
        Assert.Equal(0xFEE0_0C00UL, cpu1.RdMsr(Msr.ApicBase));
    }

    [Fact]
    public void WithoutForceX2Apic_ArchCapabilitiesIsZeroAndDisableStatusFaults()
    {
        VirtualMachine machine = NewMachine(1);
        Assert.Equal(0UL, machine.GetVcpu(0).RdMsr(Vcpu.MsrArchCapabilities));
        Assert.Equal(ApicAccessResult.GeneralProtection, machine.GetVcpu(0).ReadMsr(Vcpu.MsrXApicDisableStatus, out _));
        Assert.Equal(ApicAccessResult.GeneralProtection, machine.GetVcpu(0).ReadMsr(0x1234, out _));
    }

    [Fact]
    public void Tsc_FollowsVirtualTimeAndPerCpuWrites()
    {
        VirtualMachine machine = NewMachine(2);
        machine.Advance(1000);
        Assert.Equal(1000UL, machine.GetVcpu(0).RdMsr(Vcpu.MsrTsc));
        machine.GetVcpu(1).WrMsr(Vcpu.MsrTsc, 50_000);
        machine.Advance(10);
        Assert.Equal(1010UL, machine.GetVcpu(0).RdMsr(Vcpu.MsrTsc));
        Assert.Equal(50_010UL, machine.GetVcpu(1).RdMsr(Vcpu.MsrTsc));
    }

    [Fact]
    public void TscDeadline_FollowsTheCpusOwnTsc()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.WrMsr(Vcpu.MsrTsc, 10_000); // guest TSC = now + 10 000
        cpu.Write(Reg.LvtTimer, 0x0004_00EF);
        cpu.WrMsr(Msr.TscDeadline, 15_000);

        Assert.Equal(5_000, machine.NextTimerDeadline);
        machine.AdvanceTo(4_999);
        Assert.False(cpu.IrrHas(0xEF));
        machine.AdvanceTo(5_000);
        Assert.True(cpu.IrrHas(0xEF));
        Assert.Equal(0UL, cpu.RdMsr(Msr.TscDeadline));
    }

    [Fact]
    public void TscDeadlineInThePast_FiresDuringTheWrite() // §15 #69
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        machine.Advance(1000);
        cpu.Write(Reg.LvtTimer, 0x0004_00EF);

        cpu.WrMsr(Msr.TscDeadline, 500);

        Assert.True(cpu.IrrHas(0xEF));
        Assert.Equal(0UL, cpu.RdMsr(Msr.TscDeadline));
        Assert.Equal(long.MaxValue, machine.NextTimerDeadline);
    }

    [Fact]
    public void Timers_FireAtTheirDeadline_TiesInVcpuOrder()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        for (int i = 0; i < 3; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            cpu.Write(Reg.DivideConfiguration, 0xB);
            cpu.Write(Reg.LvtTimer, 0x30u + (uint)i);
        }

        machine.GetVcpu(2).Write(Reg.InitialCount, 100);
        machine.GetVcpu(1).Write(Reg.InitialCount, 100);
        machine.GetVcpu(0).Write(Reg.InitialCount, 300);

        Assert.Equal(100, machine.NextTimerDeadline);
        machine.Advance(99);
        Assert.Equal(0, machine.Counters.TimerExpiries);
        machine.Advance(1);
        Assert.Equal(2, machine.Counters.TimerExpiries);
        Assert.True(machine.GetVcpu(1).IrrHas(0x31));
        Assert.True(machine.GetVcpu(2).IrrHas(0x32));
        Assert.Equal(300, machine.NextTimerDeadline);
        Assert.Equal(200u, machine.GetVcpu(0).Read(Reg.CurrentCount));

        machine.Advance(1_000_000);
        Assert.Equal(3, machine.Counters.TimerExpiries);
        Assert.Equal(1_000_100, machine.Now);
        Assert.Equal(long.MaxValue, machine.NextTimerDeadline);
    }

    [Fact]
    public void PeriodicTimer_ManyPeriodsInOneAdvance()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0x0); // ÷2
        cpu.Write(Reg.LvtTimer, 0x0002_0030);
        cpu.Write(Reg.InitialCount, 50); // period 100 ns

        machine.Advance(1050);

        Assert.Equal(10, cpu.Apic.Counters.TimerExpiries);
        Assert.Equal(9, cpu.Apic.Counters.Merged);
        Assert.Equal(1100, machine.NextTimerDeadline);
        Assert.Equal(25u, cpu.Read(Reg.CurrentCount));
    }

    [Fact]
    public void TimerInterrupt_FlowsThroughAcceptAndEoi() // §15 #63
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0xB);
        cpu.Write(Reg.LvtTimer, 0x0002_0030);
        cpu.Write(Reg.InitialCount, 100);

        machine.Advance(150);
        Assert.Equal(50u, cpu.Read(Reg.CurrentCount));
        Assert.Equal(Fixed(0x30), cpu.Accept());
        cpu.Eoi();
        machine.Advance(100);
        Assert.Equal(50u, cpu.Read(Reg.CurrentCount));
        Assert.Equal(Fixed(0x30), cpu.Accept());
        Assert.Equal(2, cpu.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void AdvanceToTheEndOfTime_WithNothingArmed_Returns()
    {
        VirtualMachine machine = NewMachine(1);
        machine.AdvanceTo(long.MaxValue);
        Assert.Equal(long.MaxValue, machine.Now);
    }

    [Fact]
    public void InitialCountNearTheEndOfTime_NeverExpiresInThePast()
    {
        // An expiry beyond the last representable instant never happens; it must not wrap into the past
        // (the machine would then fire the timer over and over). The write goes to the LAPIC window
        // directly so that a wrapped deadline fails this test instead of hanging it in RunDueTimers.
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.LvtTimer, 0x0002_0030);
        machine.AdvanceTo(long.MaxValue - 100);

        Assert.Equal(ApicAccessResult.Ok, cpu.Apic.WriteMmio(ApicBase + Reg.InitialCount, 1000));

        Assert.True(cpu.Apic.TimerDeadline > machine.Now, $"deadline {cpu.Apic.TimerDeadline} is before now {machine.Now}");
        Assert.True(machine.NextTimerDeadline > machine.Now);
        Assert.Equal(1000u, cpu.Read(Reg.CurrentCount));
    }

    [Fact]
    public void DivideConfigurationNearTheEndOfTime_NeverExpiresInThePast()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0xB);
        cpu.Write(Reg.LvtTimer, 0x0000_0030);
        machine.AdvanceTo(long.MaxValue - 2000);
        cpu.Write(Reg.InitialCount, 1000); // due at MaxValue - 1000: representable

        // ÷128: the remaining 1000 ticks now last 128 000 ns, past the end of time.
        Assert.Equal(ApicAccessResult.Ok, cpu.Apic.WriteMmio(ApicBase + Reg.DivideConfiguration, 0xA));

        Assert.True(cpu.Apic.TimerDeadline > machine.Now, $"deadline {cpu.Apic.TimerDeadline} is before now {machine.Now}");
    }

    [Fact]
    public void Timer_KeepsCountingAcrossTheSwitchToX2Apic()
    {
        // KVM keeps every register on xAPIC → x2APIC (lapic-reference §3), the timer included.
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0xB);
        cpu.Write(Reg.LvtTimer, 0x0002_0030);
        cpu.Write(Reg.InitialCount, 1000);
        machine.Advance(400);

        cpu.EnterX2Apic();

        Assert.Equal(600UL, cpu.RdMsr(Msr.Of(Reg.CurrentCount)));
        Assert.Equal(0x0002_0030UL, cpu.RdMsr(Msr.Of(Reg.LvtTimer)));
        machine.Advance(600);
        Assert.Equal(Fixed(0x30), cpu.Accept());
        Assert.Equal(2000, machine.NextTimerDeadline);
    }

    [Fact]
    public void Timer_ExpiringWhileGloballyDisabled_DeliversNothingAndKeepsCounting()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0xB);
        cpu.Write(Reg.LvtTimer, 0x0002_0030);
        cpu.Write(Reg.InitialCount, 100);

        cpu.DisableGlobally();
        machine.Advance(250);
        Assert.Equal(2, cpu.Apic.Counters.TimerExpiries);
        Assert.Equal(2, cpu.Apic.Counters.TimerExpiriesMasked);

        cpu.EnterXApic(); // A15: the state survived, so the periodic count runs on
        Assert.Equal(50u, cpu.Read(Reg.CurrentCount));
        Assert.True(cpu.IrrEmpty());
        machine.Advance(50);
        Assert.Equal(Fixed(0x30), cpu.Accept());
    }

    [Fact]
    public void AdvanceBackwards_Throws()
    {
        VirtualMachine machine = NewMachine(1);
        machine.Advance(10);
        Assert.Throws<ArgumentOutOfRangeException>(() => machine.AdvanceTo(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => machine.Advance(-1));
    }

    [Fact]
    public void IoApicStormGuard_DefersRedeliveryThroughTheTimerQueue()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.IoApicWrite(RteLow(10), 0x0000_8090);
        machine.SetIrq(10, true);

        // Each EOI finds the line still high and re-delivers, until the 10 000th is deferred by 10 ms.
        for (int i = 0; i < IoApic.StormEoiThreshold; i++)
        {
            Assert.Equal(Fixed(0x90), cpu.Accept());
            cpu.Eoi();
        }

        Assert.Equal(None, cpu.Accept());
        Assert.Equal(IoApic.StormDeferralNs, machine.NextTimerDeadline);
        machine.Advance(IoApic.StormDeferralNs - 1);
        Assert.Equal(None, cpu.Accept());
        machine.Advance(1);
        Assert.Equal(Fixed(0x90), cpu.Accept());
        Assert.Equal(long.MaxValue, machine.NextTimerDeadline);
    }

    [Fact]
    public void Reset_ReturnsToPowerOnAndKeepsTime()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.Write(Reg.LvtTimer, 0x30);
        cpu0.Write(Reg.InitialCount, 1000);
        machine.GetVcpu(1).EnterX2Apic();
        cpu0.IoApicWrite(RteLow(1), 0x31);
        machine.Advance(100);

        machine.Reset();

        Assert.Equal(100, machine.Now);
        Assert.Equal(long.MaxValue, machine.NextTimerDeadline);
        Assert.Equal(VcpuRunState.WaitForSipi, machine.GetVcpu(1).RunState);
        Assert.Equal(0xFEE0_0800UL, machine.GetVcpu(1).RdMsr(Msr.ApicBase));
        Assert.Equal(0xFFu, cpu0.Read(Reg.SpuriousVector));
        Assert.Equal(0x0001_0000u, cpu0.IoApicRead(RteLow(1)));
    }

    [Fact]
    public void Accept_OrderIsSmiInitNmiExtIntThenFixed()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.InterruptCommandLow, 0x0004_4051);
        machine.SendMsi(0xFEE0_0000, 0x0000_0700);
        machine.SendMsi(0xFEE0_0000, 0x0000_0400);
        machine.SendMsi(0xFEE0_0000, 0x0000_0200);

        Assert.Equal(Smi, cpu.Accept());
        Assert.Equal(Nmi, cpu.Accept());
        Assert.Equal(ExtInt, cpu.Accept());
        Assert.Equal(Fixed(0x51), cpu.Accept());
        Assert.Equal(None, cpu.Accept());
    }

    [Fact]
    public void IoApicWindow_IsReachedFromAnyCpuButNotThroughALapicInX2ApicMode()
    {
        VirtualMachine machine = NewMachine(2, forceX2Apic: true);
        machine.GetVcpu(1).IoApicWrite(0x00, 0x0500_0000);
        Assert.Equal(0x0500_0000u, machine.GetVcpu(0).IoApicRead(0x00));
        Assert.Equal(0x0017_0020u, machine.GetVcpu(0).IoApicRead(0x01));
        Assert.Equal(ApicAccessResult.Unmapped, machine.GetVcpu(0).ReadMmio(ApicBase + Reg.Id, out _));
    }
}
