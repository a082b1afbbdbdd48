using System.Collections.Immutable;

namespace Vapic.Apic.SavedState;

/// <summary>The saved state of one IOAPIC input pin.</summary>
/// <param name="RedirectionEntry">The 64-bit redirection entry, Remote IRR included (delivery status is always 0).</param>
/// <param name="LineAsserted">The level of the input line.</param>
/// <param name="SuccessiveEois">
/// The interrupt-storm guard's count of EOIs in a row that found the line still asserted, below
/// <see cref="IoApic.StormEoiThreshold"/>.
/// </param>
public readonly record struct IoApicPinState(ulong RedirectionEntry, bool LineAsserted, int SuccessiveEois);

/// <summary>
/// The saved state of an IOAPIC: ID, IOREGSEL, every pin, and the storm guard's deferred
/// re-delivery relative to the save instant. Produced by <see cref="IoApic.Save"/>, consumed by
/// <see cref="IoApic.Restore"/>. Configuration (version, pin count) is recorded so that a restore
/// into a differently built IOAPIC is refused.
/// </summary>
public sealed record IoApicState
{
    /// <summary>The version register's low byte (0x11 or 0x20); must match the restoring IOAPIC.</summary>
    public byte Version { get; init; }

    /// <summary>The ID register (ID in bits 27:24).</summary>
    public uint Id { get; init; }

    /// <summary>IOREGSEL.</summary>
    public byte RegisterSelect { get; init; }

    /// <summary>One entry per pin; the length is the pin count and must match the restoring IOAPIC.</summary>
    public ImmutableArray<IoApicPinState> Pins { get; init; }

    /// <summary>The number of pins (0 when <see cref="Pins"/> is uninitialized).</summary>
    public int PinCount => Pins.IsDefault ? 0 : Pins.Length;

    /// <summary>
    /// Nanoseconds from the save instant to the storm guard's deferred re-delivery (0 or negative
    /// when due); null when none is pending.
    /// </summary>
    public long? RetriggerInNs { get; init; }

    /// <inheritdoc/>
    public bool Equals(IoApicState? other) =>
        other is not null &&
        Version == other.Version &&
        Id == other.Id &&
        RegisterSelect == other.RegisterSelect &&
        RetriggerInNs == other.RetriggerInNs &&
        SavedStateEquality.SequenceEqual(Pins, other.Pins);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Version, Id, RegisterSelect, RetriggerInNs, PinCount);
}
