namespace Vapic.Apic.SavedState;

/// <summary>Why a saved state was refused by a restore.</summary>
public enum SavedStateError : byte
{
    /// <summary>No error: the state was (or would be) restored.</summary>
    None,

    /// <summary>A required part is absent: a null record or an uninitialized array.</summary>
    Missing,

    /// <summary>Bits are set that the architecture reserves or that the device never stores.</summary>
    ReservedBits,

    /// <summary>A number or enumeration value lies outside its range.</summary>
    InvalidValue,

    /// <summary>IA32_APIC_BASE has EN = 0 and EXTD = 1, the invalid combination (SDM "x2APIC State Transitions").</summary>
    InvalidApicMode,

    /// <summary>The recorded APIC mode is not the one IA32_APIC_BASE EN and EXTD select.</summary>
    ModeMismatch,

    /// <summary>The APIC base address has bits at or above MAXPHYADDR.</summary>
    BaseAboveMaxPhysicalAddress,

    /// <summary>The x2APIC is locked but the state is not in x2APIC mode.</summary>
    X2ApicLockViolated,

    /// <summary>
    /// The state was saved from a device configured differently from the one restoring it (initial
    /// APIC ID, VER, x2APIC lock, IOAPIC version or pin count, machine options).
    /// </summary>
    ConfigurationMismatch,

    /// <summary>A vector below 16 is in IRR, ISR or TMR, where acceptance never puts one.</summary>
    IllegalVector,

    /// <summary>Fields disagree with each other in a way no sequence of operations produces.</summary>
    Inconsistent,

    /// <summary>A relative time cannot be placed at the restoring device's current time without overflow.</summary>
    TimeOutOfRange,

    /// <summary>Two vCPUs carry the same APIC ID.</summary>
    DuplicateApicId,

    /// <summary>The device cannot restore this kind of state (for example under a virtualization mode).</summary>
    Unsupported,
}

/// <summary>
/// The outcome of a restore: success, or the typed reason and the field (a dotted path such as
/// <c>Vcpus[3].Apic.BaseMsr</c>) that caused it. A failed restore changes nothing.
/// </summary>
/// <param name="Error">What was wrong, <see cref="SavedStateError.None"/> on success.</param>
/// <param name="Field">The offending field, as a path of state property names; null on success.</param>
/// <param name="Message">A one-line explanation for people; null on success.</param>
public readonly record struct SavedStateResult(SavedStateError Error, string? Field, string? Message)
{
    /// <summary>The successful result.</summary>
    public static SavedStateResult Success => default;

    /// <summary>True when the state was (or would be) restored.</summary>
    public bool IsSuccess => Error == SavedStateError.None;

    /// <summary>A failed result for <paramref name="field"/>.</summary>
    public static SavedStateResult Fail(SavedStateError error, string field, string message) => new(error, field, message);

    /// <summary>This result with <paramref name="prefix"/> put before the field path (for nested states).</summary>
    public SavedStateResult WithFieldPrefix(string prefix) =>
        IsSuccess ? this : this with { Field = string.IsNullOrEmpty(Field) ? prefix : prefix + "." + Field };

    /// <inheritdoc/>
    public override string ToString() => IsSuccess ? "ok" : $"{Field}: {Message} ({Error})";
}
