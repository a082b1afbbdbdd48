using System.Buffers.Binary;
using Vapic.Machine.Acpi;
using Xunit;
using static Vapic.Machine.Tests.Acpi.MadtTestData;

namespace Vapic.Machine.Tests.Acpi;

/// <summary>
/// The MADT builder: header fields, exact structure bytes (lapic-reference.md §13, §15 #103/#104),
/// and which structures a machine gets (type 0 for IDs 0x00–0xFE, type 9 from 0xFF and on
/// locked-x2APIC machines, NMI structures for each kind).
/// </summary>
public sealed class MadtBuildTests
{
    // §15 #103: CPU uid 3, id 0x0A enabled; CPU uid 4, id 0x100 enabled.
    private static readonly byte[] s_vector103LocalApic = Bytes("00 08 03 0A 01 00 00 00");
    private static readonly byte[] s_vector103LocalX2Apic = Bytes("09 10 00 00 00 01 00 00 01 00 00 00 04 00 00 00");

    [Fact]
    public void Vector103_EncodesBothProcessorStructuresExactly()
    {
        byte[] table = Madt.Encode(
        [
            new MadtLocalApicEntry(3, 0x0A, MadtProcessorFlags.Enabled),
            new MadtLocalX2ApicEntry(0x100, MadtProcessorFlags.Enabled, 4),
        ]);

        Assert.Equal(44 + 8 + 16, table.Length);
        Assert.Equal(s_vector103LocalApic, table[44..52]);
        Assert.Equal(s_vector103LocalX2Apic, table[52..68]);
    }

    [Fact]
    public void Vector103_MachineWithIdsAroundFF_GetsTheSameBytesForVcpus3And4()
    {
        byte[] table = Madt.Build(MachineWith(5, ids: [0, 1, 2, 0x0A, 0x100]));

        Assert.Equal(s_vector103LocalApic, table[(44 + 3 * 8)..(44 + 4 * 8)]);
        Assert.Equal(s_vector103LocalX2Apic, table[(44 + 4 * 8)..(44 + 4 * 8 + 16)]);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, false)]
    [InlineData(255, false)]
    [InlineData(256, false)]
    [InlineData(300, false)]
    [InlineData(4096, false)]
    [InlineData(1, true)]
    [InlineData(300, true)]
    public void Vector104_AllBytesSumToZero(int vcpus, bool locked)
    {
        byte[] table = Madt.Build(MachineWith(vcpus, locked));

        int sum = 0;
        foreach (byte b in table)
        {
            sum += b;
        }

        Assert.Equal(0, sum % 256);
    }

    [Fact]
    public void Header_HasTheStandardFields()
    {
        byte[] table = Madt.Build(MachineWith(4));

        Assert.Equal("APIC"u8.ToArray(), table[0..4]);
        Assert.Equal((uint)table.Length, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4)));
        Assert.Equal(6, table[8]); // ACPI 6.5 MADT revision; Online Capable exists from revision 5.
        Assert.Equal("VAPIC "u8.ToArray(), table[10..16]);
        Assert.Equal("VAPICMDT"u8.ToArray(), table[16..24]);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(24)));
        Assert.Equal("VAPC"u8.ToArray(), table[28..32]);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(32)));
        Assert.Equal(0xFEE0_0000u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(36)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(40))); // PCAT_COMPAT
    }

    [Fact]
    public void Header_OptionsChangeIdentityAndPcAtCompat()
    {
        var options = new MadtOptions
        {
            OemId = "ACME",
            OemTableId = "BOARD1",
            OemRevision = 0x1234,
            CreatorId = "TEST",
            CreatorRevision = 7,
            PcAtCompatible = false,
        };

        byte[] table = Madt.Build(MachineWith(2), options);

        Assert.Equal("ACME  "u8.ToArray(), table[10..16]); // padded with spaces to 6
        Assert.Equal("BOARD1  "u8.ToArray(), table[16..24]);
        Assert.Equal(0x1234u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(24)));
        Assert.Equal("TEST"u8.ToArray(), table[28..32]);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(32)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(40)));
        Assert.Equal(0, Madt.Sum(table));
    }

    [Fact]
    public void Header_RejectsStringsThatDoNotFit()
    {
        Assert.Throws<ArgumentException>(() => Madt.Build(MachineWith(1), new MadtOptions { OemId = "SEVENCH" }));
        Assert.Throws<ArgumentException>(() => Madt.Build(MachineWith(1), new MadtOptions { CreatorId = "\u00e9" }));
    }

    [Fact]
    public void InvalidMachine_IsRejected()
    {
        Assert.Throws<ArgumentException>(() => Madt.Build(MachineWith(0)));
        Assert.Throws<ArgumentException>(() => Madt.Build(MachineWith(2, ids: [5, 5])));
    }

    [Fact]
    public void FourVcpus_ExactTable()
    {
        // The annotated dump in docs/madt.md.
        byte[] expected = Bytes(
            "41 50 49 43 72 00 00 00 06 32 56 41 50 49 43 20" +
            "56 41 50 49 43 4D 44 54 01 00 00 00 56 41 50 43" +
            "01 00 00 00 00 00 E0 FE 01 00 00 00" +
            "00 08 00 00 01 00 00 00" +
            "00 08 01 01 01 00 00 00" +
            "00 08 02 02 01 00 00 00" +
            "00 08 03 03 01 00 00 00" +
            "01 0C 00 00 00 00 C0 FE 00 00 00 00" +
            "02 0A 00 00 02 00 00 00 00 00" +
            "02 0A 00 09 09 00 00 00 0D 00" +
            "04 06 FF 05 00 01");

        Assert.Equal(expected, Madt.Build(MachineWith(4)));
    }

    [Fact]
    public void OneVcpu_HasOneLocalApicAndNoX2ApicNmi()
    {
        MadtDecodeResult result = Madt.Decode(Madt.Build(MachineWith(1)));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        List<MadtEntry> expected = [new MadtLocalApicEntry(0, 0, MadtProcessorFlags.Enabled), .. ExpectedDevices(anyX2Apic: false)];
        Assert.Equal(expected, EntriesOf(result));
        Assert.Equal((uint)(44 + 8 + 12 + 10 + 10 + 6), result.Header!.Length);
    }

    [Fact]
    public void TwoHundredFiftyFiveVcpus_AreAllLocalApic()
    {
        // IDs 0x00–0xFE: the largest machine that needs no x2APIC structure at all.
        MadtDecodeResult result = Madt.Decode(Madt.Build(MachineWith(255)));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(255, result.Count(MadtEntryType.LocalApic));
        Assert.Equal(0, result.Count(MadtEntryType.LocalX2Apic));
        Assert.Equal(0, result.Count(MadtEntryType.LocalX2ApicNmi));
        Assert.Equal([.. ExpectedProcessors(MachineWith(255)), .. ExpectedDevices(anyX2Apic: false)], EntriesOf(result));
        Assert.Equal((uint)(44 + 255 * 8 + 38), result.Header!.Length);
    }

    [Fact]
    public void ThreeHundredVcpus_SplitAtApicIdFF()
    {
        MadtDecodeResult result = Madt.Decode(Madt.Build(MachineWith(300)));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(255, result.Count(MadtEntryType.LocalApic));
        Assert.Equal(45, result.Count(MadtEntryType.LocalX2Apic));
        Assert.Equal(1, result.Count(MadtEntryType.LocalApicNmi));
        Assert.Equal(1, result.Count(MadtEntryType.LocalX2ApicNmi));
        Assert.Equal([.. ExpectedProcessors(MachineWith(300)), .. ExpectedDevices(anyX2Apic: true)], EntriesOf(result));
        Assert.Equal(new MadtLocalX2ApicEntry(0xFF, MadtProcessorFlags.Enabled, 255), result.Entries[255].Entry);
        Assert.Equal((uint)(44 + 255 * 8 + 45 * 16 + 38 + 12), result.Header!.Length);
    }

    [Fact]
    public void LockedMachine_DescribesEveryVcpuWithX2Apic()
    {
        // A locked (x2APIC-only) machine uses the x2APIC interrupt model, so every processor,
        // even APIC ID 0, gets a Processor Local x2APIC structure (ACPI 6.5 §5.2.12.12).
        MachineOptions options = MachineWith(4, locked: true);
        MadtDecodeResult result = Madt.Decode(Madt.Build(options));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(0, result.Count(MadtEntryType.LocalApic));
        Assert.Equal(4, result.Count(MadtEntryType.LocalX2Apic));
        Assert.Equal([.. ExpectedProcessors(options), .. ExpectedDevices(anyX2Apic: true)], EntriesOf(result));
        Assert.Equal(new MadtLocalX2ApicEntry(0, MadtProcessorFlags.Enabled, 0), result.Entries[0].Entry);
    }

    [Fact]
    public void ProcessorsFollowVcpuOrder_SoTheBootProcessorComesFirst()
    {
        MachineOptions options = MachineWith(3, ids: [0x300, 7, 0x20]);
        MadtDecodeResult result = Madt.Decode(Madt.Build(options));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(new MadtLocalX2ApicEntry(0x300, MadtProcessorFlags.Enabled, 0), result.Entries[0].Entry);
        Assert.Equal(new MadtLocalApicEntry(1, 7, MadtProcessorFlags.Enabled), result.Entries[1].Entry);
        Assert.Equal(new MadtLocalApicEntry(2, 0x20, MadtProcessorFlags.Enabled), result.Entries[2].Entry);
    }

    [Fact]
    public void SmallIdAtIndexAboveFE_UsesX2ApicForEveryVcpu()
    {
        // vCPU 299 has APIC ID 0: type 0 cannot carry UID 299, and a type-9 entry with ID 0 beside
        // type-0 entries is ignored by Linux, so the builder describes every vCPU with type 9.
        var ids = new uint[300];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = (uint)(299 - i);
        }

        MadtDecodeResult result = Madt.Decode(Madt.Build(MachineWith(300, ids: ids)));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(0, result.Count(MadtEntryType.LocalApic));
        Assert.Equal(300, result.Count(MadtEntryType.LocalX2Apic));
        Assert.Equal(new MadtLocalX2ApicEntry(0, MadtProcessorFlags.Enabled, 299), result.Entries[299].Entry);
    }

    [Fact]
    public void DeviceStructures_HaveTheExactBytes()
    {
        byte[] table = Madt.Build(MachineWith(1, ids: [0x1000]));
        int offset = 44 + 16;

        Assert.Equal(Bytes("01 0C 00 00 00 00 C0 FE 00 00 00 00"), table[offset..(offset += 12)]); // IOAPIC 0 at 0xFEC00000, GSI 0
        Assert.Equal(Bytes("02 0A 00 00 02 00 00 00 00 00"), table[offset..(offset += 10)]); // ISA IRQ0 -> GSI2, bus default
        Assert.Equal(Bytes("02 0A 00 09 09 00 00 00 0D 00"), table[offset..(offset += 10)]); // SCI: IRQ9 -> GSI9, level, active high
        Assert.Equal(Bytes("04 06 FF 05 00 01"), table[offset..(offset += 6)]); // all processors, LINT1, edge, active high
        Assert.Equal(Bytes("0A 0C 05 00 FF FF FF FF 01 00 00 00"), table[offset..(offset += 12)]); // x2APIC: UID all, LINT1
        Assert.Equal(table.Length, offset);
    }

    [Fact]
    public void IdFE_IsLocalApic_IdFF_IsX2Apic()
    {
        MadtDecodeResult result = Madt.Decode(Madt.Build(MachineWith(2, ids: [0xFE, 0xFF])));

        Assert.Equal(new MadtLocalApicEntry(0, 0xFE, MadtProcessorFlags.Enabled), result.Entries[0].Entry);
        Assert.Equal(new MadtLocalX2ApicEntry(0xFF, MadtProcessorFlags.Enabled, 1), result.Entries[1].Entry);
    }

    [Fact]
    public void EncodeThenDecode_GivesTheSameEntriesBack()
    {
        List<MadtEntry> entries =
        [
            new MadtLocalApicEntry(0, 0, MadtProcessorFlags.Enabled),
            new MadtLocalApicEntry(1, 1, MadtProcessorFlags.OnlineCapable),
            new MadtIoApicEntry(2, 0xFEC0_1000, 24),
            new MadtNmiSourceEntry(MpsIntiFlags.Create(MpsPolarity.ActiveLow, MpsTriggerMode.Level), 7),
            new MadtLocalApicAddressOverrideEntry(0x1_0000_0000),
            new MadtLocalX2ApicEntry(0x1000, MadtProcessorFlags.None, 9),
            new MadtOtherEntry(0x10, new byte[14]),
            new MadtOtherEntry(0x80, new byte[] { 1, 2, 3 }),
        ];

        byte[] table = Madt.Encode(entries);
        MadtDecodeResult result = Madt.Decode(table);

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(entries, EntriesOf(result));
        Assert.Equal(table, Madt.Encode(EntriesOf(result)));
    }
}
