namespace Vapic.Apic;

// Pin inputs, message generation, EOI handling and the interrupt-storm guard.
public sealed partial class IoApic
{
    /// <summary>
    /// Consecutive EOIs that may find a level line still asserted before re-delivery is deferred
    /// (KVM <c>IOAPIC_SUCCESSIVE_IRQ_MAX_COUNT</c>, QEMU <c>SUCCESSIVE_IRQ_MAX_COUNT</c>).
    /// </summary>
    public const int StormEoiThreshold = 10_000;

    /// <summary>How long the storm guard defers a re-delivery: 10 ms of virtual time (KVM HZ/100, QEMU 1e9/100 ns).</summary>
    public const long StormDeferralNs = 10_000_000;

    /// <summary>
    /// The virtual time at which a deferred re-delivery is due (call <see cref="OnTimer"/> then), or
    /// <see cref="long.MaxValue"/> when none is pending.
    /// </summary>
    public long RetriggerDeadline => _retriggerDeadline;

    /// <summary>The input line state of <paramref name="pin"/>: true = asserted.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pin"/> is not below <see cref="PinCount"/>.</exception>
    public bool GetLine(int pin)
    {
        ValidatePin(pin);
        return _lines[pin];
    }

    /// <summary>
    /// Drives the input line of <paramref name="pin"/>. <paramref name="asserted"/> means the line is
    /// active whatever the polarity bit says (A23: the caller's value already means asserted).
    /// Edge pins send one message per deasserted→asserted transition while unmasked (masked edges
    /// are lost); level pins send while asserted, unmasked and Remote IRR = 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pin"/> is not below <see cref="PinCount"/>.</exception>
    public void SetLine(int pin, bool asserted)
    {
        ValidatePin(pin);
        bool wasAsserted = _lines[pin];
        _lines[pin] = asserted;
        if (!asserted)
        {
            // De-assertion only updates the line; Remote IRR waits for the EOI.
            return;
        }

        var entry = new RedirectionEntry(_entries[pin]);
        if (!entry.LevelTriggered)
        {
            if (wasAsserted)
            {
                // No deasserted→asserted transition, so no edge (KVM ioapic_set_irq coalesces).
                Counters.EdgesCoalesced++;
            }
            else if (entry.Masked)
            {
                // The 82093AA does not latch edges on a masked pin; a later unmask sends nothing.
                Counters.EdgesLostMasked++;
            }
            else
            {
                Service(pin);
            }

            return;
        }

        if (entry.RemoteIrr)
        {
            Counters.LevelCoalesced++;
            return;
        }

        // Level, Remote IRR clear: deliver unless masked. Like KVM's ioapic_set_irq this also retries
        // an asserted line whose previous message every target refused.
        Service(pin);
    }

    /// <summary>
    /// The EOI message a local APIC broadcasts for a level-triggered vector (TMR set, EOI-broadcast
    /// suppression off; SDM "EOI Register"). Every level entry with this vector has Remote IRR
    /// cleared and is re-delivered at once if its line is still asserted and it is unmasked.
    /// </summary>
    public void EndOfInterrupt(byte vector)
    {
        Counters.EoiBroadcasts++;
        ProcessEoi(vector);
    }

    /// <summary>
    /// Performs a re-delivery that the interrupt-storm guard deferred. The host calls this once
    /// <see cref="IIoApicHost.Now"/> reaches <see cref="RetriggerDeadline"/>; an early call does nothing.
    /// </summary>
    public void OnTimer()
    {
        if (_retriggerDeadline == long.MaxValue || _host.Now < _retriggerDeadline)
        {
            return;
        }

        _retriggerDeadline = long.MaxValue;
        _host.TimerChanged(this);

        // As KVM's kvm_ioapic_eoi_inject_work: every asserted level pin without Remote IRR is serviced.
        for (int pin = 0; pin < _entries.Length; pin++)
        {
            var entry = new RedirectionEntry(_entries[pin]);
            if (entry.LevelTriggered && !entry.RemoteIrr && _lines[pin] && Service(pin))
            {
                Counters.Redelivered++;
            }
        }
    }

    private void WriteEoiRegister(byte vector)
    {
        if (!HasEoiRegister)
        {
            // The 82093AA (version 0x11) has no register at base + 0x40.
            Counters.EoiRegisterWritesIgnored++;
            return;
        }

        // The ICH EOI register does what the LAPIC broadcast does (QEMU ioapic_eoi_broadcast).
        Counters.EoiRegisterWrites++;
        ProcessEoi(vector);
    }

    private void ProcessEoi(byte vector)
    {
        bool deferred = false;
        for (int pin = 0; pin < _entries.Length; pin++)
        {
            var entry = new RedirectionEntry(_entries[pin]);
            if (entry.Vector != vector || !entry.LevelTriggered)
            {
                continue;
            }

            // KVM __kvm_ioapic_update_eoi: Remote IRR is cleared on every level entry with the vector.
            _entries[pin] = entry.Value & ~RedirectionEntry.RemoteIrrBit;
            if (entry.Masked || !_lines[pin])
            {
                _successiveEois[pin] = 0;
                continue;
            }

            // Interrupt-storm guard: a guest that EOIs without quieting the device would otherwise
            // be flooded; real hardware also needs time before it samples the line again.
            if (++_successiveEois[pin] >= StormEoiThreshold)
            {
                _successiveEois[pin] = 0;
                Counters.StormDeferrals++;
                deferred |= ArmRetrigger();
            }
            else if (Service(pin))
            {
                Counters.Redelivered++;
            }
        }

        if (deferred)
        {
            _host.TimerChanged(this);
        }
    }

    /// <summary>Arms the deferred re-delivery; an earlier pending deadline is kept. True if the deadline changed.</summary>
    private bool ArmRetrigger()
    {
        long now = _host.Now;
        long deadline = now > long.MaxValue - 1 - StormDeferralNs ? long.MaxValue - 1 : now + StormDeferralNs;
        if (deadline >= _retriggerDeadline)
        {
            return false;
        }

        _retriggerDeadline = deadline;
        return true;
    }

    private void WriteEntry(int pin, bool highDword, uint value)
    {
        ulong old = _entries[pin];
        ulong updated = highDword
            ? (old & 0xFFFF_FFFFUL) | ((ulong)value << 32)
            : (old & 0xFFFF_FFFF_0000_0000UL) | (value & ~RedirectionEntry.ReadOnlyBits) | (old & RedirectionEntry.RemoteIrrBit);

        if ((updated & RedirectionEntry.TriggerModeBit) == 0)
        {
            // Linux rewrites a pin as edge and back to level as a manual EOI on IOAPICs without an
            // EOI register, so an edge entry drops Remote IRR (KVM ioapic_write_indirect,
            // QEMU ioapic_fix_edge_remote_irr).
            updated &= ~RedirectionEntry.RemoteIrrBit;
        }

        _entries[pin] = updated;

        // A write never sends an edge (edges that arrived while masked are lost), but an asserted,
        // unmasked level pin without Remote IRR delivers now (kvm-unit-tests test_ioapic_level_mask).
        var entry = new RedirectionEntry(updated);
        if (entry.LevelTriggered && !entry.Masked && !entry.RemoteIrr && _lines[pin] && Service(pin))
        {
            Counters.DeliveredOnEntryWrite++;
        }
    }

    /// <summary>
    /// Sends the message of <paramref name="pin"/> if the entry allows it (unmasked; for level,
    /// Remote IRR clear). Returns true when a message went to the host.
    /// </summary>
    private bool Service(int pin)
    {
        var entry = new RedirectionEntry(_entries[pin]);
        if (entry.Masked || (entry.LevelTriggered && entry.RemoteIrr))
        {
            return false;
        }

        if (entry.HasReservedDeliveryMode)
        {
            Counters.ReservedModeDropped++;
            return false;
        }

        var message = new InterruptMessage(
            entry.Vector,
            entry.DeliveryMode,
            entry.DestinationMode,
            entry.GetDestination(_extendedDestinationId),
            DestinationShorthand.None,
            LevelTriggered: entry.LevelTriggered,
            Assert: true,
            RedirectionHint: false,
            InterruptSource.IoApic,
            SourceVcpu: -1);

        Counters.MessagesSent++;
        int accepted = _host.Deliver(in message);
        if (entry.LevelTriggered)
        {
            if (accepted != 0)
            {
                // KVM ioapic_service: Remote IRR is set unless destinations existed and all refused.
                _entries[pin] |= RedirectionEntry.RemoteIrrBit;
            }
            else
            {
                Counters.LevelRefused++;
            }
        }

        return true;
    }
}
