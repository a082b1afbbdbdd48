using System.Buffers.Binary;
using System.Globalization;

namespace Vapic.Machine.Acpi;

public static partial class Madt
{
    // Structures 0x1C–0x7F are reserved (ACPI 6.6 ends at 0x1B, the RISC-V PLIC); 0x80–0xFF are the OEM's.
    private const byte FirstReservedType = 0x1C;
    private const byte FirstOemType = 0x80;

    /// <summary>
    /// Decodes and checks an MADT. Never throws: every problem, from a short or foreign file to a
    /// duplicate APIC ID, comes back as a typed <see cref="MadtError"/>, and everything that could
    /// be decoded comes back too.
    /// </summary>
    /// <param name="table">The raw table bytes, as firmware places them in memory (what <c>iasl -d</c> reads).</param>
    /// <remarks>
    /// Checks: the signature, Length against the bytes given, the checksum, reserved flag bits,
    /// that each structure fits and has the length its type defines, reserved structure types,
    /// reserved encodings, broadcast APIC IDs, duplicate APIC IDs, processor UIDs and I/O APIC IDs,
    /// and type-9 IDs below 0xFF beside type-0 entries. Duplicates are looked for among usable
    /// processors only (Enabled or Online Capable): ACPI lets firmware list unusable placeholders.
    /// </remarks>
    public static MadtDecodeResult Decode(ReadOnlySpan<byte> table)
    {
        var errors = new List<MadtError>();
        var entries = new List<MadtDecodedEntry>();
        if (table.Length < EntriesOffset)
        {
            errors.Add(new MadtError(
                MadtErrorKind.TableTooShort,
                0,
                $"{Count(table.Length, "byte")}: an MADT has at least {EntriesOffset} (header, local APIC address, flags)"));
            if (table.Length >= 4 && !table[..4].SequenceEqual("APIC"u8))
            {
                errors.Add(new MadtError(MadtErrorKind.BadSignature, 0, $"signature \"{Text(table[..4])}\" is not \"APIC\""));
            }

            return new MadtDecodeResult(null, table.Length, entries, errors);
        }

        MadtHeader header = ReadHeader(table);
        if (!table[..4].SequenceEqual("APIC"u8))
        {
            errors.Add(new MadtError(MadtErrorKind.BadSignature, 0, $"signature \"{header.Signature}\" is not \"APIC\""));
        }

        // Decode what both the header and the bytes agree exists.
        int end = table.Length;
        if (header.Length != (uint)table.Length)
        {
            errors.Add(new MadtError(
                MadtErrorKind.LengthMismatch,
                4,
                $"header Length is {header.Length} but the table has {Count(table.Length, "byte")}"));
            if (header.Length >= EntriesOffset && header.Length < (uint)table.Length)
            {
                end = (int)header.Length;
            }
        }

        byte sum = Sum(table[..end]);
        if (sum != 0)
        {
            byte expected = (byte)(header.Checksum - sum);
            errors.Add(new MadtError(
                MadtErrorKind.BadChecksum,
                ChecksumOffset,
                $"checksum 0x{header.Checksum:x2} makes the bytes sum to 0x{sum:x2}, not 0 (expected 0x{expected:x2})"));
        }

        uint reservedFlags = (uint)header.Flags & ~(uint)MadtFlags.PcAtCompatible;
        if (reservedFlags != 0)
        {
            errors.Add(new MadtError(MadtErrorKind.ReservedValue, 40, $"reserved MADT flag bits 0x{reservedFlags:x} are set"));
        }

        int offset = EntriesOffset;
        while (offset < end)
        {
            if (end - offset < 2)
            {
                errors.Add(new MadtError(MadtErrorKind.TruncatedEntry, offset, $"{Count(end - offset, "byte")} left at the end, too few for a structure's Type and Length"));
                break;
            }

            byte type = table[offset];
            int length = table[offset + 1];
            if (length < 2)
            {
                errors.Add(new MadtError(MadtErrorKind.TruncatedEntry, offset, $"{TypeLabel(type)} has Length {length}; a structure is at least 2 bytes"));
                break;
            }

            if (length > end - offset)
            {
                errors.Add(new MadtError(
                    MadtErrorKind.EntryPastEnd,
                    offset,
                    $"{TypeLabel(type)} has Length {length} but only {Count(end - offset, "byte")} of the table remain"));
                break;
            }

            entries.Add(new MadtDecodedEntry(offset, DecodeEntry(table.Slice(offset, length), offset, errors)));
            offset += length;
        }

        CheckProcessors(entries, errors);
        return new MadtDecodeResult(header, table.Length, entries, errors);
    }

    private static MadtHeader ReadHeader(ReadOnlySpan<byte> table) => new(
        Signature: Text(table[0..4]),
        Length: BinaryPrimitives.ReadUInt32LittleEndian(table[4..]),
        Revision: table[8],
        Checksum: table[ChecksumOffset],
        OemId: Text(table[10..16]),
        OemTableId: Text(table[16..24]),
        OemRevision: BinaryPrimitives.ReadUInt32LittleEndian(table[24..]),
        CreatorId: Text(table[28..32]),
        CreatorRevision: BinaryPrimitives.ReadUInt32LittleEndian(table[32..]),
        LocalApicAddress: BinaryPrimitives.ReadUInt32LittleEndian(table[36..]),
        Flags: (MadtFlags)BinaryPrimitives.ReadUInt32LittleEndian(table[40..]));

    // Decodes one delimited structure (Type, Length and body: entry.Length == Length >= 2).
    private static MadtEntry DecodeEntry(ReadOnlySpan<byte> entry, int offset, List<MadtError> errors)
    {
        byte type = entry[0];
        int expected = (MadtEntryType)type switch
        {
            MadtEntryType.LocalApic => MadtLocalApicEntry.Size,
            MadtEntryType.IoApic => MadtIoApicEntry.Size,
            MadtEntryType.InterruptSourceOverride => MadtInterruptSourceOverrideEntry.Size,
            MadtEntryType.NmiSource => MadtNmiSourceEntry.Size,
            MadtEntryType.LocalApicNmi => MadtLocalApicNmiEntry.Size,
            MadtEntryType.LocalApicAddressOverride => MadtLocalApicAddressOverrideEntry.Size,
            MadtEntryType.LocalX2Apic => MadtLocalX2ApicEntry.Size,
            MadtEntryType.LocalX2ApicNmi => MadtLocalX2ApicNmiEntry.Size,
            _ => 0,
        };

        if (expected == 0)
        {
            if (type is >= FirstReservedType and < FirstOemType)
            {
                errors.Add(new MadtError(MadtErrorKind.UnknownEntryType, offset, $"structure type 0x{type:x2} is reserved by ACPI"));
            }

            return Other(entry);
        }

        if (entry.Length != expected)
        {
            errors.Add(new MadtError(
                MadtErrorKind.WrongEntryLength,
                offset,
                $"{TypeLabel(type)} has Length {entry.Length}; its type defines {expected}"));
            if (entry.Length < expected)
            {
                return Other(entry);
            }
        }

        switch ((MadtEntryType)type)
        {
            case MadtEntryType.LocalApic:
                {
                    var local = new MadtLocalApicEntry(entry[2], entry[3], (MadtProcessorFlags)BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]));
                    CheckProcessorFlags(local.Flags, offset, errors);
                    if (local.ApicId == 0xFF)
                    {
                        errors.Add(new MadtError(MadtErrorKind.BroadcastApicId, offset, $"Processor Local APIC (UID {local.ProcessorUid}) has APIC ID 0xff, the xAPIC broadcast ID; IDs from 0xff use type 9"));
                    }

                    return local;
                }

            case MadtEntryType.IoApic:
                return new MadtIoApicEntry(entry[2], BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]), BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]));

            case MadtEntryType.InterruptSourceOverride:
                {
                    var source = new MadtInterruptSourceOverrideEntry(entry[2], entry[3], BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]), new MpsIntiFlags(BinaryPrimitives.ReadUInt16LittleEndian(entry[8..])));
                    CheckIntiFlags(source.Flags, offset, errors);
                    return source;
                }

            case MadtEntryType.NmiSource:
                {
                    var nmi = new MadtNmiSourceEntry(new MpsIntiFlags(BinaryPrimitives.ReadUInt16LittleEndian(entry[2..])), BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]));
                    CheckIntiFlags(nmi.Flags, offset, errors);
                    return nmi;
                }

            case MadtEntryType.LocalApicNmi:
                {
                    var nmi = new MadtLocalApicNmiEntry(entry[2], new MpsIntiFlags(BinaryPrimitives.ReadUInt16LittleEndian(entry[3..])), entry[5]);
                    CheckIntiFlags(nmi.Flags, offset, errors);
                    CheckLint(nmi.Lint, offset, errors);
                    return nmi;
                }

            case MadtEntryType.LocalApicAddressOverride:
                return new MadtLocalApicAddressOverrideEntry(BinaryPrimitives.ReadUInt64LittleEndian(entry[4..]));

            case MadtEntryType.LocalX2Apic:
                {
                    var local = new MadtLocalX2ApicEntry(
                        BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]),
                        (MadtProcessorFlags)BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]),
                        BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]));
                    CheckProcessorFlags(local.Flags, offset, errors);
                    if (local.X2ApicId == 0xFFFF_FFFF)
                    {
                        errors.Add(new MadtError(MadtErrorKind.BroadcastApicId, offset, $"Processor Local x2APIC (UID {local.ProcessorUid}) has x2APIC ID 0xffffffff, the x2APIC broadcast ID"));
                    }

                    return local;
                }

            default:
                {
                    var nmi = new MadtLocalX2ApicNmiEntry(new MpsIntiFlags(BinaryPrimitives.ReadUInt16LittleEndian(entry[2..])), BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]), entry[8]);
                    CheckIntiFlags(nmi.Flags, offset, errors);
                    CheckLint(nmi.Lint, offset, errors);
                    return nmi;
                }
        }
    }

    private static MadtOtherEntry Other(ReadOnlySpan<byte> entry) => new(entry[0], entry[2..].ToArray());

    private static void CheckProcessorFlags(MadtProcessorFlags flags, int offset, List<MadtError> errors)
    {
        uint reserved = (uint)flags & ~3u;
        if (reserved != 0)
        {
            errors.Add(new MadtError(MadtErrorKind.ReservedValue, offset, $"reserved processor flag bits 0x{reserved:x} are set"));
        }

        // ACPI "Local APIC Flags": Online Capable is reserved (zero) when Enabled is set.
        if ((flags & (MadtProcessorFlags.Enabled | MadtProcessorFlags.OnlineCapable)) == (MadtProcessorFlags.Enabled | MadtProcessorFlags.OnlineCapable))
        {
            errors.Add(new MadtError(MadtErrorKind.ReservedValue, offset, "Online Capable is set together with Enabled (it must be zero then)"));
        }
    }

    private static void CheckIntiFlags(MpsIntiFlags flags, int offset, List<MadtError> errors)
    {
        if (flags.HasReservedValue)
        {
            errors.Add(new MadtError(MadtErrorKind.ReservedValue, offset, $"MPS INTI flags 0x{flags.Value:x4} use a reserved value ({flags})"));
        }
    }

    private static void CheckLint(byte lint, int offset, List<MadtError> errors)
    {
        if (lint > 1)
        {
            errors.Add(new MadtError(MadtErrorKind.ReservedValue, offset, $"LINT# is {lint}; a local APIC has LINT0 and LINT1 only"));
        }
    }

    private static void CheckProcessors(List<MadtDecodedEntry> entries, List<MadtError> errors)
    {
        var apicIds = new Dictionary<uint, int>();
        var uids = new Dictionary<uint, int>();
        var ioApicIds = new Dictionary<byte, int>();
        bool anyLocalApic = false;
        foreach (MadtDecodedEntry decoded in entries)
        {
            if (decoded.Entry is MadtLocalApicEntry { Flags: var flags } && IsUsable(flags))
            {
                anyLocalApic = true;
            }
        }

        foreach (MadtDecodedEntry decoded in entries)
        {
            switch (decoded.Entry)
            {
                case MadtLocalApicEntry local when IsUsable(local.Flags):
                    CheckUnique(apicIds, local.ApicId, decoded.Offset, MadtErrorKind.DuplicateApicId, "APIC ID 0x" + local.ApicId.ToString("x", CultureInfo.InvariantCulture), errors);
                    CheckUnique(uids, local.ProcessorUid, decoded.Offset, MadtErrorKind.DuplicateProcessorUid, "ACPI Processor UID " + local.ProcessorUid.ToString(CultureInfo.InvariantCulture), errors);
                    break;
                case MadtLocalX2ApicEntry local when IsUsable(local.Flags):
                    CheckUnique(apicIds, local.X2ApicId, decoded.Offset, MadtErrorKind.DuplicateApicId, "APIC ID 0x" + local.X2ApicId.ToString("x", CultureInfo.InvariantCulture), errors);
                    CheckUnique(uids, local.ProcessorUid, decoded.Offset, MadtErrorKind.DuplicateProcessorUid, "ACPI Processor UID " + local.ProcessorUid.ToString(CultureInfo.InvariantCulture), errors);
                    if (anyLocalApic && local.X2ApicId < 0xFF)
                    {
                        errors.Add(new MadtError(
                            MadtErrorKind.X2ApicIdBelowFF,
                            decoded.Offset,
                            $"Processor Local x2APIC with APIC ID 0x{local.X2ApicId:x} below 0xff in a table with Processor Local APIC entries (Linux ignores it)"));
                    }

                    break;
                case MadtIoApicEntry ioApic:
                    CheckUnique(ioApicIds, ioApic.IoApicId, decoded.Offset, MadtErrorKind.DuplicateIoApicId, "I/O APIC ID " + ioApic.IoApicId.ToString(CultureInfo.InvariantCulture), errors);
                    break;
            }
        }
    }

    private static bool IsUsable(MadtProcessorFlags flags) =>
        (flags & (MadtProcessorFlags.Enabled | MadtProcessorFlags.OnlineCapable)) != 0;

    private static void CheckUnique<TKey>(Dictionary<TKey, int> seen, TKey key, int offset, MadtErrorKind kind, string what, List<MadtError> errors)
        where TKey : notnull
    {
        if (seen.TryGetValue(key, out int first))
        {
            errors.Add(new MadtError(kind, offset, $"{what} is also used by the structure at offset 0x{first:x}"));
        }
        else
        {
            seen.Add(key, offset);
        }
    }

    private static string TypeLabel(byte type) => $"structure type 0x{type:x2} ({TypeName(type)})";

    private static string Count(int count, string noun) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + noun + (count == 1 ? "" : "s");

    // Header text fields are bytes, not necessarily ASCII: show anything unprintable as '.'.
    private static string Text(ReadOnlySpan<byte> bytes)
    {
        Span<char> chars = stackalloc char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            chars[i] = b is >= 0x20 and <= 0x7E ? (char)b : '.';
        }

        return new string(chars);
    }
}
