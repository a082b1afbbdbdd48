using Vapic.Apic.SavedState;

namespace Vapic.Apic;

// Saved state (docs/saved-state.md): Save copies every field of Registers into a LocalApicState with
// times made relative to the save instant; Restore checks the whole state first and then applies it,
// so a refused state changes nothing.
public sealed partial class LocalApic
{
    /// <summary>The ESR bits this model can set: send illegal vector, receive illegal vector, illegal register address.</summary>
    private const uint ModelledErrorBits =
        ApicRegister.ErrorSendIllegalVector | ApicRegister.ErrorReceiveIllegalVector | ApicRegister.ErrorIllegalRegisterAddress;

    /// <summary>Every <see cref="ApicEvents"/> flag.</summary>
    private const ApicEvents AllEvents = ApicEvents.Smi | ApicEvents.Init | ApicEvents.Nmi | ApicEvents.ExtInt | ApicEvents.StartUp;

    /// <summary>
    /// Captures the complete volatile state at <see cref="ILocalApicHost.Now"/>. The APIC is not
    /// changed. Times are relative to now: the timer's origin and next expiry, and the guest TSC as
    /// a value rather than an offset.
    /// </summary>
    public LocalApicState Save()
    {
        long now = _host.Now;
        ref readonly Registers r = ref _regs;
        return new LocalApicState
        {
            Mode = _mode,
            X2ApicLocked = Options.X2ApicLocked,
            BaseMsr = r.BaseMsr,
            X2ApicId = _x2ApicId,
            Version = _version,
            XApicId = r.XApicId,
            LogicalDestination = r.LogicalDestination,
            DestinationFormat = r.DestinationFormat,
            TaskPriority = r.TaskPriority,
            SpuriousVector = r.SpuriousVector,
            Isr = r.Isr,
            Tmr = r.Tmr,
            Irr = r.Irr,
            ErrorStatus = r.ErrorStatus,
            PendingErrors = r.PendingErrors,
            InterruptCommandLow = r.InterruptCommandLow,
            InterruptCommandHigh = r.InterruptCommandHigh,
            LvtCmci = LocalVectorTable.ResetValue,
            LvtTimer = r.Lvt[LvtTimerSlot],
            LvtThermal = r.Lvt[LvtThermalSlot],
            LvtPerformanceCounter = r.Lvt[LvtPerformanceCounterSlot],
            LvtLint0 = r.Lvt[LvtLint0Slot],
            LvtLint1 = r.Lvt[LvtLint1Slot],
            LvtError = r.Lvt[LvtErrorSlot],
            InitialCount = r.InitialCount,
            DivideConfiguration = r.DivideConfiguration,
            TscDeadline = r.TscDeadline,
            Tsc = GuestTsc(now),
            TimerCounting = r.TimerCounting,

            // The origin of a stopped count is never read again, so it is not state.
            TimerElapsedNs = r.TimerCounting ? unchecked(now - r.TimerBase) : 0,
            TimerExpiresInNs = r.TimerDeadline == long.MaxValue ? null : unchecked(r.TimerDeadline - now),
            Lint0Asserted = r.Lint0Asserted,
            Lint1Asserted = r.Lint1Asserted,
            Lint0RemoteIrr = r.Lint0RemoteIrr,
            Lint1RemoteIrr = r.Lint1RemoteIrr,
            PendingEvents = r.PendingEvents,
            StartupVector = r.StartupVector,
        };
    }

    /// <summary>
    /// Replaces the volatile state with <paramref name="state"/>, placed at
    /// <see cref="ILocalApicHost.Now"/>. All or nothing: the state is checked completely first (see
    /// <see cref="ValidateState"/>) and a refused state leaves the APIC untouched. On success the
    /// host hears <see cref="ILocalApicHost.TimerChanged"/> and <see cref="ILocalApicHost.RoutingChanged"/>
    /// when the deadline or the routing identity changed. Counters are kept.
    /// </summary>
    public SavedStateResult Restore(LocalApicState state)
    {
        long now = _host.Now;
        SavedStateResult result = ValidateState(state, now);
        if (result.IsSuccess)
        {
            ApplyState(state, now);
        }

        return result;
    }

    /// <summary>
    /// Checks <paramref name="state"/> as <see cref="Restore"/> would at virtual time
    /// <paramref name="now"/>, changing nothing. A machine uses it to check every device before it
    /// restores any.
    /// </summary>
    /// <returns>Success, or the first problem found with the field that has it.</returns>
    public SavedStateResult ValidateState(LocalApicState state, long now)
    {
        if (state is null)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, "", "no local APIC state");
        }

        SavedStateResult result = ValidateIdentity(state);
        if (result.IsSuccess)
        {
            result = ValidateRegisters(state);
        }

        if (result.IsSuccess)
        {
            result = ValidateTimer(state, now);
        }

        return result;
    }

    private SavedStateResult ValidateIdentity(LocalApicState s)
    {
        if (s.X2ApicLocked != Options.X2ApicLocked)
        {
            return Fail(SavedStateError.ConfigurationMismatch, nameof(s.X2ApicLocked),
                $"saved with the x2APIC lock {(s.X2ApicLocked ? "on" : "off")}, but this APIC has it {(Options.X2ApicLocked ? "on" : "off")}");
        }

        if (s.X2ApicId != _x2ApicId)
        {
            return Fail(SavedStateError.ConfigurationMismatch, nameof(s.X2ApicId),
                $"x2APIC ID 0x{s.X2ApicId:x} differs from this APIC's initial ID 0x{_x2ApicId:x}");
        }

        if (s.Version != _version)
        {
            return Fail(SavedStateError.ConfigurationMismatch, nameof(s.Version),
                $"VER 0x{s.Version:x8} differs from this APIC's 0x{_version:x8}");
        }

        ulong baseMsr = s.BaseMsr;
        if ((baseMsr & ApicBaseMsr.LowReservedBits) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.BaseMsr),
                $"IA32_APIC_BASE 0x{baseMsr:x} sets reserved bits 0x{baseMsr & ApicBaseMsr.LowReservedBits:x} (7:0, 9)");
        }

        if ((baseMsr & _baseReservedBits) != 0)
        {
            return Fail(SavedStateError.BaseAboveMaxPhysicalAddress, nameof(s.BaseMsr),
                $"IA32_APIC_BASE 0x{baseMsr:x} has bits at or above MAXPHYADDR ({Options.MaxPhysicalAddressBits})");
        }

        if ((baseMsr & (ApicBaseMsr.GlobalEnable | ApicBaseMsr.X2ApicEnable)) == ApicBaseMsr.X2ApicEnable)
        {
            // SDM "x2APIC State Transitions": (EN, EXTD) = (0, 1) is an invalid state.
            return Fail(SavedStateError.InvalidApicMode, nameof(s.BaseMsr), $"IA32_APIC_BASE 0x{baseMsr:x} has EN = 0 and EXTD = 1");
        }

        ApicMode mode = ApicBaseMsr.GetMode(baseMsr);
        if (s.Mode != mode)
        {
            return Fail(SavedStateError.ModeMismatch, nameof(s.Mode), $"mode {s.Mode} but IA32_APIC_BASE EN/EXTD select {mode}");
        }

        if (Options.X2ApicLocked && mode != ApicMode.X2Apic)
        {
            return Fail(SavedStateError.X2ApicLockViolated, nameof(s.BaseMsr), $"the x2APIC is locked but the state is in {mode} mode");
        }

        return SavedStateResult.Success;
    }

    private SavedStateResult ValidateRegisters(LocalApicState s)
    {
        ApicMode mode = s.Mode;
        if ((s.XApicId & ~ApicRegister.HighByteMask) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.XApicId), $"ID register 0x{s.XApicId:x8} sets bits 23:0");
        }

        if (mode == ApicMode.X2Apic)
        {
            // SDM "Logical Destination Mode in x2APIC Mode": LDR is derived from the x2APIC ID and read-only.
            if (s.LogicalDestination != _x2ApicLogicalId)
            {
                return Fail(SavedStateError.Inconsistent, nameof(s.LogicalDestination),
                    $"x2APIC-mode LDR 0x{s.LogicalDestination:x8} is not 0x{_x2ApicLogicalId:x8}, the value derived from the x2APIC ID");
            }
        }
        else if ((s.LogicalDestination & ~ApicRegister.HighByteMask) != 0 &&
            !(mode == ApicMode.Disabled && s.LogicalDestination == _x2ApicLogicalId))
        {
            // A globally disabled APIC may still hold the derived LDR it had in x2APIC mode.
            return Fail(SavedStateError.ReservedBits, nameof(s.LogicalDestination), $"xAPIC LDR 0x{s.LogicalDestination:x8} sets bits 23:0");
        }

        if ((s.DestinationFormat & ApicRegister.DestinationFormatReadAsOne) != ApicRegister.DestinationFormatReadAsOne)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.DestinationFormat), $"DFR 0x{s.DestinationFormat:x8} has bits 27:0 not all ones");
        }

        if ((s.TaskPriority & ~ApicRegister.TaskPriorityMask) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.TaskPriority), $"TPR 0x{s.TaskPriority:x} sets bits 31:8");
        }

        if ((s.SpuriousVector & ~_svrWritableBits) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.SpuriousVector),
                $"SVR 0x{s.SpuriousVector:x} sets bits outside 0x{_svrWritableBits:x}");
        }

        if ((s.ErrorStatus & ~ModelledErrorBits) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.ErrorStatus), $"ESR 0x{s.ErrorStatus:x} sets bits other than 5, 6, 7");
        }

        if ((s.PendingErrors & ~ModelledErrorBits) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.PendingErrors), $"pending ESR 0x{s.PendingErrors:x} sets bits other than 5, 6, 7");
        }

        if ((s.InterruptCommandLow & InterruptCommand.DeliveryStatus) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.InterruptCommandLow), "ICR delivery status (bit 12) is set; delivery is instantaneous");
        }

        if (mode == ApicMode.XApic && (s.InterruptCommandHigh & ~InterruptCommand.XApicDestinationMask) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.InterruptCommandHigh), $"xAPIC ICR high 0x{s.InterruptCommandHigh:x8} sets bits 23:0");
        }

        SavedStateResult result = ValidateLvts(s);
        if (!result.IsSuccess)
        {
            return result;
        }

        if ((s.DivideConfiguration & ~TimerDivide.WritableBits) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.DivideConfiguration),
                $"DCR 0x{s.DivideConfiguration:x} sets bits other than 3, 1, 0 (bit 2 is reserved)");
        }

        // SDM "Interrupt Acceptance for Fixed Interrupts" / ESR "Receive Illegal Vector": vectors 0-15
        // are refused before IRR, so they never reach IRR, ISR or TMR.
        if ((s.Irr.GetChunk(0) & 0xFFFF) != 0)
        {
            return Fail(SavedStateError.IllegalVector, nameof(s.Irr), $"IRR holds vectors below 16 (0x{s.Irr.GetChunk(0) & 0xFFFF:x4})");
        }

        if ((s.Isr.GetChunk(0) & 0xFFFF) != 0)
        {
            return Fail(SavedStateError.IllegalVector, nameof(s.Isr), $"ISR holds vectors below 16 (0x{s.Isr.GetChunk(0) & 0xFFFF:x4})");
        }

        if ((s.Tmr.GetChunk(0) & 0xFFFF) != 0)
        {
            return Fail(SavedStateError.IllegalVector, nameof(s.Tmr), $"TMR holds vectors below 16 (0x{s.Tmr.GetChunk(0) & 0xFFFF:x4})");
        }

        if ((s.PendingEvents & ~AllEvents) != 0)
        {
            return Fail(SavedStateError.ReservedBits, nameof(s.PendingEvents), $"pending events 0x{(byte)s.PendingEvents:x2} set undefined flags");
        }

        return SavedStateResult.Success;
    }

    private SavedStateResult ValidateLvts(LocalApicState s)
    {
        if (s.LvtCmci != LocalVectorTable.ResetValue)
        {
            return Fail(SavedStateError.Unsupported, nameof(s.LvtCmci),
                $"LVT CMCI 0x{s.LvtCmci:x8} is programmed, but CMCI is not offered (it must read 0x{LocalVectorTable.ResetValue:x8})");
        }

        bool softwareEnabled = (s.SpuriousVector & ApicRegister.SpuriousVectorSoftwareEnable) != 0;
        for (int slot = 0; slot < LocalVectorTable.Count; slot++)
        {
            uint value = LvtOf(s, slot);
            if ((value & ~LvtWritableBits[slot]) != 0)
            {
                return Fail(SavedStateError.ReservedBits, LvtFieldName(slot),
                    $"0x{value:x8} sets bits outside the stored mask 0x{LvtWritableBits[slot]:x8} (remote IRR and delivery status are not stored here)");
            }

            if (!softwareEnabled && (value & LocalVectorTable.Masked) == 0)
            {
                // SDM "Local APIC State After It Has Been Software Disabled": every LVT stays masked.
                return Fail(SavedStateError.Inconsistent, LvtFieldName(slot), "unmasked while the APIC is software-disabled (SVR bit 8 = 0)");
            }
        }

        if (s.Lint0RemoteIrr && !IsLevelLint(LvtLint0Slot, s.LvtLint0))
        {
            return Fail(SavedStateError.Inconsistent, nameof(s.Lint0RemoteIrr), "remote IRR is set but LVT LINT0 is not a level-triggered Fixed input");
        }

        if (s.Lint1RemoteIrr)
        {
            // SDM LVT trigger-mode description: LINT1 does not support level-sensitive interrupts.
            return Fail(SavedStateError.Inconsistent, nameof(s.Lint1RemoteIrr), "remote IRR is set on LINT1, which has no level mode");
        }

        return SavedStateResult.Success;
    }

    private SavedStateResult ValidateTimer(LocalApicState s, long now)
    {
        TimerMode mode = TimerModeOf(s.LvtTimer);
        if (!s.TimerCounting && s.TimerElapsedNs != 0)
        {
            return Fail(SavedStateError.Inconsistent, nameof(s.TimerElapsedNs), "the timer is not counting, so its elapsed time must be 0");
        }

        switch (mode)
        {
            case TimerMode.OneShot or TimerMode.Periodic:
                if (s.TscDeadline != 0)
                {
                    return Fail(SavedStateError.Inconsistent, nameof(s.TscDeadline), $"IA32_TSC_DEADLINE is set in {mode} mode, where it is always 0");
                }

                if (s.TimerCounting)
                {
                    if (s.InitialCount == 0)
                    {
                        return Fail(SavedStateError.Inconsistent, nameof(s.InitialCount), "the timer is counting from an initial count of 0");
                    }

                    if (s.TimerElapsedNs < 0)
                    {
                        return Fail(SavedStateError.InvalidValue, nameof(s.TimerElapsedNs), "the count's origin lies after the save instant");
                    }

                    if (s.TimerExpiresInNs is null)
                    {
                        return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs), "the timer is counting but has no expiry");
                    }

                    if (s.TimerExpiresInNs < 0)
                    {
                        // An expiry fires when time reaches it, so a running count never lags behind the
                        // clock; one that did would replay every missed period at once.
                        return Fail(SavedStateError.InvalidValue, nameof(s.TimerExpiresInNs), "the running count's next expiry lies before the save instant");
                    }
                }
                else if (s.TimerExpiresInNs is not null)
                {
                    return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs), $"an expiry is armed but the {mode} timer is not counting");
                }

                break;
            case TimerMode.TscDeadline:
                if (s.TimerCounting)
                {
                    return Fail(SavedStateError.Inconsistent, nameof(s.TimerCounting), "TSC-deadline mode has no running count");
                }

                if (s.InitialCount != 0)
                {
                    // SDM "TSC-Deadline Mode": TMICT writes are ignored and entering the mode zeroes it.
                    return Fail(SavedStateError.Inconsistent, nameof(s.InitialCount), "TMICT is non-zero in TSC-deadline mode");
                }

                if (s.TscDeadline == 0)
                {
                    if (s.TimerExpiresInNs is not null)
                    {
                        return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs), "an expiry is armed but IA32_TSC_DEADLINE is 0");
                    }
                }
                else if (s.TscDeadline > s.Tsc)
                {
                    // The expiry is where the TSC reaches the deadline, or none when that instant lies
                    // beyond the end of virtual time, exactly as an IA32_TSC_DEADLINE write computes it
                    // at the restore instant (the TSC continues from its saved value there). A machine
                    // restores at its save instant, so a real save always matches; at a rate other
                    // than 1 GHz a LAPIC restored alone at another instant may sit at another phase
                    // of a TSC tick, and then only the wait from that phase is accepted.
                    ulong distance = s.TscDeadline - s.Tsc;
                    long expiry = TimeAfterTscTicks(now, distance);
                    bool representable = expiry != long.MaxValue;
                    if (s.TimerExpiresInNs is long expiresIn)
                    {
                        if (representable && expiresIn != expiry - now)
                        {
                            return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs),
                                $"expiry in {expiresIn} ns, but at {Options.TscFrequencyHz} Hz the TSC reaches IA32_TSC_DEADLINE {distance} ticks ahead in {expiry - now} ns");
                        }

                        if (!representable)
                        {
                            return Fail(SavedStateError.TimeOutOfRange, nameof(s.TimerExpiresInNs), $"the TSC deadline cannot be placed {expiresIn} ns after {now}");
                        }
                    }
                    else if (representable)
                    {
                        return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs),
                            $"IA32_TSC_DEADLINE is armed {distance} ticks ahead but no expiry is recorded");
                    }
                }
                else if (s.TimerExpiresInNs is null or > 0)
                {
                    return Fail(SavedStateError.Inconsistent, nameof(s.TimerExpiresInNs), "IA32_TSC_DEADLINE has passed, so its expiry must be due");
                }

                break;
            default:
                // Reserved mode 11b: TMICT is stored but the timer stays inert.
                if (s.TimerCounting || s.TimerExpiresInNs is not null || s.TscDeadline != 0)
                {
                    return Fail(SavedStateError.Inconsistent, nameof(s.TimerCounting), "the reserved timer mode cannot count, expire or hold a TSC deadline");
                }

                break;
        }

        if (s.TimerCounting && !TryOffset(now, -s.TimerElapsedNs, out _))
        {
            return Fail(SavedStateError.TimeOutOfRange, nameof(s.TimerElapsedNs), $"the count's origin cannot be placed {s.TimerElapsedNs} ns before {now}");
        }

        if (mode != TimerMode.TscDeadline || s.TscDeadline <= s.Tsc)
        {
            if (s.TimerExpiresInNs is long expiresIn && (!TryOffset(now, expiresIn, out long deadline) || deadline == long.MaxValue))
            {
                return Fail(SavedStateError.TimeOutOfRange, nameof(s.TimerExpiresInNs), $"the expiry cannot be placed {expiresIn} ns after {now}");
            }
        }

        return SavedStateResult.Success;
    }

    private void ApplyState(LocalApicState s, long now)
    {
        ApicMode oldMode = _mode;
        uint oldId = Id;
        uint oldLdr = _regs.LogicalDestination;
        uint oldDfr = _regs.DestinationFormat;
        bool oldEnabled = SoftwareEnabled;
        long oldDeadline = _regs.TimerDeadline;

        Registers r = default;
        r.BaseMsr = s.BaseMsr;
        r.XApicId = s.XApicId;
        r.LogicalDestination = s.LogicalDestination;
        r.DestinationFormat = s.DestinationFormat;
        r.TaskPriority = s.TaskPriority;
        r.SpuriousVector = s.SpuriousVector;
        r.Irr = s.Irr;
        r.Isr = s.Isr;
        r.Tmr = s.Tmr;
        r.ErrorStatus = s.ErrorStatus;
        r.PendingErrors = s.PendingErrors;
        r.InterruptCommandLow = s.InterruptCommandLow;
        r.InterruptCommandHigh = s.InterruptCommandHigh;
        for (int slot = 0; slot < LocalVectorTable.Count; slot++)
        {
            r.Lvt[slot] = LvtOf(s, slot);
        }

        r.InitialCount = s.InitialCount;
        r.DivideConfiguration = s.DivideConfiguration;
        r.Divisor = TimerDivide.Divisor(s.DivideConfiguration);
        r.TimerCounting = s.TimerCounting;
        r.TimerBase = s.TimerCounting ? now - s.TimerElapsedNs : 0;
        r.TscDeadline = s.TscDeadline;
        r.Lint0Asserted = s.Lint0Asserted;
        r.Lint1Asserted = s.Lint1Asserted;
        r.Lint0RemoteIrr = s.Lint0RemoteIrr;
        r.Lint1RemoteIrr = s.Lint1RemoteIrr;
        r.PendingEvents = s.PendingEvents;
        r.StartupVector = s.StartupVector;

        _regs = r;
        _mode = s.Mode;
        _tscOffset = unchecked((long)(s.Tsc - TscTicksAt(now)));
        UpdateProcessorPriority();

        if (TimerModeOf(s.LvtTimer) == TimerMode.TscDeadline && s.TscDeadline > s.Tsc)
        {
            // The same computation as an IA32_TSC_DEADLINE write or a TSC offset change.
            _regs.TimerDeadline = TscDeadlineToVirtualTime(s.TscDeadline);
        }
        else
        {
            _regs.TimerDeadline = s.TimerExpiresInNs is long expiresIn ? now + expiresIn : long.MaxValue;
        }

        if (_regs.TimerDeadline != oldDeadline)
        {
            _host.TimerChanged(this);
        }

        if (_mode != oldMode || Id != oldId || _regs.LogicalDestination != oldLdr ||
            _regs.DestinationFormat != oldDfr || SoftwareEnabled != oldEnabled)
        {
            _host.RoutingChanged(this);
        }
    }

    private static uint LvtOf(LocalApicState s, int slot) => slot switch
    {
        LvtTimerSlot => s.LvtTimer,
        LvtThermalSlot => s.LvtThermal,
        LvtPerformanceCounterSlot => s.LvtPerformanceCounter,
        LvtLint0Slot => s.LvtLint0,
        LvtLint1Slot => s.LvtLint1,
        _ => s.LvtError,
    };

    private static string LvtFieldName(int slot) => slot switch
    {
        LvtTimerSlot => nameof(LocalApicState.LvtTimer),
        LvtThermalSlot => nameof(LocalApicState.LvtThermal),
        LvtPerformanceCounterSlot => nameof(LocalApicState.LvtPerformanceCounter),
        LvtLint0Slot => nameof(LocalApicState.LvtLint0),
        LvtLint1Slot => nameof(LocalApicState.LvtLint1),
        _ => nameof(LocalApicState.LvtError),
    };

    /// <summary><paramref name="time"/> + <paramref name="delta"/>, or false when the sum overflows.</summary>
    private static bool TryOffset(long time, long delta, out long result)
    {
        result = unchecked(time + delta);
        return ((time ^ result) & (delta ^ result)) >= 0;
    }

    private static SavedStateResult Fail(SavedStateError error, string field, string message) =>
        SavedStateResult.Fail(error, field, message);
}
