using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Vapic.Apic;

namespace Vapic.Machine.Acpi;

/// <summary>
/// Builds and decodes the ACPI Multiple APIC Description Table (signature "APIC"), the table that
/// tells the guest OS which processors and interrupt controllers exist (ACPI 6.5 §5.2.12
/// "Multiple APIC Description Table (MADT)"; lapic-reference.md §13).
/// </summary>
/// <remarks>
/// Layout: the 36-byte standard header (Signature, Length, Revision, Checksum, OEMID, OEM Table
/// ID, OEM Revision, Creator ID, Creator Revision), the Local Interrupt Controller Address at
/// offset 36, Flags at offset 40, then interrupt controller structures from offset 44, each
/// starting with Type and Length bytes. All multi-byte fields are little-endian. The table is
/// valid when all its bytes sum to zero modulo 256.
/// </remarks>
public static partial class Madt
{
    /// <summary>The table signature, "APIC".</summary>
    public const string Signature = "APIC";

    /// <summary>
    /// The revision Vapic writes: 6, the MADT revision of ACPI 6.5. Revision 5 (ACPI 6.3) is the
    /// first to define Online Capable, and Linux and Xen read that flag only from revision 5 on.
    /// </summary>
    public const byte Revision = 6;

    /// <summary>The size of the standard ACPI table header.</summary>
    public const int StandardHeaderSize = 36;

    /// <summary>The offset of the first interrupt controller structure (header + address + flags).</summary>
    public const int EntriesOffset = 44;

    /// <summary>The offset of the Checksum byte.</summary>
    public const int ChecksumOffset = 9;

    /// <summary>The default physical address of every local APIC (the reset value of IA32_APIC_BASE).</summary>
    public const uint DefaultLocalApicAddress = 0xFEE0_0000;

    /// <summary>The highest APIC ID a Processor Local APIC (type 0) structure may carry; 0xFF is the xAPIC broadcast ID.</summary>
    public const uint MaxLocalApicId = 0xFE;

    /// <summary>The ISA IRQ of the ACPI System Control Interrupt the override describes.</summary>
    public const byte SciIrq = 9;

    /// <summary>
    /// Builds the MADT of the machine <paramref name="options"/> describes: see
    /// <see cref="CreateEntries"/> for the structures, in order.
    /// </summary>
    /// <param name="options">The machine: vCPU count, APIC IDs, locked x2APIC.</param>
    /// <param name="madtOptions">Header identity and PCAT_COMPAT; null for the defaults.</param>
    /// <returns>The whole table, with Length and Checksum filled in.</returns>
    /// <exception cref="ArgumentException"><paramref name="options"/> is not a valid machine.</exception>
    public static byte[] Build(MachineOptions options, MadtOptions? madtOptions = null) =>
        Encode(CreateEntries(options), madtOptions);

    /// <summary>
    /// Returns the interrupt controller structures of the machine's MADT, in table order:
    /// <list type="number">
    /// <item>One processor structure per vCPU, in vCPU order (so the boot processor, vCPU 0,
    /// comes first, as ACPI asks), enabled, with ACPI Processor UID = vCPU index: a Processor
    /// Local APIC (type 0) when the APIC ID is 0x00–0xFE, otherwise a Processor Local x2APIC
    /// (type 9). Every vCPU gets type 9 when the machine is locked in x2APIC mode
    /// (<see cref="MachineOptions.ForceX2Apic"/>), or when a vCPU with an 8-bit APIC ID has an
    /// index above 0xFE that the 8-bit UID of type 0 cannot hold (Linux ignores type-9 entries
    /// with IDs below 0xFF once any type-0 entry exists, so the two cannot be mixed for such IDs).</item>
    /// <item>The I/O APIC: ID 0, address 0xFEC00000, GSI base 0.</item>
    /// <item>Interrupt source overrides: ISA IRQ 0 (the PIT) → GSI 2 with bus-default flags, and
    /// the SCI, ISA IRQ 9 → GSI 9, level-triggered, active high.</item>
    /// <item>Local APIC NMI: every processor (UID 0xFF), LINT1, edge, active high.</item>
    /// <item>When any type-9 structure exists, Local x2APIC NMI: every processor (UID 0xFFFFFFFF), LINT1, edge, active high.</item>
    /// </list>
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="options"/> is not a valid machine.</exception>
    public static IReadOnlyList<MadtEntry> CreateEntries(MachineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Validate() is string problem)
        {
            ThrowArgument(nameof(options), "The machine options are not valid: " + problem + ".");
        }

        bool allX2Apic = options.ForceX2Apic || HasUidBeyondLocalApic(options);
        var entries = new List<MadtEntry>(options.VcpuCount + 6);
        bool anyX2Apic = false;
        for (int index = 0; index < options.VcpuCount; index++)
        {
            uint apicId = options.ApicIdOf(index);
            if (!allX2Apic && apicId <= MaxLocalApicId)
            {
                entries.Add(new MadtLocalApicEntry((byte)index, (byte)apicId, MadtProcessorFlags.Enabled));
            }
            else
            {
                entries.Add(new MadtLocalX2ApicEntry(apicId, MadtProcessorFlags.Enabled, (uint)index));
                anyX2Apic = true;
            }
        }

        entries.Add(new MadtIoApicEntry(IoApicId: 0, (uint)IoApic.DefaultBase, GsiBase: 0));
        entries.Add(new MadtInterruptSourceOverrideEntry(Bus: 0, Source: 0, Gsi: 2, MpsIntiFlags.BusDefault));
        entries.Add(new MadtInterruptSourceOverrideEntry(Bus: 0, SciIrq, Gsi: SciIrq, MpsIntiFlags.LevelActiveHigh));
        entries.Add(new MadtLocalApicNmiEntry(MadtLocalApicNmiEntry.AllProcessors, MpsIntiFlags.EdgeActiveHigh, Lint: 1));
        if (anyX2Apic)
        {
            entries.Add(new MadtLocalX2ApicNmiEntry(MpsIntiFlags.EdgeActiveHigh, MadtLocalX2ApicNmiEntry.AllProcessors, Lint: 1));
        }

        return entries;
    }

    /// <summary>
    /// Writes an MADT holding <paramref name="entries"/> in the given order, with the local APIC
    /// address 0xFEE00000, and fills in Length and Checksum.
    /// </summary>
    /// <param name="entries">The interrupt controller structures.</param>
    /// <param name="madtOptions">Header identity and PCAT_COMPAT; null for the defaults.</param>
    /// <exception cref="ArgumentException">A header string is not printable ASCII of the field's width, or an entry is longer than 255 bytes.</exception>
    public static byte[] Encode(IReadOnlyList<MadtEntry> entries, MadtOptions? madtOptions = null)
    {
        ArgumentNullException.ThrowIfNull(entries);
        madtOptions ??= new MadtOptions();
        long length = EntriesOffset;
        for (int i = 0; i < entries.Count; i++)
        {
            MadtEntry entry = entries[i] ?? throw new ArgumentException($"Entry {i} is null.", nameof(entries));
            if (entry.Length > byte.MaxValue)
            {
                ThrowArgument(nameof(entries), $"Entry {i} is {entry.Length} bytes long; a structure's Length is one byte.");
            }

            length += entry.Length;
        }

        var table = new byte[length];
        Span<byte> span = table;
        WriteAscii(span[0..4], Signature, nameof(Signature));
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)length);
        span[8] = Revision;
        WriteAscii(span[10..16], madtOptions.OemId, nameof(MadtOptions.OemId));
        WriteAscii(span[16..24], madtOptions.OemTableId, nameof(MadtOptions.OemTableId));
        BinaryPrimitives.WriteUInt32LittleEndian(span[24..], madtOptions.OemRevision);
        WriteAscii(span[28..32], madtOptions.CreatorId, nameof(MadtOptions.CreatorId));
        BinaryPrimitives.WriteUInt32LittleEndian(span[32..], madtOptions.CreatorRevision);
        BinaryPrimitives.WriteUInt32LittleEndian(span[36..], DefaultLocalApicAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(span[40..], (uint)(madtOptions.PcAtCompatible ? MadtFlags.PcAtCompatible : MadtFlags.None));
        int offset = EntriesOffset;
        foreach (MadtEntry entry in entries)
        {
            entry.WriteTo(span[offset..]);
            offset += entry.Length;
        }

        // ACPI "System Description Table Header": the entire table, checksum included, must sum to zero.
        span[ChecksumOffset] = (byte)(0x100 - Sum(span));
        return table;
    }

    /// <summary>Returns the 8-bit sum of <paramref name="bytes"/>: zero for a table whose checksum is right.</summary>
    public static byte Sum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        foreach (byte b in bytes)
        {
            sum += b;
        }

        return (byte)sum;
    }

    /// <summary>Returns the name ACPI (and ACPICA's disassembler) gives structure type <paramref name="type"/>.</summary>
    public static string TypeName(byte type) => (MadtEntryType)type switch
    {
        MadtEntryType.LocalApic => "Processor Local APIC",
        MadtEntryType.IoApic => "I/O APIC",
        MadtEntryType.InterruptSourceOverride => "Interrupt Source Override",
        MadtEntryType.NmiSource => "NMI Source",
        MadtEntryType.LocalApicNmi => "Local APIC NMI",
        MadtEntryType.LocalApicAddressOverride => "Local APIC Address Override",
        MadtEntryType.IoSapic => "I/O SAPIC",
        MadtEntryType.LocalSapic => "Local SAPIC",
        MadtEntryType.PlatformInterruptSources => "Platform Interrupt Sources",
        MadtEntryType.LocalX2Apic => "Processor Local x2APIC",
        MadtEntryType.LocalX2ApicNmi => "Local x2APIC NMI",
        MadtEntryType.GicCpuInterface => "Generic Interrupt Controller",
        MadtEntryType.GicDistributor => "Generic Interrupt Distributor",
        MadtEntryType.GicMsiFrame => "Generic MSI Frame",
        MadtEntryType.GicRedistributor => "Generic Interrupt Redistributor",
        MadtEntryType.GicIts => "Generic Interrupt Translator",
        MadtEntryType.MultiprocessorWakeup => "Multiprocessor Wakeup",
        MadtEntryType.CorePic => "CPU Core Interrupt Controller",
        MadtEntryType.LioPic => "Legacy I/O Interrupt Controller",
        MadtEntryType.HtPic => "HT Interrupt Controller",
        MadtEntryType.EioPic => "Extend I/O Interrupt Controller",
        MadtEntryType.MsiPic => "MSI Interrupt Controller",
        MadtEntryType.BioPic => "Bridge I/O Interrupt Controller",
        MadtEntryType.LpcPic => "LPC Interrupt Controller",
        MadtEntryType.RiscVIntc => "RISC-V Interrupt Controller",
        MadtEntryType.RiscVImsic => "RISC-V Incoming MSI Controller",
        MadtEntryType.RiscVAplic => "RISC-V APLIC",
        MadtEntryType.RiscVPlic => "RISC-V PLIC",
        _ => type >= 0x80 ? "OEM Reserved" : "Reserved",
    };

    // A vCPU whose APIC ID fits type 0 but whose index does not fit its 8-bit UID (0xFF names
    // "all processors" in Local APIC NMI structures, so 0xFE is the last usable UID).
    private static bool HasUidBeyondLocalApic(MachineOptions options)
    {
        for (int index = (int)MaxLocalApicId + 1; index < options.VcpuCount; index++)
        {
            if (options.ApicIdOf(index) <= MaxLocalApicId)
            {
                return true;
            }
        }

        return false;
    }

    private static void WriteAscii(Span<byte> field, string text, string name)
    {
        if (text is null || text.Length > field.Length)
        {
            ThrowArgument(name, $"{name} must be at most {field.Length} ASCII characters.");
        }

        field.Fill((byte)' ');
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c is < ' ' or > '~')
            {
                ThrowArgument(name, $"{name} must be printable ASCII.");
            }

            field[i] = (byte)c;
        }
    }

    [DoesNotReturn]
    private static void ThrowArgument(string name, string message) => throw new ArgumentException(message, name);
}
