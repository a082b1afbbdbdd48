namespace Vapic.Apic;

// The APIC timer and the TSC deadline (spec §9, SDM "APIC Timer", "TSC-Deadline Mode").
//
// Counting model, in exact integer nanoseconds: with N = TMICT, tick = divisor × BusCycleNs and the
// origin TimerBase, expiries fall on TimerBase + k × N × tick and the current count is
// N − (floor((now − TimerBase) / tick) mod N). TMICT writes set TimerBase to the write instant; a DCR
// write re-bases it so that the remaining count carries over at the new rate (spec A14).
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
            SetTimerDeadline(AddSaturating(deadline, _regs.InitialCount * TickNs));
        }
        else
        {
            _regs.TimerCounting = false;
            SetTimerDeadline(long.MaxValue);
        }

        DeliverTimerInterrupt();
    }

    private long TickNs => (long)_regs.Divisor * Options.BusCycleNs;

    /// <summary>
    /// <paramref name="time"/> + <paramref name="delta"/> (delta ≥ 0), or <see cref="long.MaxValue"/>
    /// ("never") when that lies beyond the end of virtual time: a deadline must never wrap into the past.
    /// </summary>
    private static long AddSaturating(long time, long delta) => time > long.MaxValue - delta ? long.MaxValue : time + delta;

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
        SetTimerDeadline(AddSaturating(now, value * TickNs));
    }

    /// <summary>
    /// DCR write. A running count keeps its remaining ticks and continues at the new rate, and later
    /// periods use the new divisor (spec A14, KVM <c>update_target_expiration</c>). The part of the
    /// current tick already elapsed is scaled to the new tick (rounded down) so times stay integers.
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
        long deadline = AddSaturating(now, (remainingTicks * newTick) - partialTick);
        _regs.TimerBase = deadline - (initial * newTick);
        SetTimerDeadline(deadline);
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

        ulong tsc = (ulong)(_host.Now + _tscOffset);
        if (value <= tsc)
        {
            _regs.TscDeadline = 0;
            SetTimerDeadline(long.MaxValue);
            DeliverTimerInterrupt();
            return;
        }

        SetTimerDeadline(TscDeadlineToVirtualTime(value));
    }

    /// <summary>The virtual time at which the guest TSC reaches <paramref name="deadline"/> (long.MaxValue if never representable).</summary>
    private long TscDeadlineToVirtualTime(ulong deadline)
    {
        long now = _host.Now;
        ulong tsc = (ulong)(now + _tscOffset);
        if (deadline <= tsc)
        {
            return now;
        }

        ulong delta = deadline - tsc;
        return delta >= (ulong)(long.MaxValue - now) ? long.MaxValue : now + (long)delta;
    }
}
