namespace Vapic.Machine.SavedState;

/// <summary>What is wrong with a saved-state file (see docs/saved-state.md).</summary>
public enum SavedStateFormatError : byte
{
    /// <summary>No error.</summary>
    None,

    /// <summary>The file does not start with the magic "VAPICSS\0".</summary>
    BadMagic,

    /// <summary>The file format version or a section version has a different major or a newer minor than this reader.</summary>
    UnsupportedVersion,

    /// <summary>The input ends inside the header, a section header or a section payload, or before the end section.</summary>
    Truncated,

    /// <summary>A section's length is not the one its type and version define.</summary>
    LengthMismatch,

    /// <summary>A section type this reader does not know.</summary>
    UnknownSectionType,

    /// <summary>A second machine or IOAPIC section, or a second section of one kind for the same vCPU.</summary>
    DuplicateSection,

    /// <summary>A section the machine needs is absent (the machine, the IOAPIC, or a vCPU's vCPU or LAPIC section).</summary>
    MissingSection,

    /// <summary>A section appears before the machine section, which must come first.</summary>
    OutOfOrder,

    /// <summary>Bytes follow the end section.</summary>
    TrailingBytes,

    /// <summary>A field holds a value its encoding does not allow (a reserved bit or byte, a count or index out of range).</summary>
    InvalidValue,
}

/// <summary>The section types of a saved-state file, in the order <see cref="SavedStateSerializer.Serialize"/> writes them.</summary>
public enum SavedStateSectionType : ushort
{
    /// <summary>The machine: virtual time and configuration. Always the first section.</summary>
    Machine = 1,

    /// <summary>One vCPU's CPU state (run state, entry point, host state).</summary>
    Vcpu = 2,

    /// <summary>One vCPU's local APIC.</summary>
    LocalApic = 3,

    /// <summary>The IOAPIC.</summary>
    IoApic = 4,

    /// <summary>The end of the file: no payload, nothing may follow.</summary>
    End = 0xFFFF,
}

/// <summary>
/// The outcome of <see cref="SavedStateSerializer.Deserialize"/>: the machine state, or what was
/// wrong and at which byte offset of the input.
/// </summary>
/// <param name="State">The decoded state; null on error.</param>
/// <param name="Error">What was wrong, <see cref="SavedStateFormatError.None"/> on success.</param>
/// <param name="Offset">The byte offset of the offending field in the input (0 on success).</param>
/// <param name="Message">A one-line explanation for people; null on success.</param>
public readonly record struct SavedStateReadResult(MachineState? State, SavedStateFormatError Error, int Offset, string? Message)
{
    /// <summary>True when <see cref="State"/> holds the decoded machine state.</summary>
    public bool IsSuccess => Error == SavedStateFormatError.None;

    /// <inheritdoc/>
    public override string ToString() => IsSuccess ? "ok" : $"offset {Offset}: {Message} ({Error})";
}
