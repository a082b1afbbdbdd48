namespace Vapic.Apic;

// The APIC timer and the TSC deadline (spec §9, SDM "APIC Timer", "TSC-Deadline Mode").
//
// Counting model, in exact integer nanoseconds: with N = TMICT, tick = divisor × BusCycleNs (the
// count decrements once per divided bus clock) and the origin TimerBase, expiries fall on
// TimerBase + k × N × tick and the current count is N − (floor((now − TimerBase) / tick) mod N).
// TMICT writes set TimerBase to the write instant; a DCR write re-bases it so that the remaining
// count carries over at the new rate (spec A14). A period that ends beyond the end of virtual time
// (long.MaxValue ns, reachable only with a very slow bus) never expires.
//
// The TSC: guest TSC at virtual time t = floor(t × f / 10^9) + TscOffset modulo 2^64, f =
// TscFrequencyHz. A TSC deadline D fires at the first nanosecond at which the guest TSC ≥ D, computed
// exactly in 128-bit arithmetic (1 GHz, the default, takes a shortcut with the same result).
public sealed partial class LocalApic
{
    /// <summary>TMICT as written (the guest reads 0 in TSC-deadline mode).</summary>
    public uint InitialCount => _regs.InitialCount;

    /// <summary>DCR as written.</summary>
    public uint DivideConfiguration => _regs.DivideConfiguration;

    /// <summary>IA32_TSC_DEADLINE as stored (0 = disarmed).</summary>
    public ulong TscDeadline => _regs.TscDeadline;

    /// <summary>TMCCT at <see cref="ILocalApicHost.Now"/>.</summary>
    public uint CurrentCount
    {
        get
        {
            if (!_regs.TimerCounting)
            {
                // Stopped (N = 0), expired one-shot, TSC-deadline or reserved mode: reads 0.
                return 0;
            }

            long now = _host.Now;
            if (now >= _regs.TimerDeadline && TimerModeOf(_regs.Lvt[LvtTimerSlot]) != TimerMode.Periodic)
            {
                // A one-shot that is due reads 0 even before the host has called OnTimer.
                return 0;
            }

            long initial = _regs.InitialCount;
            long elapsedTicks = (now - _regs.TimerBase) / TickNs;
            return (uint)(initial - (elapsedTicks % initial));
        }
    }

    /// <summary>
    /// Called by the host when <see cref="ILocalApicHost.Now"/> ≥ <see cref="TimerDeadline"/>:
    /// delivers through LVT Timer (merging if the vector is already in IRR; nothing if masked),
    /// re-arms a periodic timer one period later, disarms a one-shot or TSC-deadline timer, and
    /// reports the new deadline. Calls before the deadline do nothing.
    /// </summary>
    public void OnTimer()
    {
        long deadline = _regs.TimerDeadline;
        if (deadline == long.MaxValue || _host.Now < deadline)
        {
            return;
        }

        TimerMode mode = TimerModeOf(_regs.Lvt[LvtTimerSlot]);
        if (mode == TimerMode.TscDeadline)
        {
            // Each deadline write yields at most one interrupt; the MSR then reads 0.
            _regs.TscDeadline = 0;
            SetTimerDeadline(long.MaxValue);
        }
        else if (mode == TimerMode.Periodic && _regs.TimerCounting)
        {
            SetTimerDeadline(AddSaturating(deadline, CountSpanNs(_regs.InitialCount, TickNs)));
        }
        else
        {
            _regs.TimerCounting = false;
            SetTimerDeadline(long.MaxValue);
        }

        DeliverTimerInterrupt();
    }

    /// <summary>
    /// The guest TSC at virtual time <paramref name="time"/>: ⌊time × <see cref="LocalApicOptions.TscFrequencyHz"/>
    /// / 10^9⌋ + <see cref="TscOffset"/>, modulo 2^64 (the TSC counts at a constant rate; SDM "Time-Stamp Counter").
    /// </summary>
    public ulong GuestTsc(long time) => unchecked(TscTicksAt(time) + (ulong)_tscOffset);

    /// <summary>The guest TSC at <see cref="ILocalApicHost.Now"/> (what RDTSC and RDMSR IA32_TSC return).</summary>
    public ulong GuestTscNow => GuestTsc(_host.Now);

    /// <summary>
    /// The guest writes <paramref name="value"/> to IA32_TSC (WRMSR 10H): the offset becomes value −
    /// ⌊now × frequency / 10^9⌋, so the TSC reads <paramref name="value"/> at this instant and counts on
    /// from it. An armed TSC deadline moves with it (as a <see cref="TscOffset"/> change does).
    /// </summary>
    public void SetGuestTsc(ulong value) => TscOffset = unchecked((long)(value - TscTicksAt(_host.Now)));

    private long TickNs => (long)_regs.Divisor * Options.BusCycleNs;

    /// <summary>
    /// <paramref name="time"/> + <paramref name="delta"/> (delta ≥ 0), or <see cref="long.MaxValue"/>
    /// ("never") when that lies beyond the end of virtual time: a deadline must never wrap into the past.
    /// </summary>
    private static long AddSaturating(long time, long delta) => time > long.MaxValue - delta ? long.MaxValue : time + delta;

    /// <summary><paramref name="count"/> ticks of <paramref name="tickNs"/> (≥ 1) in ns, or <see cref="long.MaxValue"/> when longer than all of virtual time.</summary>
    private static long CountSpanNs(uint count, long tickNs)
    {
        ulong high = Math.BigMul(count, (ulong)tickNs, out ulong low);
        return high != 0 || low > long.MaxValue ? long.MaxValue : (long)low;
    }

    /// <summary>TSC ticks counted from virtual time 0 to <paramref name="time"/>: ⌊time × f / 10^9⌋ modulo 2^64.</summary>
    private ulong TscTicksAt(long time)
    {
        long frequency = Options.TscFrequencyHz;
        if (frequency == NanosecondsPerSecond)
        {
            return unchecked((ulong)time);
        }

        return unchecked((ulong)FloorDivide((Int128)time * frequency, NanosecondsPerSecond));
    }

    /// <summary>⌊<paramref name="dividend"/> / <paramref name="divisor"/>⌋ for a positive divisor (C# division truncates toward zero).</summary>
    private static Int128 FloorDivide(Int128 dividend, long divisor)
    {
        (Int128 quotient, Int128 remainder) = Int128.DivRem(dividend, divisor);
        return remainder < 0 ? quotient - 1 : quotient;
    }

    /// <summary>⌈<paramref name="dividend"/> / <paramref name="divisor"/>⌉ for a positive divisor.</summary>
    private static Int128 CeilingDivide(Int128 dividend, long divisor) => -FloorDivide(-dividend, divisor);

    /// <summary>
    /// The first virtual time t ≥ <paramref name="now"/> at which ⌊t × f / 10^9⌋ has advanced by
    /// <paramref name="ticks"/> (≥ 1) since <paramref name="now"/>, exactly; <see cref="long.MaxValue"/>
    /// ("never") when that lies at or beyond the end of virtual time.
    /// </summary>
    private long TimeAfterTscTicks(long now, ulong ticks)
    {
        long frequency = Options.TscFrequencyHz;
        if (frequency == NanosecondsPerSecond && now >= 0)
        {
            return ticks >= (ulong)(long.MaxValue - now) ? long.MaxValue : now + (long)ticks;
        }

        // ⌊t f / 10^9⌋ ≥ K  ⇔  t f ≥ K × 10^9  ⇔  t ≥ ⌈K × 10^9 / f⌉, with K the tick count to reach.
        Int128 target = FloorDivide((Int128)now * frequency, NanosecondsPerSecond) + ticks;
        Int128 time = CeilingDivide(target * NanosecondsPerSecond, frequency);
        return time >= long.MaxValue ? long.MaxValue : (long)time;
    }

    private static TimerMode TimerModeOf(uint lvtTimer) =>
        (TimerMode)((lvtTimer & LocalVectorTable.TimerModeMask) >> LocalVectorTable.TimerModeShift);

    private void DeliverTimerInterrupt()
    {
        _counters.TimerExpiries++;
        if (!DeliverLvt(LvtTimerSlot))
        {
            _counters.TimerExpiriesMasked++;
        }
    }

    private void SetTimerDeadline(long deadline)
    {
        if (deadline != _regs.TimerDeadline)
        {
            _regs.TimerDeadline = deadline;
            _host.TimerChanged(this);
        }
    }

    /// <summary>
    /// TMICT write: restarts counting from the new value at the write instant (SDM; KVM
    /// <c>start_apic_timer</c>); 0 stops the timer. Ignored in TSC-deadline mode; stored but inert in
    /// the reserved timer mode.
    /// </summary>
    private void WriteInitialCount(uint value)
    {
        TimerMode mode = TimerModeOf(_regs.Lvt[LvtTimerSlot]);
        if (mode == TimerMode.TscDeadline)
        {
            return;
        }

        _regs.InitialCount = value;
        if (value == 0 || mode == TimerMode.Reserved)
        {
            _regs.TimerCounting = false;
            SetTimerDeadline(long.MaxValue);
            return;
        }

        long now = _host.Now;
        _regs.TimerCounting = true;
        _regs.TimerBase = now;
        SetTimerDeadline(AddSaturating(now, CountSpanNs(value, TickNs)));
    }

    /// <summary>
    /// DCR write. A running count keeps its remaining ticks and continues at the new rate, and later
    /// periods use the new divisor (spec A14, KVM <c>update_target_expiration</c>). The part of the
    /// current tick already elapsed is scaled to the new tick (rounded down) so times stay integers.
    /// Computed in 128 bits: with a slow bus, N × tick can exceed the range of virtual time.
    /// </summary>
    private void WriteDivideConfiguration(uint value)
    {
        int oldDivisor = _regs.Divisor;
        int newDivisor = TimerDivide.Divisor(value);
        _regs.DivideConfiguration = value;
        _regs.Divisor = newDivisor;
        long now = _host.Now;
        if (!_regs.TimerCounting || newDivisor == oldDivisor || now >= _regs.TimerDeadline)
        {
            // Nothing counting, nothing to rescale, or an expiry is due first (the host fires it at this instant).
            return;
        }

        long bus = Options.BusCycleNs;
        long oldTick = oldDivisor * bus;
        long newTick = newDivisor * bus;
        long initial = _regs.InitialCount;
        long elapsed = now - _regs.TimerBase;
        long remainingTicks = initial - ((elapsed / oldTick) % initial);
        long partialTick = (elapsed % oldTick) * newDivisor / oldDivisor;

        // remaining × newTick > partialTick (remaining ≥ 1, partial < newTick), so the expiry lies ahead.
        Int128 deadline = (Int128)now + ((Int128)remainingTicks * newTick) - partialTick;
        Int128 origin = deadline - ((Int128)initial * newTick);

        // The expiry is exact. The origin can lie more than 2^63 ns back only when the part of the
        // period already counted, re-timed at the new rate, outlasts virtual time (a bus slower than
        // about 60 Hz); it is then kept as far back as a long allows and TMCCT reads from there.
        Int128 earliestOrigin = Int128.Max((Int128)now - long.MaxValue, long.MinValue);
        _regs.TimerBase = (long)Int128.Max(origin, earliestOrigin);
        SetTimerDeadline(deadline >= long.MaxValue ? long.MaxValue : (long)deadline);
    }

    /// <summary>
    /// LVT Timer mode change. One-shot ↔ periodic keeps the running count (spec A12, KVM
    /// <c>apic_update_lvtt</c>, kvm-unit-tests <c>test_apic_change_mode</c>): an expired one-shot is
    /// not re-armed, a periodic switched to one-shot stops after the current period. Entering or
    /// leaving TSC-deadline mode disarms everything and zeroes TMICT and IA32_TSC_DEADLINE. The
    /// reserved mode 11b stops the count.
    /// </summary>
    private void TimerModeChanged(TimerMode oldMode, TimerMode newMode)
    {
        if (oldMode == TimerMode.TscDeadline || newMode == TimerMode.TscDeadline)
        {
            _regs.TimerCounting = false;
            _regs.InitialCount = 0;
            _regs.TscDeadline = 0;
            SetTimerDeadline(long.MaxValue);
        }
        else if (oldMode == TimerMode.Reserved || newMode == TimerMode.Reserved)
        {
            _regs.TimerCounting = false;
            SetTimerDeadline(long.MaxValue);
        }
    }

    /// <summary>
    /// IA32_TSC_DEADLINE write (SDM "TSC-Deadline Mode"): ignored outside TSC-deadline mode and
    /// while globally disabled; 0 disarms; a deadline already reached fires at once and the MSR
    /// reads 0; otherwise the timer fires when the guest TSC reaches it.
    /// </summary>
    private void WriteTscDeadline(ulong value)
    {
        if (_mode == ApicMode.Disabled || TimerModeOf(_regs.Lvt[LvtTimerSlot]) != TimerMode.TscDeadline)
        {
            return;
        }

        _regs.TscDeadline = value;
        if (value == 0)
        {
            SetTimerDeadline(long.MaxValue);
            return;
        }

        long now = _host.Now;
        ulong tsc = GuestTsc(now);
        if (value <= tsc)
        {
            _regs.TscDeadline = 0;
            SetTimerDeadline(long.MaxValue);
            DeliverTimerInterrupt();
            return;
        }

        SetTimerDeadline(TimeAfterTscTicks(now, value - tsc));
    }

    /// <summary>
    /// The first virtual ns at which the guest TSC is ≥ <paramref name="deadline"/>: now if it already
    /// is, long.MaxValue if that instant is not representable. The TSC counts up from its value now
    /// and reaches any larger 64-bit value before it wraps.
    /// </summary>
    private long TscDeadlineToVirtualTime(ulong deadline)
    {
        long now = _host.Now;
        ulong tsc = GuestTsc(now);
        return deadline <= tsc ? now : TimeAfterTscTicks(now, deadline - tsc);
    }
}
