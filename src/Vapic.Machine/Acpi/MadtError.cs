namespace Vapic.Machine.Acpi;

/// <summary>What is wrong with an MADT.</summary>
public enum MadtErrorKind
{
    /// <summary>Fewer than the 44 bytes of the header, local APIC address and flags.</summary>
    TableTooShort,

    /// <summary>The signature is not "APIC".</summary>
    BadSignature,

    /// <summary>The header's Length differs from the number of bytes given.</summary>
    LengthMismatch,

    /// <summary>The bytes do not sum to zero modulo 256.</summary>
    BadChecksum,

    /// <summary>A structure's Type and Length bytes do not fit, or its Length is below 2.</summary>
    TruncatedEntry,

    /// <summary>A structure's Length runs past the end of the table.</summary>
    EntryPastEnd,

    /// <summary>A structure's Length is not the one its type defines.</summary>
    WrongEntryLength,

    /// <summary>A structure type ACPI reserves (0x1C–0x7F).</summary>
    UnknownEntryType,

    /// <summary>Two usable processor structures (types 0 and 9 together) have the same APIC ID.</summary>
    DuplicateApicId,

    /// <summary>Two usable processor structures (types 0 and 9 together) have the same ACPI Processor UID.</summary>
    DuplicateProcessorUid,

    /// <summary>Two I/O APIC structures have the same I/O APIC ID.</summary>
    DuplicateIoApicId,

    /// <summary>A processor structure carries a broadcast APIC ID (0xFF in type 0, 0xFFFFFFFF in type 9).</summary>
    BroadcastApicId,

    /// <summary>
    /// A type-9 structure has an APIC ID below 0xFF while the table also has type-0 processors:
    /// ACPI 6.5 §5.2.12.12 reserves type 9 for IDs 0xFF and up in such a table, and Linux ignores it.
    /// </summary>
    X2ApicIdBelowFF,

    /// <summary>A reserved bit or encoding is used: flag bits, MPS INTI 10b encodings, a LINT above 1, Online Capable with Enabled.</summary>
    ReservedValue,
}

/// <summary>One problem found in an MADT.</summary>
/// <param name="Kind">What is wrong.</param>
/// <param name="Offset">The byte offset in the table the problem is at (0 for the table as a whole).</param>
/// <param name="Message">A one-line description that names the values involved.</param>
public readonly record struct MadtError(MadtErrorKind Kind, int Offset, string Message)
{
    /// <summary>Returns "offset 0x2c: message".</summary>
    public override string ToString() => $"offset 0x{Offset:x}: {Message}";
}
