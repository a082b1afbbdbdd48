using System.Collections.Immutable;
using Vapic.Apic.SavedState;

namespace Vapic.Apic;

// Saved state (docs/saved-state.md): ID, IOREGSEL, every pin and the storm guard, with the deferred
// re-delivery relative to the save instant. Restore checks everything before it changes anything.
public sealed partial class IoApic
{
    /// <summary>Captures the volatile state at <see cref="IIoApicHost.Now"/>; the IOAPIC is not changed.</summary>
    public IoApicState Save()
    {
        var pins = ImmutableArray.CreateBuilder<IoApicPinState>(PinCount);
        for (int pin = 0; pin < PinCount; pin++)
        {
            pins.Add(new IoApicPinState(_entries[pin], _lines[pin], _successiveEois[pin]));
        }

        return new IoApicState
        {
            Version = Version,
            Id = _id,
            RegisterSelect = _registerSelect,
            Pins = pins.MoveToImmutable(),
            RetriggerInNs = _retriggerDeadline == long.MaxValue ? null : unchecked(_retriggerDeadline - _host.Now),
        };
    }

    /// <summary>
    /// Replaces the volatile state with <paramref name="state"/>, placed at <see cref="IIoApicHost.Now"/>.
    /// All or nothing (see <see cref="ValidateState"/>); on success the host hears
    /// <see cref="IIoApicHost.TimerChanged"/> if the re-delivery deadline changed. No message is sent:
    /// the lines and Remote IRR bits are restored as they were, not re-sampled. Counters are kept.
    /// </summary>
    public SavedStateResult Restore(IoApicState state)
    {
        long now = _host.Now;
        SavedStateResult result = ValidateState(state, now);
        if (!result.IsSuccess)
        {
            return result;
        }

        for (int pin = 0; pin < PinCount; pin++)
        {
            IoApicPinState p = state.Pins[pin];
            _entries[pin] = p.RedirectionEntry;
            _lines[pin] = p.LineAsserted;
            _successiveEois[pin] = p.SuccessiveEois;
        }

        _id = state.Id;
        _registerSelect = state.RegisterSelect;
        long oldDeadline = _retriggerDeadline;
        _retriggerDeadline = state.RetriggerInNs is long retriggerIn ? now + retriggerIn : long.MaxValue;
        if (_retriggerDeadline != oldDeadline)
        {
            _host.TimerChanged(this);
        }

        return result;
    }

    /// <summary>
    /// Checks <paramref name="state"/> as <see cref="Restore"/> would at virtual time
    /// <paramref name="now"/>, changing nothing: version and pin count must match this IOAPIC, the
    /// ID only bits 27:24, each entry no delivery status and no Remote IRR on an edge entry, each
    /// storm count below <see cref="StormEoiThreshold"/>, and the deferred re-delivery must be placeable at now.
    /// </summary>
    public SavedStateResult ValidateState(IoApicState state, long now)
    {
        if (state is null)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, "", "no IOAPIC state");
        }

        if (state.Version != Version)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(state.Version),
                $"IOAPIC version 0x{state.Version:x2} differs from this IOAPIC's 0x{Version:x2}");
        }

        if (state.Pins.IsDefault)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, nameof(state.Pins), "no pin states");
        }

        if (state.Pins.Length != PinCount)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(state.PinCount),
                $"{state.Pins.Length} pins saved, this IOAPIC has {PinCount}");
        }

        if ((state.Id & ~IoApicRegisters.IdMask) != 0)
        {
            return SavedStateResult.Fail(SavedStateError.ReservedBits, nameof(state.Id), $"ID register 0x{state.Id:x8} sets bits outside 27:24");
        }

        for (int pin = 0; pin < PinCount; pin++)
        {
            IoApicPinState p = state.Pins[pin];
            var entry = new RedirectionEntry(p.RedirectionEntry);
            if ((p.RedirectionEntry & RedirectionEntry.DeliveryStatusBit) != 0)
            {
                return SavedStateResult.Fail(SavedStateError.ReservedBits, $"Pins[{pin}].RedirectionEntry",
                    "delivery status (bit 12) is set; delivery is instantaneous");
            }

            if (entry.RemoteIrr && !entry.LevelTriggered)
            {
                // An edge entry drops Remote IRR on every write (KVM ioapic_write_indirect, QEMU ioapic_fix_edge_remote_irr).
                return SavedStateResult.Fail(SavedStateError.Inconsistent, $"Pins[{pin}].RedirectionEntry", "Remote IRR is set on an edge-triggered entry");
            }

            if (p.SuccessiveEois < 0 || p.SuccessiveEois >= StormEoiThreshold)
            {
                return SavedStateResult.Fail(SavedStateError.InvalidValue, $"Pins[{pin}].SuccessiveEois",
                    $"{p.SuccessiveEois} is outside 0..{StormEoiThreshold - 1}");
            }
        }

        if (state.RetriggerInNs is long retriggerIn)
        {
            long deadline = unchecked(now + retriggerIn);
            bool overflow = ((now ^ deadline) & (retriggerIn ^ deadline)) < 0;
            if (overflow || deadline == long.MaxValue)
            {
                return SavedStateResult.Fail(SavedStateError.TimeOutOfRange, nameof(state.RetriggerInNs),
                    $"the deferred re-delivery cannot be placed {retriggerIn} ns after {now}");
            }
        }

        return SavedStateResult.Success;
    }
}
