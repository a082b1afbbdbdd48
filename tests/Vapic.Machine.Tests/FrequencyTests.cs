using System.Numerics;
using CsCheck;
using Xunit;

namespace Vapic.Machine.Tests;

/// <summary>
/// A machine with a TSC or an APIC timer bus that is not 1 GHz (MachineOptions.TscFrequencyHz,
/// ApicTimerFrequencyHz): guest TSC = ⌊t × f / 10^9⌋ + offset modulo 2^64 (SDM "Time-Stamp Counter"), a
/// TSC deadline fires at the first nanosecond the TSC reaches it (SDM "TSC-Deadline Mode"), and the
/// APIC timer counts once per bus clock divided by DCR (SDM "APIC Timer").
/// </summary>
public sealed class FrequencyTests
{
    private const uint TimerVector = 0x40;

    private static VirtualMachine Machine(long tscHz = MachineOptions.DefaultFrequencyHz, long apicHz = MachineOptions.DefaultFrequencyHz, long tscOffset = 0) =>
        new(new MachineOptions { TscFrequencyHz = tscHz, ApicTimerFrequencyHz = apicHz, TscOffset = tscOffset });

    /// <summary>SVR enabled and LVT Timer in TSC-deadline mode (bits 18:17 = 10b), vector 0x40.</summary>
    private static Vcpu DeadlineMode(VirtualMachine machine)
    {
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.LvtTimer, (2u << 17) | TimerVector);
        return cpu;
    }

    [Theory] // f, offset, t → RDMSR IA32_TSC = ⌊t × f / 10^9⌋ + offset
    [InlineData(2_500_000_000L, 0L, 1_000L, 2_500UL)]
    [InlineData(2_500_000_000L, 12_345L, 1_000L, 14_845UL)]
    [InlineData(2_500_000_000L, 0L, 1_001L, 2_502UL)]
    [InlineData(1_000_000L, 0L, 1_999L, 1UL)]
    [InlineData(3_000_000_000L, -3_001L, 1_000L, ulong.MaxValue)]
    [InlineData(1_000_000_000L, 5L, 777L, 782UL)]
    public void RdmsrTsc_IsFloorOfTimeTimesFrequencyPlusOffset(long frequency, long offset, long time, ulong expected)
    {
        VirtualMachine machine = Machine(tscHz: frequency, tscOffset: offset);
        machine.Advance(time);
        Assert.Equal(expected, machine.GetVcpu(0).RdMsr(Vcpu.MsrTsc));
        Assert.Equal(expected, machine.GetVcpu(0).Apic.GuestTscNow);
    }

    [Fact]
    public void TscDeadline_At2Point5GHz_Fires1001NanosecondsLater()
    {
        // At t = 1000 the TSC is 2500; D = 2500 + 2501 needs ⌈2501 / 2.5⌉ = 1001 ns (TSC 5002 at t = 2001).
        VirtualMachine machine = Machine(tscHz: 2_500_000_000L);
        Vcpu cpu = DeadlineMode(machine);
        machine.Advance(1_000);
        ulong deadline = cpu.RdMsr(Vcpu.MsrTsc) + 2_501;
        cpu.WrMsr(Msr.TscDeadline, deadline);
        Assert.Equal(2_001L, machine.NextTimerDeadline);

        machine.Advance(1_000);
        Assert.Equal(0, cpu.Apic.Counters.TimerExpiries);
        Assert.Equal(5_000UL, cpu.RdMsr(Vcpu.MsrTsc));
        Assert.Equal(deadline, cpu.RdMsr(Msr.TscDeadline));

        machine.Advance(1);
        Assert.Equal(1, cpu.Apic.Counters.TimerExpiries);
        Assert.True(cpu.Apic.Irr.Get((int)TimerVector));
        Assert.Equal(0UL, cpu.RdMsr(Msr.TscDeadline));
    }

    [Fact]
    public void TscDeadline_AlreadyReached_FiresAtTheWrite()
    {
        VirtualMachine machine = Machine(tscHz: 2_500_000_000L);
        Vcpu cpu = DeadlineMode(machine);
        machine.Advance(1_001);
        cpu.WrMsr(Msr.TscDeadline, 2_502);   // ⌊2502.5⌋: reached
        Assert.Equal(1, cpu.Apic.Counters.TimerExpiries);
        Assert.Equal(1_001, machine.Now);
    }

    [Fact]
    public void WrmsrTsc_ThenAdvance_CountsOnFromTheWrittenValueAtTheFrequency()
    {
        VirtualMachine machine = Machine(tscHz: 2_500_000_000L);
        Vcpu cpu = machine.GetVcpu(0);
        machine.Advance(1_001);
        cpu.WrMsr(Vcpu.MsrTsc, 1_000_000);
        Assert.Equal(1_000_000UL, cpu.RdMsr(Vcpu.MsrTsc));

        machine.Advance(1);        // ⌊2505⌋ − ⌊2502.5⌋ = 3 ticks
        Assert.Equal(1_000_003UL, cpu.RdMsr(Vcpu.MsrTsc));
        machine.Advance(398);      // t = 1400: ⌊3500⌋ − 2502 = 998 ticks since the write
        Assert.Equal(1_000_998UL, cpu.RdMsr(Vcpu.MsrTsc));
    }

    [Fact]
    public void WrmsrTsc_MovesAnArmedDeadline()
    {
        VirtualMachine machine = Machine(tscHz: 2_500_000_000L);
        Vcpu cpu = DeadlineMode(machine);
        machine.Advance(1_000);
        cpu.WrMsr(Msr.TscDeadline, 100_000);
        Assert.Equal(40_000L, machine.NextTimerDeadline);

        cpu.WrMsr(Vcpu.MsrTsc, 97_500);   // 2,500 ticks left: 1,000 ns
        Assert.Equal(2_000L, machine.NextTimerDeadline);
        machine.Advance(999);
        Assert.Equal(0, cpu.Apic.Counters.TimerExpiries);
        machine.Advance(1);
        Assert.Equal(1, cpu.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void ApicBus25MHz_PeriodicTimer_FiresAtExactMultiplesOfThePeriod()
    {
        // 40 ns per bus clock, ÷1, TMICT 250: a 10,000 ns period.
        VirtualMachine machine = Machine(apicHz: 25_000_000L);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0xB);
        cpu.Write(Reg.LvtTimer, (1u << 17) | TimerVector);
        cpu.Write(Reg.InitialCount, 250);

        for (int k = 1; k <= 4; k++)
        {
            machine.AdvanceTo((k * 10_000L) - 1);
            Assert.Equal(k - 1, cpu.Apic.Counters.TimerExpiries);
            machine.AdvanceTo(k * 10_000L);
            Assert.Equal(k, cpu.Apic.Counters.TimerExpiries);
        }

        machine.AdvanceTo(45_000);
        Assert.Equal(125u, cpu.Read(Reg.CurrentCount));
        Assert.Equal(50_000L, machine.NextTimerDeadline);
    }

    [Fact]
    public void ApicBus25MHz_OneShotDivide16_ExpiresAfter250TimesSixHundredFortyNanoseconds()
    {
        VirtualMachine machine = Machine(apicHz: 25_000_000L);
        Vcpu cpu = machine.GetVcpu(0);
        cpu.EnableSoftware();
        cpu.Write(Reg.DivideConfiguration, 0x3);
        cpu.Write(Reg.LvtTimer, TimerVector);
        machine.Advance(123);
        cpu.Write(Reg.InitialCount, 250);
        Assert.Equal(123L + 160_000, machine.NextTimerDeadline);
        machine.Advance(80_000);
        Assert.Equal(125u, cpu.Read(Reg.CurrentCount));
        machine.Advance(80_000);
        Assert.Equal(1, cpu.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void Options_ArePlumbedIntoEveryLapic()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 3, TscFrequencyHz = 3_200_000_000L, ApicTimerFrequencyHz = 100_000_000L });
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal((3_200_000_000L, 10), (machine.GetVcpu(i).Apic.Options.TscFrequencyHz, machine.GetVcpu(i).Apic.Options.BusCycleNs));
        }
    }

    /// <summary>The architectural guest TSC, computed without the model: ⌊t × f / 10^9⌋ + offset modulo 2^64.</summary>
    private static ulong ReferenceTsc(long time, long frequency, long offset) =>
        (ulong)(((new BigInteger(time) * frequency / 1_000_000_000) + offset) & ulong.MaxValue);

    [Fact]
    public void TscDeadline_AnyFrequencyOffsetAndDeadline_FiresAtTheFirstNanosecondTheTscReachesIt() =>
        Gen.Select(
            Gen.Long[1_000_000, 10_000_000_000],
            Gen.OneOf(Gen.Long, Gen.Long[-(1L << 41), -1]),                        // any offset, or one leaving the TSC just below 2^64
            Gen.Long[0, 1_000_000_000_000],
            Gen.OneOf(Gen.Long[-1_000, 0], Gen.Long[1, 10_000], Gen.Long[1, 1L << 40]))   // reached, near, far
            .Sample((frequency, offsetOrWrap, start, ahead) =>
            {
                // An offset in [−2^41, −1] is taken from the TSC at `start`: it then reads 2^64 + offsetOrWrap, so a deadline ahead may wrap.
                long ticksAtStart = (long)(new BigInteger(start) * frequency / 1_000_000_000);
                long offset = offsetOrWrap >= -(1L << 41) && offsetOrWrap < 0 ? offsetOrWrap - ticksAtStart : offsetOrWrap;
                VirtualMachine machine = Machine(tscHz: frequency, tscOffset: offset);
                Vcpu cpu = DeadlineMode(machine);
                machine.Advance(start);
                ulong now = ReferenceTsc(start, frequency, offset);
                Assert.Equal(now, cpu.RdMsr(Vcpu.MsrTsc));
                ulong deadline = unchecked(now + (ulong)ahead);
                deadline = deadline == 0 ? 1 : deadline;   // 0 disarms
                cpu.WrMsr(Msr.TscDeadline, deadline);

                long fired;
                if (cpu.Apic.Counters.TimerExpiries == 1)
                {
                    fired = start;
                }
                else
                {
                    fired = machine.NextTimerDeadline;
                    Assert.InRange(fired, start + 1, long.MaxValue - 1);
                    machine.AdvanceTo(fired - 1);
                    Assert.Equal(0, cpu.Apic.Counters.TimerExpiries);
                    machine.AdvanceTo(fired);
                    Assert.Equal(1, cpu.Apic.Counters.TimerExpiries);
                }

                // The first nanosecond at or after the write with TSC ≥ D: reached at `fired`, not one ns before.
                Assert.True(ReferenceTsc(fired, frequency, offset) >= deadline);
                Assert.True(fired == start || ReferenceTsc(fired - 1, frequency, offset) < deadline);
                Assert.Equal(ReferenceTsc(fired, frequency, offset), cpu.Apic.GuestTsc(fired));
            }, iter: 3_000);
}
