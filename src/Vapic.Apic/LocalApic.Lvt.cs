using System.Runtime.CompilerServices;

namespace Vapic.Apic;

// The local vector table and the LINT0/LINT1 pins (spec §7, SDM "Local Vector Table").
public sealed partial class LocalApic
{
    private const int LvtTimerSlot = (int)LvtEntry.Timer;
    private const int LvtThermalSlot = (int)LvtEntry.Thermal;
    private const int LvtPerformanceCounterSlot = (int)LvtEntry.PerformanceCounter;
    private const int LvtLint0Slot = (int)LvtEntry.Lint0;
    private const int LvtLint1Slot = (int)LvtEntry.Lint1;
    private const int LvtErrorSlot = (int)LvtEntry.Error;

    /// <summary>Stored bits of an LVT write, by slot (see <see cref="LocalVectorTable.WritableBits"/>).</summary>
    private static ReadOnlySpan<uint> LvtWritableBits =>
    [
        LocalVectorTable.TimerWritableBits,
        LocalVectorTable.ThermalWritableBits,
        LocalVectorTable.PerformanceCounterWritableBits,
        LocalVectorTable.LintWritableBits,
        LocalVectorTable.LintWritableBits,
        LocalVectorTable.ErrorWritableBits,
    ];

    /// <summary>
    /// The LINT0/LINT1 input lines. Edge-triggered LVTs deliver on a deasserted → asserted transition;
    /// a level-triggered Fixed LINT0 delivers while asserted with remote IRR clear, sets remote IRR on
    /// acceptance and is re-delivered at EOI if still asserted (spec §7, U5). A masked LVT discards the
    /// event. While the APIC is globally disabled LINT0 acts as INTR (ExtINT) and LINT1 as NMI (spec U6).
    /// </summary>
    /// <param name="pin">0 or 1.</param>
    /// <param name="asserted">The new level of the line (polarity is not modelled: high = asserted, spec A23).</param>
    public void SetLint(int pin, bool asserted)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)pin, 1u, nameof(pin));
        ref bool level = ref pin == 0 ? ref _regs.Lint0Asserted : ref _regs.Lint1Asserted;
        bool rising = asserted && !level;
        level = asserted;

        if (_mode == ApicMode.Disabled)
        {
            if (rising)
            {
                // The pins bypass the LVTs (INTR and NMI), but the interrupt is still this APIC's
                // own, so the host may refuse it like any other local interrupt.
                bool intr = pin == 0;
                if (HostAllowsLocalInterrupt(intr ? LvtLint0Slot : LvtLint1Slot, intr ? DeliveryMode.ExtInt : DeliveryMode.Nmi, 0))
                {
                    LatchEvent(intr ? ApicEvents.ExtInt : ApicEvents.Nmi);
                }
            }

            return;
        }

        int slot = pin == 0 ? LvtLint0Slot : LvtLint1Slot;
        uint lvt = _regs.Lvt[slot];
        if ((lvt & LocalVectorTable.Masked) != 0)
        {
            return;
        }

        if (IsLevelLint(slot, lvt))
        {
            if (asserted && !_regs.Lint0RemoteIrr)
            {
                DeliverLevelLint0();
            }

            return;
        }

        if (rising && DeliverLvt(slot))
        {
            _counters.LintDeliveries++;
        }
    }

    /// <summary>
    /// The performance-monitoring counter overflowed: delivers through LVT Perf and then sets its mask
    /// bit, as P4/Xeon and later do (SDM LVT figure note; KVM <c>kvm_apic_local_deliver</c>).
    /// </summary>
    public void RaisePerformanceCounterInterrupt()
    {
        if (DeliverLvt(LvtPerformanceCounterSlot))
        {
            _regs.Lvt[LvtPerformanceCounterSlot] |= LocalVectorTable.Masked;
        }
    }

    /// <summary>The thermal sensor tripped: delivers through LVT Thermal.</summary>
    public void RaiseThermalInterrupt() => DeliverLvt(LvtThermalSlot);

    /// <summary>Reads an LVT by slot; LINT entries show the live remote IRR in bit 14 (spec A2).</summary>
    private uint ReadLvt(int slot)
    {
        uint value = _regs.Lvt[slot];
        if ((slot == LvtLint0Slot && _regs.Lint0RemoteIrr) || (slot == LvtLint1Slot && _regs.Lint1RemoteIrr))
        {
            value |= LocalVectorTable.RemoteIrr;
        }

        return value;
    }

    /// <summary>
    /// Writes an LVT by slot: only the LVT's writable bits are stored (delivery status and remote IRR
    /// are read-only, spec A2); while software-disabled the mask bit is forced to 1 (SDM "Local APIC
    /// State After It Has Been Software Disabled").
    /// </summary>
    private void WriteLvt(int slot, uint value)
    {
        uint stored = value & LvtWritableBits[slot];
        if ((_regs.SpuriousVector & ApicRegister.SpuriousVectorSoftwareEnable) == 0)
        {
            stored |= LocalVectorTable.Masked;
        }

        uint old = _regs.Lvt[slot];
        _regs.Lvt[slot] = stored;
        switch (slot)
        {
            case LvtTimerSlot:
                if (((old ^ stored) & LocalVectorTable.TimerModeMask) != 0)
                {
                    TimerModeChanged(TimerModeOf(old), TimerModeOf(stored));
                }

                break;
            case LvtLint0Slot:
                if (!IsLevelLint(LvtLint0Slot, stored))
                {
                    // No longer a level-triggered Fixed input: nothing can be outstanding (cf. IOAPIC RTE).
                    _regs.Lint0RemoteIrr = false;
                }
                else if ((stored & LocalVectorTable.Masked) == 0 && _regs.Lint0Asserted && !_regs.Lint0RemoteIrr)
                {
                    // Unmasking (or reprogramming) while the line is asserted delivers, as an IOAPIC does (spec U5).
                    DeliverLevelLint0();
                }

                break;
            case LvtLint1Slot:
                _regs.Lint1RemoteIrr = false;
                break;
        }
    }

    /// <summary>
    /// Level semantics apply only to a Fixed LINT0 with trigger bit 15 set. LINT1 does not support
    /// level-sensitive interrupts (SDM LVT trigger-mode description); NMI, SMI and INIT are always
    /// edge and ExtINT is taken on the assertion edge here.
    /// </summary>
    private static bool IsLevelLint(int slot, uint lvt) =>
        slot == LvtLint0Slot && (lvt & (LocalVectorTable.DeliveryModeMask | LocalVectorTable.LevelTriggered)) == LocalVectorTable.LevelTriggered;

    private void DeliverLevelLint0()
    {
        _counters.LintDeliveries++;
        byte vector = (byte)_regs.Lvt[LvtLint0Slot];

        // A refusal by the host leaves remote IRR clear: the still-asserted line delivers again
        // on the next assertion, unmask or EOI, as a line nobody accepted does.
        if (HostAllowsLocalInterrupt(LvtLint0Slot, DeliveryMode.Fixed, vector) && AcceptFixed(vector, levelTriggered: true))
        {
            // SDM remote IRR description: set when the local APIC accepts the interrupt.
            _regs.Lint0RemoteIrr = true;
        }
    }

    /// <summary>An EOI retired <paramref name="vector"/>: clear the matching LINT remote IRR and re-deliver if still asserted.</summary>
    private void LintEndOfInterrupt(byte vector)
    {
        if (_regs.Lint0RemoteIrr && (byte)_regs.Lvt[LvtLint0Slot] == vector)
        {
            _regs.Lint0RemoteIrr = false;
            uint lvt = _regs.Lvt[LvtLint0Slot];
            if (_regs.Lint0Asserted && (lvt & LocalVectorTable.Masked) == 0 && IsLevelLint(LvtLint0Slot, lvt))
            {
                DeliverLevelLint0();
            }
        }

        if (_regs.Lint1RemoteIrr && (byte)_regs.Lvt[LvtLint1Slot] == vector)
        {
            _regs.Lint1RemoteIrr = false;
        }
    }

    /// <summary>
    /// Delivers an edge event through LVT <paramref name="slot"/>. Returns true if the LVT fired
    /// (globally enabled, unmasked, a delivery mode this LVT supports), whether or not a fixed vector
    /// was then accepted and whether or not the host let the interrupt through
    /// (<see cref="ILocalApicHost.AllowLocalInterrupt"/>).
    /// </summary>
    private bool DeliverLvt(int slot)
    {
        uint lvt = _regs.Lvt[slot];
        if (_mode == ApicMode.Disabled || (lvt & LocalVectorTable.Masked) != 0)
        {
            return false;
        }

        // Timer and Error have no delivery-mode field: they are always Fixed.
        DeliveryMode mode = slot is LvtTimerSlot or LvtErrorSlot ? DeliveryMode.Fixed : LocalVectorTable.GetDeliveryMode(lvt);
        ApicEvents latched;
        switch (mode)
        {
            case DeliveryMode.Fixed:
                AcceptLocalFixed(slot, (byte)lvt);
                return true;
            case DeliveryMode.Smi:
                latched = ApicEvents.Smi;
                break;
            case DeliveryMode.Nmi:
                latched = ApicEvents.Nmi;
                break;
            case DeliveryMode.Init when slot is LvtLint0Slot or LvtLint1Slot:
                latched = ApicEvents.Init;
                break;
            case DeliveryMode.ExtInt when slot is LvtLint0Slot or LvtLint1Slot:
                latched = ApicEvents.ExtInt;
                break;
            default:
                // Reserved or unsupported modes are stored but deliver nothing (spec §7, U4).
                return false;
        }

        if (HostAllowsLocalInterrupt(slot, mode, (byte)lvt))
        {
            LatchEvent(latched);
        }

        return true;
    }

    /// <summary>
    /// Accepts fixed edge <paramref name="vector"/>, raised by this APIC through LVT
    /// <paramref name="slot"/>, unless the host refuses it. The host is asked first: a vector it
    /// refuses never reaches the APIC, so an illegal one (below 16) then records no error either.
    /// </summary>
    private void AcceptLocalFixed(int slot, byte vector)
    {
        if (HostAllowsLocalInterrupt(slot, DeliveryMode.Fixed, vector))
        {
            AcceptFixed(vector, levelTriggered: false);
        }
    }

    /// <summary>Asks the host whether this APIC may deliver its own interrupt; a refusal is counted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HostAllowsLocalInterrupt(int slot, DeliveryMode mode, byte vector)
    {
        if (_host.AllowLocalInterrupt(this, (LvtEntry)slot, mode, vector))
        {
            return true;
        }

        _counters.LocalInterruptsVetoed++;
        return false;
    }
}
