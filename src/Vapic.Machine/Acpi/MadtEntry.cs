using System.Buffers.Binary;
using System.Globalization;

namespace Vapic.Machine.Acpi;

/// <summary>
/// One interrupt controller structure of an MADT (ACPI 6.5 §5.2.12; lapic-reference.md §13): the
/// decoded form <see cref="Madt.Decode"/> returns and the form <see cref="Madt.Encode"/> writes.
/// Records compare by value, so a table that decodes back to the entries it was built from is a
/// plain equality check.
/// </summary>
public abstract record MadtEntry
{
    private protected MadtEntry()
    {
    }

    /// <summary>The structure's Type byte.</summary>
    public abstract MadtEntryType Type { get; }

    /// <summary>The structure's Length byte: its size in bytes, Type and Length included.</summary>
    public abstract int Length { get; }

    /// <summary>A one-line description for people, e.g. "UID 3, APIC ID 0x0a, enabled".</summary>
    public abstract string Describe();

    /// <summary>Writes the structure, Type and Length included, into the first <see cref="Length"/> bytes of <paramref name="destination"/>.</summary>
    internal void WriteTo(Span<byte> destination)
    {
        Span<byte> entry = destination[..Length];
        entry.Clear();
        entry[0] = (byte)Type;
        entry[1] = (byte)Length;
        WriteFields(entry);
    }

    /// <summary>Writes the fields after Type and Length; <paramref name="entry"/> is zeroed and exactly <see cref="Length"/> bytes long.</summary>
    private protected abstract void WriteFields(Span<byte> entry);

    private protected static string Hex(uint value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    private protected static string Hex2(byte value) => "0x" + value.ToString("x2", CultureInfo.InvariantCulture);

    private protected static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private protected static string DescribeFlags(MadtProcessorFlags flags)
    {
        string text = (flags & (MadtProcessorFlags.Enabled | MadtProcessorFlags.OnlineCapable)) switch
        {
            MadtProcessorFlags.Enabled => "enabled",
            MadtProcessorFlags.OnlineCapable => "online capable",
            MadtProcessorFlags.Enabled | MadtProcessorFlags.OnlineCapable => "enabled, online capable (reserved combination)",
            _ => "disabled",
        };
        uint reserved = (uint)flags & ~3u;
        return reserved == 0 ? text : $"{text}, reserved flag bits {Hex(reserved)}";
    }
}

/// <summary>Type 0, Processor Local APIC: a processor whose APIC ID fits in 8 bits (0x00–0xFE).</summary>
/// <param name="ProcessorUid">ACPI Processor UID (8 bits; 0xFF is the "all processors" UID of NMI structures).</param>
/// <param name="ApicId">The processor's local APIC ID.</param>
/// <param name="Flags">Enabled / Online Capable.</param>
public sealed record MadtLocalApicEntry(byte ProcessorUid, byte ApicId, MadtProcessorFlags Flags) : MadtEntry
{
    /// <summary>The structure's size: 8 bytes.</summary>
    public const int Size = 8;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.LocalApic;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() => $"UID {Number(ProcessorUid)}, APIC ID {Hex2(ApicId)}, {DescribeFlags(Flags)}";

    private protected override void WriteFields(Span<byte> entry)
    {
        entry[2] = ProcessorUid;
        entry[3] = ApicId;
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], (uint)Flags);
    }
}

/// <summary>Type 1, I/O APIC.</summary>
/// <param name="IoApicId">The IOAPIC's ID.</param>
/// <param name="Address">The 32-bit physical address of its register window.</param>
/// <param name="GsiBase">The global system interrupt number of its pin 0.</param>
public sealed record MadtIoApicEntry(byte IoApicId, uint Address, uint GsiBase) : MadtEntry
{
    /// <summary>The structure's size: 12 bytes.</summary>
    public const int Size = 12;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.IoApic;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() => $"ID {Number(IoApicId)}, address {Hex(Address)}, GSI base {Number(GsiBase)}";

    private protected override void WriteFields(Span<byte> entry)
    {
        entry[2] = IoApicId;
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], Address);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], GsiBase);
    }
}

/// <summary>Type 2, Interrupt Source Override: ISA IRQ <paramref name="Source"/> arrives on <paramref name="Gsi"/>.</summary>
/// <param name="Bus">0: ISA.</param>
/// <param name="Source">The bus-relative IRQ (the ISA IRQ number).</param>
/// <param name="Gsi">The global system interrupt it is wired to.</param>
/// <param name="Flags">Polarity and trigger mode.</param>
public sealed record MadtInterruptSourceOverrideEntry(byte Bus, byte Source, uint Gsi, MpsIntiFlags Flags) : MadtEntry
{
    /// <summary>The structure's size: 10 bytes.</summary>
    public const int Size = 10;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.InterruptSourceOverride;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() =>
        $"{(Bus == 0 ? "ISA" : "bus " + Number(Bus))} IRQ {Number(Source)} -> GSI {Number(Gsi)}, {Flags}";

    private protected override void WriteFields(Span<byte> entry)
    {
        entry[2] = Bus;
        entry[3] = Source;
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], Gsi);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[8..], Flags.Value);
    }
}

/// <summary>Type 3, Non-Maskable Interrupt (NMI) Source: global system interrupt <paramref name="Gsi"/> delivers NMI.</summary>
/// <param name="Flags">Polarity and trigger mode.</param>
/// <param name="Gsi">The global system interrupt.</param>
public sealed record MadtNmiSourceEntry(MpsIntiFlags Flags, uint Gsi) : MadtEntry
{
    /// <summary>The structure's size: 8 bytes.</summary>
    public const int Size = 8;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.NmiSource;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() => $"GSI {Number(Gsi)}, {Flags}";

    private protected override void WriteFields(Span<byte> entry)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(entry[2..], Flags.Value);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], Gsi);
    }
}

/// <summary>Type 4, Local APIC NMI: LINT<paramref name="Lint"/> of the named processors is wired to NMI.</summary>
/// <param name="ProcessorUid">An 8-bit ACPI Processor UID, or 0xFF for all processors.</param>
/// <param name="Flags">Polarity and trigger mode.</param>
/// <param name="Lint">The local APIC input: 0 (LINT0) or 1 (LINT1).</param>
public sealed record MadtLocalApicNmiEntry(byte ProcessorUid, MpsIntiFlags Flags, byte Lint) : MadtEntry
{
    /// <summary>The structure's size: 6 bytes.</summary>
    public const int Size = 6;

    /// <summary>The UID that names every processor.</summary>
    public const byte AllProcessors = 0xFF;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.LocalApicNmi;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() =>
        $"UID {(ProcessorUid == AllProcessors ? "0xff (all)" : Number(ProcessorUid))}, LINT{Number(Lint)}, {Flags}";

    private protected override void WriteFields(Span<byte> entry)
    {
        entry[2] = ProcessorUid;
        BinaryPrimitives.WriteUInt16LittleEndian(entry[3..], Flags.Value);
        entry[5] = Lint;
    }
}

/// <summary>Type 5, Local APIC Address Override: the 64-bit local APIC address that replaces the header's 32-bit one.</summary>
/// <param name="Address">The physical address of the local APIC window.</param>
public sealed record MadtLocalApicAddressOverrideEntry(ulong Address) : MadtEntry
{
    /// <summary>The structure's size: 12 bytes.</summary>
    public const int Size = 12;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.LocalApicAddressOverride;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() => "address 0x" + Address.ToString("x", CultureInfo.InvariantCulture);

    private protected override void WriteFields(Span<byte> entry) =>
        BinaryPrimitives.WriteUInt64LittleEndian(entry[4..], Address);
}

/// <summary>Type 9, Processor Local x2APIC: a processor described by its 32-bit APIC ID and UID.</summary>
/// <param name="X2ApicId">The processor's 32-bit local x2APIC ID.</param>
/// <param name="Flags">Enabled / Online Capable.</param>
/// <param name="ProcessorUid">The 32-bit ACPI Processor UID.</param>
public sealed record MadtLocalX2ApicEntry(uint X2ApicId, MadtProcessorFlags Flags, uint ProcessorUid) : MadtEntry
{
    /// <summary>The structure's size: 16 bytes.</summary>
    public const int Size = 16;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.LocalX2Apic;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() => $"UID {Number(ProcessorUid)}, x2APIC ID {Hex(X2ApicId)}, {DescribeFlags(Flags)}";

    private protected override void WriteFields(Span<byte> entry)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], X2ApicId);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], (uint)Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], ProcessorUid);
    }
}

/// <summary>Type 0xA, Local x2APIC NMI: LINT<paramref name="Lint"/> of the named x2APIC processors is wired to NMI.</summary>
/// <param name="Flags">Polarity and trigger mode.</param>
/// <param name="ProcessorUid">A 32-bit ACPI Processor UID, or 0xFFFFFFFF for all processors.</param>
/// <param name="Lint">The local APIC input: 0 (LINT0) or 1 (LINT1).</param>
public sealed record MadtLocalX2ApicNmiEntry(MpsIntiFlags Flags, uint ProcessorUid, byte Lint) : MadtEntry
{
    /// <summary>The structure's size: 12 bytes.</summary>
    public const int Size = 12;

    /// <summary>The UID that names every processor.</summary>
    public const uint AllProcessors = 0xFFFF_FFFF;

    /// <inheritdoc/>
    public override MadtEntryType Type => MadtEntryType.LocalX2ApicNmi;

    /// <inheritdoc/>
    public override int Length => Size;

    /// <inheritdoc/>
    public override string Describe() =>
        $"UID {(ProcessorUid == AllProcessors ? "0xffffffff (all)" : Number(ProcessorUid))}, LINT{Number(Lint)}, {Flags}";

    private protected override void WriteFields(Span<byte> entry)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(entry[2..], Flags.Value);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], ProcessorUid);
        entry[8] = Lint;
    }
}

/// <summary>
/// A structure Vapic does not interpret: another architecture's controller, a wakeup mailbox, an
/// OEM structure, or an x86 structure too short to decode. Its bytes after Type and Length are kept.
/// </summary>
/// <param name="RawType">The Type byte.</param>
/// <param name="Body">The bytes after Type and Length (compared by content).</param>
public sealed record MadtOtherEntry(byte RawType, ReadOnlyMemory<byte> Body) : MadtEntry
{
    /// <inheritdoc/>
    public override MadtEntryType Type => (MadtEntryType)RawType;

    /// <inheritdoc/>
    public override int Length => 2 + Body.Length;

    /// <inheritdoc/>
    public override string Describe() => $"{Number(Length)} bytes, not interpreted";

    /// <inheritdoc/>
    public bool Equals(MadtOtherEntry? other) =>
        other is not null && RawType == other.RawType && Body.Span.SequenceEqual(other.Body.Span);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(RawType);
        hash.AddBytes(Body.Span);
        return hash.ToHashCode();
    }

    private protected override void WriteFields(Span<byte> entry) => Body.Span.CopyTo(entry[2..]);
}
