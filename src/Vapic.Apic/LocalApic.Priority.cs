using System.Runtime.CompilerServices;

namespace Vapic.Apic;

// Priorities, IRR/ISR/TMR, acceptance, acknowledgment and EOI (spec §5, SDM "Interrupt Handling
// Procedure", "Task and Processor Priorities", "Signaling Interrupt Servicing Completion").
public sealed partial class LocalApic
{
    /// <summary>
    /// True when the APIC is globally enabled and the highest IRR vector's priority class is above
    /// PPR's class. Interrupts already in IRR are still offered while software-disabled (spec A18, KVM).
    /// </summary>
    public bool HasDeliverableInterrupt
    {
        get
        {
            int vector = _regs.Irr.Highest();
            return _mode != ApicMode.Disabled && vector >= 0 && (uint)(vector & 0xF0) > (_regs.ProcessorPriority & 0xF0);
        }
    }

    /// <summary>
    /// The CPU takes the highest deliverable fixed vector: IRR → ISR and PPR is recomputed. Returns
    /// the vector, or -1 when nothing is deliverable (acknowledge and evaluation are atomic here, so
    /// the spurious vector is never produced).
    /// </summary>
    public int AcknowledgeInterrupt()
    {
        int vector = _regs.Irr.Highest();
        if (_mode == ApicMode.Disabled || vector < 0 || (uint)(vector & 0xF0) <= (_regs.ProcessorPriority & 0xF0))
        {
            return -1;
        }

        _regs.Irr.Clear(vector);
        _regs.Isr.Set(vector);
        UpdateProcessorPriority();
        _counters.Acknowledged++;
        return vector;
    }

    /// <summary>Clears latched non-fixed events once the CPU has taken them.</summary>
    public void ClearPendingEvents(ApicEvents events) => _regs.PendingEvents &= ~events;

    /// <summary>
    /// A routed message arrives at this APIC (SDM "Interrupt Acceptance for Fixed Interrupts").
    /// Fixed and lowest priority set IRR (TMR for level, cleared for edge; merging with a pending
    /// vector); a vector below 16 sets ESR bit 6 and is refused; a software-disabled APIC drops them.
    /// SMI, NMI, INIT, ExtINT and SIPI are latched for the CPU. Reserved mode 011 and every message
    /// to a globally disabled APIC are refused.
    /// </summary>
    /// <returns>True if the message was accepted.</returns>
    public bool AcceptInterrupt(DeliveryMode mode, byte vector, bool levelTriggered)
    {
        if (_mode == ApicMode.Disabled)
        {
            _counters.DroppedGloballyDisabled++;
            return false;
        }

        switch (mode)
        {
            case DeliveryMode.Fixed:
            case DeliveryMode.LowestPriority:
                return AcceptFixed(vector, levelTriggered);
            case DeliveryMode.Smi:
                LatchEvent(ApicEvents.Smi);
                return true;
            case DeliveryMode.Nmi:
                LatchEvent(ApicEvents.Nmi);
                return true;
            case DeliveryMode.Init:
                LatchEvent(ApicEvents.Init);
                return true;
            case DeliveryMode.ExtInt:
                LatchEvent(ApicEvents.ExtInt);
                return true;
            case DeliveryMode.StartUp:
                // No vector check applies to SIPI; the latest one wins.
                _regs.StartupVector = vector;
                LatchEvent(ApicEvents.StartUp);
                return true;
            default:
                _counters.DroppedReservedMode++;
                return false;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void LatchEvent(ApicEvents ev)
    {
        _regs.PendingEvents |= ev;
        _counters.EventsLatched++;
    }

    /// <summary>Fixed acceptance, shared by routed messages and the local LVT sources.</summary>
    private bool AcceptFixed(byte vector, bool levelTriggered)
    {
        if (vector < 16)
        {
            // SDM "Error Handling", Receive Illegal Vector: the interrupt is not set in IRR.
            _counters.DroppedIllegalVector++;
            RaiseError(ApicRegister.ErrorReceiveIllegalVector);
            return false;
        }

        if ((_regs.SpuriousVector & ApicRegister.SpuriousVectorSoftwareEnable) == 0)
        {
            // SDM "Local APIC State After It Has Been Software Disabled": fixed interrupts are not accepted.
            _counters.DroppedSoftwareDisabled++;
            return false;
        }

        ulong bit = 1UL << vector;
        SetRequest(vector >> 6, bit, levelTriggered ? bit : 0, _counters);
        return true;
    }

    /// <summary>
    /// Records an accepted fixed request: the vector's <paramref name="bit"/> in IRR word
    /// <paramref name="word"/>, and in TMR set for level (<paramref name="levelBit"/> = bit) or
    /// cleared for edge (0), counted in <paramref name="counters"/> (this APIC's
    /// <see cref="Counters"/>, passed in so that a broadcast need not load it). IRR holds one
    /// request per vector, so a request for a vector already in IRR merges into it (SDM "Interrupt
    /// Acceptance for Fixed Interrupts": further interrupts with the same vector "are collapsed
    /// into the single bit in the IRR").
    /// </summary>
    /// <remarks>
    /// Stores only what changes: a broadcast of a vector already pending everywhere then leaves the
    /// IRR and TMR cache lines of its 4,096 targets clean, and writing back a dirty line per target
    /// costs about as much as the rest of the acceptance.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetRequest(int word, ulong bit, ulong levelBit, LocalApicCounters counters)
    {
        ref ulong irr = ref _regs.Irr.Word(word);
        ulong requests = irr;
        if ((requests & bit) != 0)
        {
            counters.Merged++;
        }
        else
        {
            irr = requests | bit;
            counters.FixedAccepted++;
        }

        ref ulong tmr = ref _regs.Tmr.Word(word);
        ulong triggerModes = tmr;
        if ((triggerModes & bit) != levelBit)
        {
            tmr = triggerModes ^ bit;
        }
    }

    /// <summary>
    /// PPR := TPR if TPR[7:4] ≥ ISRV[7:4], else ISRV[7:4] &lt;&lt; 4 (SDM "Processor Priority Register (PPR)").
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void UpdateProcessorPriority()
    {
        uint tpr = _regs.TaskPriority;
        int isrv = _regs.Isr.Highest();
        uint isrClass = isrv < 0 ? 0 : (uint)isrv & 0xF0;
        _regs.ProcessorPriority = (tpr & 0xF0) >= isrClass ? tpr : isrClass;
    }

    /// <summary>
    /// EOI: retires the highest in-service vector (not the written value; no-op when ISR is empty),
    /// recomputes PPR, broadcasts the EOI to the IOAPICs for a level-triggered vector unless SVR[12]
    /// suppresses it, and clears a matching LINT remote IRR (re-delivering a still-asserted level pin).
    /// </summary>
    private void EndOfInterrupt()
    {
        int vector = _regs.Isr.Highest();
        if (vector < 0)
        {
            return;
        }

        _regs.Isr.Clear(vector);
        UpdateProcessorPriority();
        _counters.Eois++;

        if (_regs.Tmr.Get(vector) && (_regs.SpuriousVector & ApicRegister.SpuriousVectorSuppressEoiBroadcast) == 0)
        {
            _counters.EoiBroadcasts++;
            _host.BroadcastEoi(this, (byte)vector);
        }

        if (_regs.Lint0RemoteIrr | _regs.Lint1RemoteIrr)
        {
            LintEndOfInterrupt((byte)vector);
        }
    }

    /// <summary>
    /// A fixed list of local APICs that fixed broadcasts reach together (a router's "every vCPU"
    /// or "every x2APIC-mode LAPIC"), with the per-message work of acceptance done once per
    /// broadcast instead of once per target.
    /// </summary>
    /// <remarks>
    /// Next to the APICs the group keeps their <see cref="Counters"/>, so that a broadcast reaches
    /// each APIC's statistics without first loading the reference from the APIC: with thousands of
    /// targets the loop is bound by cache misses, and that load is one more line per target.
    /// </remarks>
    public sealed class BroadcastGroup
    {
        private readonly LocalApic[] _apics;
        private readonly LocalApicCounters[] _counters;

        /// <summary>Creates the group of <paramref name="apics"/>, in that order.</summary>
        public BroadcastGroup(ReadOnlySpan<LocalApic> apics)
        {
            _apics = apics.ToArray();
            _counters = new LocalApicCounters[_apics.Length];
            for (int i = 0; i < _apics.Length; i++)
            {
                ArgumentNullException.ThrowIfNull(_apics[i], nameof(apics));
                _counters[i] = _apics[i]._counters;
            }
        }

        /// <summary>The number of APICs in the group.</summary>
        public int Count => _apics.Length;

        /// <summary>The APICs, in order.</summary>
        public ReadOnlySpan<LocalApic> Apics => _apics;

        /// <summary>
        /// A fixed message to the <paramref name="count"/> APICs from index <paramref name="start"/>:
        /// exactly <c>AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered)</c> at each of them
        /// in order, registers and counters included, with the vector check and the IRR/TMR word and
        /// bit computed once and no delivery-mode dispatch per target.
        /// </summary>
        /// <returns>The number of APICs that accepted the message.</returns>
        public int AcceptFixed(int start, int count, byte vector, bool levelTriggered)
        {
            var apics = new ReadOnlySpan<LocalApic>(_apics, start, count);
            var counters = new ReadOnlySpan<LocalApicCounters>(_counters, start, count);
            int accepted = 0;
            if (vector < 16)
            {
                // Every target refuses it, each with its own ESR bit 6 (or as globally disabled).
                foreach (LocalApic apic in apics)
                {
                    if (apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered))
                    {
                        accepted++;
                    }
                }

                return accepted;
            }

            int word = vector >> 6;
            ulong bit = 1UL << vector;
            ulong levelBit = levelTriggered ? bit : 0;
            for (int i = 0; i < apics.Length; i++)
            {
                LocalApic apic = apics[i];
                if (apic._mode == ApicMode.Disabled ||
                    (apic._regs.SpuriousVector & ApicRegister.SpuriousVectorSoftwareEnable) == 0)
                {
                    // Refused, globally or software-disabled; AcceptInterrupt counts which.
                    apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
                    continue;
                }

                apic.SetRequest(word, bit, levelBit, counters[i]);
                accepted++;
            }

            return accepted;
        }
    }
}
