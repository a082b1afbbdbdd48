using Vapic.Apic.SavedState;
using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>
/// The APIC timer at bus clocks other than 1 GHz and the TSC at frequencies other than 1 GHz
/// (SDM "APIC Timer": the count decrements once per bus clock divided by DCR; SDM "TSC-Deadline
/// Mode": the timer fires when the TSC reaches IA32_TSC_DEADLINE).
/// </summary>
public sealed class LocalApicTimerFrequencyTests
{
    /// <summary>A 25 MHz bus: one bus cycle is 40 ns.</summary>
    private const int Bus25MHz = 40;

    private const int Vector = 0x30;

    /// <summary>An enabled APIC on a bus of <paramref name="busCycleNs"/> ns, LVT Timer vector 0x30 in <paramref name="lvtMode"/>, DCR as given.</summary>
    private static TestApicHost Timer(int busCycleNs, uint dcr, uint lvtMode = 0)
    {
        TestApicHost host = TestApicHost.Create(busCycleNs: busCycleNs);
        host.Write(0x0F0, 0x1FF);
        host.Write(0x320, lvtMode | (uint)Vector);
        host.Write(0x3E0, dcr);
        return host;
    }

    [Fact]
    public void Bus25MHz_OneShotDivide1_ExpiresAfterExactlyTenMicroseconds()
    {
        // 250 counts × 1 × 40 ns = 10,000 ns.
        TestApicHost host = Timer(Bus25MHz, dcr: 0xB);
        host.Write(0x380, 250);
        Assert.Equal(10_000L, host.Apic.TimerDeadline);

        host.AdvanceTo(39);
        Assert.Equal(250u, host.Read(0x390));   // no bus clock has ended yet
        host.AdvanceTo(40);
        Assert.Equal(249u, host.Read(0x390));
        host.AdvanceTo(5_000);
        Assert.Equal(125u, host.Read(0x390));   // halfway
        host.AdvanceTo(9_999);
        Assert.Equal(1u, host.Read(0x390));
        Assert.False(host.Apic.Irr.Get(Vector));

        host.AdvanceTo(10_000);
        Assert.True(host.Apic.Irr.Get(Vector));
        Assert.Equal(0u, host.Read(0x390));
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Theory] // DCR, divisor: TMICT 100 lasts 100 × divisor × 40 ns; after 10 divided clocks it reads 90.
    [InlineData(0xBu, 1)]
    [InlineData(0x0u, 2)]
    [InlineData(0x1u, 4)]
    [InlineData(0x2u, 8)]
    [InlineData(0x3u, 16)]
    [InlineData(0x8u, 32)]
    [InlineData(0x9u, 64)]
    [InlineData(0xAu, 128)]
    public void Bus25MHz_EveryDivider_CountsOncePerDividedBusClock(uint dcr, int divisor)
    {
        long tick = divisor * (long)Bus25MHz;
        TestApicHost host = Timer(Bus25MHz, dcr);
        host.Write(0x380, 100);
        Assert.Equal(100 * tick, host.Apic.TimerDeadline);

        host.AdvanceTo((10 * tick) - 1);
        Assert.Equal(91u, host.Read(0x390));
        host.AdvanceTo(10 * tick);
        Assert.Equal(90u, host.Read(0x390));
        host.AdvanceTo((100 * tick) - 1);
        Assert.Equal(1u, host.Read(0x390));
        Assert.False(host.Apic.Irr.Get(Vector));
        host.AdvanceTo(100 * tick);
        Assert.True(host.Apic.Irr.Get(Vector));
    }

    [Fact]
    public void Bus25MHz_Divide16_HalfwayReadsHalfTheCount()
    {
        // ÷16 on 40 ns: 640 ns per count; 250 counts = 160,000 ns, halfway at 80,000 ns.
        TestApicHost host = Timer(Bus25MHz, dcr: 0x3);
        host.Write(0x380, 250);
        host.AdvanceTo(80_000);
        Assert.Equal(125u, host.Read(0x390));
        Assert.Equal(160_000L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void Bus25MHz_Periodic_FiresAtExactMultiplesOfThePeriodAndReloads()
    {
        // ÷2 on 40 ns: 80 ns per count; 50 counts = a 4,000 ns period.
        TestApicHost host = Timer(Bus25MHz, dcr: 0x0, lvtMode: 1u << 17);
        host.Write(0x380, 50);
        for (int k = 1; k <= 5; k++)
        {
            host.AdvanceTo((k * 4_000L) - 1);
            Assert.Equal(k - 1, host.Apic.Counters.TimerExpiries);
            Assert.Equal(1u, host.Read(0x390));
            host.AdvanceTo(k * 4_000L);
            Assert.Equal(k, host.Apic.Counters.TimerExpiries);
            Assert.Equal(50u, host.Read(0x390));   // reloaded at the expiry instant
            Assert.Equal((k + 1) * 4_000L, host.Apic.TimerDeadline);
        }

        host.AdvanceTo(20_079);
        Assert.Equal(50u, host.Read(0x390));
        host.AdvanceTo(20_080);
        Assert.Equal(49u, host.Read(0x390));
    }

    [Fact]
    public void Bus25MHz_DcrChangeOnATickBoundary_KeepsTheRemainingCountAtTheNewRate()
    {
        // ÷1 (40 ns): after 50 of 100 counts (2,000 ns), DCR ÷4 (160 ns): 50 counts remain, 8,000 ns.
        TestApicHost host = Timer(Bus25MHz, dcr: 0xB);
        host.Write(0x380, 100);
        host.AdvanceTo(2_000);
        host.Write(0x3E0, 0x1);

        Assert.Equal(50u, host.Read(0x390));
        Assert.Equal(10_000L, host.Apic.TimerDeadline);
        host.AdvanceTo(2_159);
        Assert.Equal(50u, host.Read(0x390));
        host.AdvanceTo(2_160);
        Assert.Equal(49u, host.Read(0x390));
        host.AdvanceTo(10_000);
        Assert.True(host.Apic.Irr.Get(Vector));
    }

    [Fact]
    public void Bus25MHz_SavedAndRestoredAtAnotherTime_CountsOnExactly()
    {
        TestApicHost source = Timer(Bus25MHz, dcr: 0x3, lvtMode: 1u << 17);   // ÷16: 640 ns per count
        source.Write(0x380, 1_000);
        source.AdvanceTo(700_000);   // one period (640,000 ns) and 60,000 ns: 93.75 counts into the second
        LocalApicState state = source.Apic.Save();

        TestApicHost target = TestApicHost.Create(busCycleNs: Bus25MHz);
        target.Now = 5_000_000;
        Assert.True(target.Apic.Restore(state).IsSuccess);

        Assert.Equal(1_000u - 93, target.Read(0x390));
        Assert.Equal(5_000_000L + 1_280_000 - 700_000, target.Apic.TimerDeadline);
    }

    [Fact]
    public void SlowBus_CountLongerThanVirtualTime_NeverExpiresButStillCounts()
    {
        // 1 Hz bus ÷128: one count is 128 s, and 2^32 − 1 counts outlast the 2^63 ns of virtual time.
        const int oneSecond = 1_000_000_000;
        TestApicHost host = Timer(oneSecond, dcr: 0xA, lvtMode: 1u << 17);
        host.Write(0x380, uint.MaxValue);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);

        host.AdvanceTo(128L * oneSecond);
        Assert.Equal(uint.MaxValue - 1, host.Read(0x390));
        host.AdvanceTo((3 * 128L * oneSecond) - 1);
        Assert.Equal(uint.MaxValue - 2, host.Read(0x390));
        Assert.Equal(0, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void SlowBus_DcrChangeToALongerTick_KeepsTheCountAndNeverWraps()
    {
        // 1 Hz ÷1: after 10 s the count is 2^32 − 11; at ÷128 that many counts never end in virtual time.
        const long second = 1_000_000_000;
        TestApicHost host = Timer((int)second, dcr: 0xB);
        host.Write(0x380, uint.MaxValue);
        Assert.Equal(uint.MaxValue * second, host.Apic.TimerDeadline);
        host.AdvanceTo(10 * second);
        host.Write(0x3E0, 0xA);

        Assert.Equal(uint.MaxValue - 10, host.Read(0x390));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        host.AdvanceTo((10 + 128) * second);
        Assert.Equal(uint.MaxValue - 11, host.Read(0x390));
        Assert.True(host.Apic.Save().TimerElapsedNs >= 0);
    }

    [Fact]
    public void TscFrequency_DefaultsToOneGigahertz()
    {
        Assert.Equal(1_000_000_000L, new LocalApicOptions().TscFrequencyHz);
        var host = new TscHost(frequencyHz: 0);   // default(LocalApicOptions) style: 0 selects the default
        Assert.Equal(1_000_000_000L, host.Apic.Options.TscFrequencyHz);
        host.Now = 12_345;
        Assert.Equal(12_345UL, host.Apic.GuestTscNow);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(1_000_000_000_001L)]
    public void TscFrequency_OutOfRange_IsRefused(long frequency) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new TscHost(frequency));

    [Theory] // f, time, offset → ⌊time × f / 10^9⌋ + offset
    [InlineData(2_500_000_000L, 1_000L, 0L, 2_500UL)]
    [InlineData(2_500_000_000L, 1_000L, 7L, 2_507UL)]
    [InlineData(2_500_000_000L, 3L, 0L, 7UL)]               // 7.5 ticks: the partial tick is not counted
    [InlineData(1_000_000L, 999L, 0L, 0UL)]                 // 1 MHz: one tick per µs
    [InlineData(1_000_000L, 1_000L, 0L, 1UL)]
    [InlineData(3_000_000_000L, 1L, -4L, ulong.MaxValue)]   // 3 − 4 wraps modulo 2^64
    [InlineData(100_000_000_000L, long.MaxValue, 0L, ulong.MaxValue - 99)] // (2^63 − 1) × 100 = 50 × 2^64 − 100
    public void GuestTsc_IsFloorOfTimeTimesFrequencyPlusOffset(long frequency, long time, long offset, ulong expected)
    {
        var host = new TscHost(frequency);
        host.Apic.TscOffset = offset;
        Assert.Equal(expected, host.Apic.GuestTsc(time));
    }

    [Fact]
    public void TscDeadline_At2Point5GHz_FiresAtTheFirstNanosecondTheTscReachesIt()
    {
        // At t = 1000 the TSC is 2500. D = 5001: the TSC is 5000 at t = 2000 and 5002 at t = 2001.
        var host = new TscHost(2_500_000_000L) { Now = 1_000 };
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 2_500 + 2_501);

        Assert.Equal(2_001L, host.Apic.TimerDeadline);
        host.AdvanceTo(2_000);
        Assert.False(host.Apic.Irr.Get(Vector));
        Assert.Equal(5_001UL, host.Rdmsr(0x6E0));
        host.AdvanceTo(2_001);
        Assert.True(host.Apic.Irr.Get(Vector));
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
    }

    [Fact]
    public void TscDeadline_At1MHz_WaitsWholeMicroseconds()
    {
        var host = new TscHost(1_000_000L) { Now = 1_500 };   // TSC 1, half-way into its second tick
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 3);
        Assert.Equal(3_000L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void TscDeadline_AlreadyReached_FiresAtOnce()
    {
        var host = new TscHost(2_500_000_000L) { Now = 1_001 };   // TSC ⌊2502.5⌋ = 2502
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 2_502);
        Assert.True(host.Apic.Irr.Get(Vector));
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Fact]
    public void TscDeadline_AcrossTheTscWrap_FiresWhenTheTscReachesIt()
    {
        // 2.5 GHz, offset −3: TSC 2^64 − 3 at t = 0, 2^64 − 1 at t = 1 (⌊2.5⌋ = 2), 2 at t = 2.
        var host = new TscHost(2_500_000_000L);
        host.Apic.TscOffset = -3;
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, ulong.MaxValue);
        Assert.Equal(1L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void TscDeadline_NeverWithinVirtualTime_IsNotArmed()
    {
        // 1 MHz: 2^63 ns hold only about 9.2 × 10^15 ticks.
        var host = new TscHost(1_000_000L);
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 10_000_000_000_000_000UL);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        Assert.Equal(10_000_000_000_000_000UL, host.Rdmsr(0x6E0));
    }

    [Fact]
    public void SetGuestTsc_ReadsTheValueNowAndCountsOnAtTheFrequency()
    {
        var host = new TscHost(2_500_000_000L) { Now = 1_001 };   // ⌊2502.5⌋ = 2502 ticks since 0
        host.Apic.SetGuestTsc(1_000_000);
        Assert.Equal(1_000_000UL, host.Apic.GuestTscNow);
        Assert.Equal(1_000_000L - 2_502, host.Apic.TscOffset);
        host.AdvanceTo(1_002);                                     // ⌊2505⌋: three more ticks
        Assert.Equal(1_000_003UL, host.Apic.GuestTscNow);
    }

    [Fact]
    public void SetGuestTsc_MovesAnArmedDeadline()
    {
        var host = new TscHost(2_500_000_000L) { Now = 1_000 };
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 10_000);
        Assert.Equal(4_000L, host.Apic.TimerDeadline);

        host.Apic.SetGuestTsc(7_500);   // 2,500 ticks to go: 1,000 ns
        Assert.Equal(2_000L, host.Apic.TimerDeadline);
        host.Apic.SetGuestTsc(10_000);  // reached: due now
        Assert.Equal(1_000L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void SavedState_TscDeadline_RestoresAtTheSameInstantWhenRestoredAtTheSavedTime()
    {
        var source = new TscHost(2_500_000_000L) { Now = 1_001 };
        source.ArmDeadlineMode();
        source.Wrmsr(0x6E0, 2_502 + 2_501);   // TSC 5003 first at t = 2002 (⌊5005⌋)
        Assert.Equal(2_002L, source.Apic.TimerDeadline);
        LocalApicState state = source.Apic.Save();
        Assert.Equal((2_502UL, 1_001L), (state.Tsc, state.TimerExpiresInNs!.Value));

        var target = new TscHost(2_500_000_000L) { Now = 1_001 };
        Assert.True(target.Apic.Restore(state).IsSuccess);
        Assert.Equal(2_002L, target.Apic.TimerDeadline);
        Assert.Equal(source.Apic.TscOffset, target.Apic.TscOffset);
    }

    [Fact]
    public void SavedState_TscDeadline_RestoredAtAnotherPhase_TakesOnlyTheWaitFromThatPhase()
    {
        // Saved half-way into a 1 µs tick: 2 ticks to go take 1,500 ns from there.
        var source = new TscHost(1_000_000L) { Now = 1_500 };
        source.ArmDeadlineMode();
        source.Wrmsr(0x6E0, 3);
        LocalApicState state = source.Apic.Save();
        Assert.Equal(1_500L, state.TimerExpiresInNs);

        // Restored alone at a tick boundary the TSC continues from 1, and the 2 ticks take 2,000 ns:
        // the recorded 1,500 would fire before the TSC reaches the deadline, so it is refused...
        var target = new TscHost(1_000_000L) { Now = 7_000 };
        SavedStateResult refused = target.Apic.Restore(state);
        Assert.Equal((SavedStateError.Inconsistent, nameof(LocalApicState.TimerExpiresInNs)), (refused.Error, refused.Field));
        Assert.Equal(long.MaxValue, target.Apic.TimerDeadline);

        // ...and the wait from that phase is taken.
        Assert.True(target.Apic.Restore(state with { TimerExpiresInNs = 2_000 }).IsSuccess);
        Assert.Equal(1UL, target.Apic.GuestTscNow);
        Assert.Equal(9_000L, target.Apic.TimerDeadline);
    }

    [Theory] // 1 MHz, 5 ticks to go from a tick boundary: exactly 5,000 ns.
    [InlineData(4_001L, false)]
    [InlineData(4_999L, false)]
    [InlineData(5_000L, true)]
    [InlineData(5_001L, false)]
    public void SavedState_TscDeadlineExpiry_MustBeWhereTheTscReachesTheDeadline(long expiresIn, bool valid)
    {
        var host = new TscHost(1_000_000L) { Now = 3_000 };
        host.ArmDeadlineMode();
        host.Wrmsr(0x6E0, 8);
        LocalApicState state = host.Apic.Save() with { TimerExpiresInNs = expiresIn };

        SavedStateResult result = host.Apic.ValidateState(state, host.Now);

        Assert.Equal(valid, result.IsSuccess);
        if (!valid)
        {
            Assert.Equal((SavedStateError.Inconsistent, nameof(LocalApicState.TimerExpiresInNs)), (result.Error, result.Field));
        }
    }

    /// <summary>A single-APIC host whose APIC has a chosen TSC frequency (TestApicHost fixes 1 GHz).</summary>
    private sealed class TscHost : ILocalApicHost
    {
        public TscHost(long frequencyHz)
        {
            Apic = new LocalApic(this, new LocalApicOptions { IsBootstrapProcessor = true, TscFrequencyHz = frequencyHz });
        }

        public LocalApic Apic { get; }

        public long Now { get; set; }

        public void SendIpi(LocalApic source, in InterruptMessage message)
        {
        }

        public void BroadcastEoi(LocalApic source, byte vector)
        {
        }

        public void TimerChanged(LocalApic apic)
        {
        }

        public void RoutingChanged(LocalApic apic)
        {
        }

        /// <summary>Software-enables the APIC and puts LVT Timer (vector 0x30) in TSC-deadline mode.</summary>
        public void ArmDeadlineMode()
        {
            Assert.Equal(ApicAccessResult.Ok, Apic.WriteMmio(Apic.MmioBase + 0x0F0, 0x1FF));
            Assert.Equal(ApicAccessResult.Ok, Apic.WriteMmio(Apic.MmioBase + 0x320, (2u << 17) | (uint)Vector));
        }

        public void Wrmsr(uint msr, ulong value) => Assert.Equal(ApicAccessResult.Ok, Apic.WriteMsr(msr, value));

        public ulong Rdmsr(uint msr)
        {
            Assert.Equal(ApicAccessResult.Ok, Apic.ReadMsr(msr, out ulong value));
            return value;
        }

        /// <summary>Advances to <paramref name="time"/>, firing the timer at each deadline on the way.</summary>
        public void AdvanceTo(long time)
        {
            while (Apic.TimerDeadline <= time)
            {
                Now = Math.Max(Now, Apic.TimerDeadline);
                Apic.OnTimer();
            }

            Now = time;
        }
    }
}
