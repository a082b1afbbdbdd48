namespace Vapic.Machine.Acpi;

/// <summary>A structure of a decoded MADT and where it starts.</summary>
/// <param name="Offset">The byte offset of its Type byte in the table.</param>
/// <param name="Entry">The decoded structure.</param>
public readonly record struct MadtDecodedEntry(int Offset, MadtEntry Entry);

/// <summary>
/// What <see cref="Madt.Decode"/> found: the header, every structure it could decode, and every
/// problem. A table is valid when there are no errors.
/// </summary>
public sealed class MadtDecodeResult
{
    internal MadtDecodeResult(MadtHeader? header, int byteCount, IReadOnlyList<MadtDecodedEntry> entries, IReadOnlyList<MadtError> errors)
    {
        Header = header;
        ByteCount = byteCount;
        Entries = entries;
        Errors = errors;
    }

    /// <summary>The header, address and flags; null when fewer than 44 bytes were given.</summary>
    public MadtHeader? Header { get; }

    /// <summary>The number of bytes given to the decoder.</summary>
    public int ByteCount { get; }

    /// <summary>The structures, in table order, up to the first one that could not be delimited.</summary>
    public IReadOnlyList<MadtDecodedEntry> Entries { get; }

    /// <summary>Every problem found, in table order; empty for a valid table.</summary>
    public IReadOnlyList<MadtError> Errors { get; }

    /// <summary>True when no problem was found.</summary>
    public bool IsValid => Errors.Count == 0;

    /// <summary>Returns how many structures of <paramref name="type"/> were decoded.</summary>
    public int Count(MadtEntryType type)
    {
        int count = 0;
        foreach (MadtDecodedEntry entry in Entries)
        {
            if (entry.Entry.Type == type)
            {
                count++;
            }
        }

        return count;
    }
}
