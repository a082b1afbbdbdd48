using System.Buffers.Binary;
using System.Text.Json;
using CsCheck;
using Vapic.Machine.Acpi;
using Xunit;
using static Vapic.Machine.Tests.Acpi.MadtTestData;

namespace Vapic.Machine.Tests.Acpi;

/// <summary>
/// The MADT decoder and validator: each kind of error on a table broken in exactly one way, and
/// the guarantee that no input at all makes it throw (ACPI 6.5 §5.2.12; lapic-reference.md §13).
/// </summary>
public sealed class MadtDecodeTests
{
    private static byte[] FourVcpus() => Madt.Build(MachineWith(4));

    private static MadtErrorKind SingleError(byte[] table)
    {
        MadtDecodeResult result = Madt.Decode(table);
        MadtError error = Assert.Single(result.Errors);
        return error.Kind;
    }

    // A valid table around the given structure bytes.
    private static byte[] TableWith(params byte[][] structures)
    {
        byte[] header = Madt.Encode([]);
        byte[] table = [.. header, .. structures.SelectMany(s => s)];
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(4), (uint)table.Length);
        return FixChecksum(table);
    }

    [Fact]
    public void ValidTable_DecodesHeader()
    {
        MadtDecodeResult result = Madt.Decode(FourVcpus());

        Assert.True(result.IsValid);
        Assert.Equal(
            new MadtHeader("APIC", 114, 6, 0x32, "VAPIC ", "VAPICMDT", 1, "VAPC", 1, 0xFEE0_0000, MadtFlags.PcAtCompatible),
            result.Header);
        Assert.Equal(44, result.Entries[0].Offset);
        Assert.Equal(0x6C, result.Entries[^1].Offset);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(43)]
    public void ShortInput_IsTableTooShort(int length)
    {
        MadtDecodeResult result = Madt.Decode(FourVcpus()[..length]);

        Assert.Null(result.Header);
        Assert.Equal(MadtErrorKind.TableTooShort, Assert.Single(result.Errors).Kind);
    }

    [Fact]
    public void OtherSignature_IsBadSignature()
    {
        byte[] table = FourVcpus();
        "FACP"u8.CopyTo(table);

        Assert.Equal(MadtErrorKind.BadSignature, SingleError(FixChecksum(table)));
    }

    [Fact]
    public void ExtraBytes_AreLengthMismatch_AndNotDecoded()
    {
        byte[] table = [.. FourVcpus(), 0, 0];

        MadtDecodeResult result = Madt.Decode(table);

        Assert.Equal(MadtErrorKind.LengthMismatch, Assert.Single(result.Errors).Kind);
        Assert.Equal(8, result.Entries.Count);
    }

    [Fact]
    public void MissingBytes_AreLengthMismatch()
    {
        byte[] table = FourVcpus()[..^6];

        MadtDecodeResult result = Madt.Decode(table);

        Assert.Contains(result.Errors, e => e.Kind == MadtErrorKind.LengthMismatch);
        Assert.Contains(result.Errors, e => e.Kind == MadtErrorKind.BadChecksum);
        Assert.Equal(7, result.Entries.Count);
    }

    [Fact]
    public void AnyFlippedBit_BreaksTheChecksum()
    {
        byte[] valid = FourVcpus();
        for (int bit = 0; bit < valid.Length * 8; bit++)
        {
            byte[] table = (byte[])valid.Clone();
            table[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Contains(Madt.Decode(table).Errors, e => e.Kind == MadtErrorKind.BadChecksum);
        }
    }

    [Fact]
    public void BadChecksum_NamesTheExpectedValue()
    {
        byte[] table = FourVcpus();
        table[9]++;

        MadtError error = Assert.Single(Madt.Decode(table).Errors);

        Assert.Equal(MadtErrorKind.BadChecksum, error.Kind);
        Assert.Equal(9, error.Offset);
        Assert.Contains("expected 0x32", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OneByteLeftOver_IsTruncatedEntry()
    {
        Assert.Equal(MadtErrorKind.TruncatedEntry, SingleError(TableWith(Bytes("00"))));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void LengthBelowTwo_IsTruncatedEntry(byte length)
    {
        // A zero Length would make a naive parser loop forever.
        Assert.Equal(MadtErrorKind.TruncatedEntry, SingleError(TableWith([0x00, length, 0, 0, 1, 0, 0, 0])));
    }

    [Fact]
    public void LengthPastTheEnd_IsEntryPastEnd()
    {
        MadtDecodeResult result = Madt.Decode(TableWith(Bytes("00 08 00 00 01 00 00 00"), Bytes("09 10 00 00 00 01 00 00")));

        MadtError error = Assert.Single(result.Errors);
        Assert.Equal(MadtErrorKind.EntryPastEnd, error.Kind);
        Assert.Equal(52, error.Offset);
        Assert.Single(result.Entries);
    }

    [Theory]
    [InlineData("00 07 00 00 01 00 00")] // Local APIC is 8
    [InlineData("00 09 00 00 01 00 00 00 00")]
    [InlineData("01 0B 00 00 00 00 C0 FE 00 00 00")] // I/O APIC is 12
    [InlineData("02 0C 00 00 02 00 00 00 00 00 00 00")] // ISO is 10
    [InlineData("03 06 05 00 00 00")] // NMI source is 8
    [InlineData("04 07 FF 05 00 01 00")] // Local APIC NMI is 6
    [InlineData("05 08 00 00 00 00 00 00")] // address override is 12
    [InlineData("09 0C 00 00 00 01 00 00 01 00 00 00")] // x2APIC is 16
    [InlineData("0A 10 05 00 FF FF FF FF 01 00 00 00 00 00 00 00")] // x2APIC NMI is 12
    public void LengthWrongForType_IsWrongEntryLength(string structure)
    {
        MadtDecodeResult result = Madt.Decode(TableWith(Bytes(structure)));

        Assert.Equal(MadtErrorKind.WrongEntryLength, Assert.Single(result.Errors).Kind);
        Assert.Single(result.Entries);
    }

    [Fact]
    public void OverLongLocalApic_StillDecodesItsFields()
    {
        MadtDecodeResult result = Madt.Decode(TableWith(Bytes("00 0A 05 07 01 00 00 00 00 00")));

        Assert.Equal(new MadtLocalApicEntry(5, 7, MadtProcessorFlags.Enabled), result.Entries[0].Entry);
    }

    [Theory]
    [InlineData(0x1C)]
    [InlineData(0x7F)]
    public void ReservedType_IsUnknownEntryType(byte type)
    {
        Assert.Equal(MadtErrorKind.UnknownEntryType, SingleError(TableWith([type, 4, 0, 0])));
    }

    [Theory]
    [InlineData(0x10)] // Multiprocessor Wakeup
    [InlineData(0x0B)] // GICC
    [InlineData(0x80)] // OEM
    [InlineData(0xFF)]
    public void DefinedOrOemType_IsCarriedThrough(byte type)
    {
        MadtDecodeResult result = Madt.Decode(TableWith([type, 5, 1, 2, 3]));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
        Assert.Equal(new MadtOtherEntry(type, new byte[] { 1, 2, 3 }), result.Entries[0].Entry);
    }

    [Fact]
    public void SameApicIdInTypes0And9_IsDuplicateApicId()
    {
        MadtDecodeResult result = Madt.Decode(TableWith(
            Bytes("00 08 00 05 01 00 00 00"),
            Bytes("09 10 00 00 05 00 00 00 01 00 00 00 01 00 00 00")));

        Assert.Contains(result.Errors, e => e.Kind == MadtErrorKind.DuplicateApicId && e.Offset == 52);
    }

    [Fact]
    public void SameX2ApicIdTwice_IsDuplicateApicId()
    {
        Assert.Equal(MadtErrorKind.DuplicateApicId, SingleError(TableWith(
            Bytes("09 10 00 00 00 01 00 00 01 00 00 00 01 00 00 00"),
            Bytes("09 10 00 00 00 01 00 00 01 00 00 00 02 00 00 00"))));
    }

    [Fact]
    public void SameUidInTypes0And9_IsDuplicateProcessorUid()
    {
        Assert.Equal(MadtErrorKind.DuplicateProcessorUid, SingleError(TableWith(
            Bytes("00 08 03 00 01 00 00 00"),
            Bytes("09 10 00 00 00 01 00 00 01 00 00 00 03 00 00 00"))));
    }

    [Fact]
    public void DuplicatesAmongUnusableEntries_AreAllowed()
    {
        // Firmware may list placeholders (neither Enabled nor Online Capable) with repeated IDs.
        MadtDecodeResult result = Madt.Decode(TableWith(
            Bytes("00 08 00 00 01 00 00 00"),
            Bytes("00 08 01 01 00 00 00 00"),
            Bytes("00 08 01 01 00 00 00 00")));

        Assert.True(result.IsValid, string.Join("; ", result.Errors));
    }

    [Fact]
    public void TwoIoApicsWithOneId_IsDuplicateIoApicId()
    {
        Assert.Equal(MadtErrorKind.DuplicateIoApicId, SingleError(TableWith(
            Bytes("01 0C 00 00 00 00 C0 FE 00 00 00 00"),
            Bytes("01 0C 00 00 00 10 C0 FE 18 00 00 00"))));
    }

    [Fact]
    public void LocalApicWithIdFF_IsBroadcastApicId()
    {
        Assert.Equal(MadtErrorKind.BroadcastApicId, SingleError(TableWith(Bytes("00 08 00 FF 01 00 00 00"))));
    }

    [Fact]
    public void X2ApicWithIdFFFFFFFF_IsBroadcastApicId()
    {
        Assert.Equal(MadtErrorKind.BroadcastApicId, SingleError(TableWith(Bytes("09 10 00 00 FF FF FF FF 01 00 00 00 00 00 00 00"))));
    }

    [Fact]
    public void LowX2ApicIdBesideLocalApics_IsFlagged()
    {
        // Linux (acpi_parse_x2apic) ignores type-9 entries with IDs below 0xFF once the table has
        // type-0 processors: the vCPU would silently vanish.
        Assert.Equal(MadtErrorKind.X2ApicIdBelowFF, SingleError(TableWith(
            Bytes("00 08 00 00 01 00 00 00"),
            Bytes("09 10 00 00 01 00 00 00 01 00 00 00 01 00 00 00"))));
    }

    [Theory]
    [InlineData("00 08 00 00 05 00 00 00")] // processor flag bit 2
    [InlineData("00 08 00 00 03 00 00 00")] // Online Capable with Enabled
    [InlineData("02 0A 00 00 02 00 00 00 02 00")] // polarity 10b
    [InlineData("02 0A 00 00 02 00 00 00 08 00")] // trigger 10b
    [InlineData("03 08 15 00 00 00 00 00")] // INTI bit 4
    [InlineData("04 06 FF 05 00 02")] // LINT2
    [InlineData("0A 0C 05 00 FF FF FF FF 03 00 00 00")] // LINT3
    public void ReservedEncoding_IsReservedValue(string structure)
    {
        Assert.Equal(MadtErrorKind.ReservedValue, SingleError(TableWith(Bytes(structure))));
    }

    [Fact]
    public void ReservedMadtFlag_IsReservedValue()
    {
        byte[] table = FourVcpus();
        table[40] = 3;

        Assert.Equal(MadtErrorKind.ReservedValue, SingleError(FixChecksum(table)));
    }

    [Fact]
    public void HeaderTextWithControlBytes_IsShownWithDots()
    {
        byte[] table = FourVcpus();
        table[10] = 0x00;
        table[11] = 0xC3;

        MadtDecodeResult result = Madt.Decode(FixChecksum(table));

        Assert.Equal("..PIC ", result.Header!.OemId);
    }

    [Fact]
    public void Json_CarriesHeaderEntriesAndErrors()
    {
        byte[] table = Madt.Build(MachineWith(2, ids: [0, 0x100]));
        table[9]++;

        using JsonDocument json = JsonDocument.Parse(MadtJson.Serialize(Madt.Decode(table)));
        JsonElement root = json.RootElement;

        Assert.False(root.GetProperty("valid").GetBoolean());
        Assert.Equal("APIC", root.GetProperty("header").GetProperty("signature").GetString());
        Assert.Equal(0xFEE0_0000u, root.GetProperty("header").GetProperty("localApicAddress").GetUInt32());
        JsonElement entries = root.GetProperty("entries");
        Assert.Equal(7, entries.GetArrayLength());
        Assert.Equal(9, entries[1].GetProperty("type").GetInt32());
        Assert.Equal(0x100u, entries[1].GetProperty("apicId").GetUInt32());
        Assert.Equal(1u, entries[1].GetProperty("processorUid").GetUInt32());
        Assert.Equal("level", entries[4].GetProperty("triggerMode").GetString());
        Assert.Equal("BadChecksum", root.GetProperty("errors")[0].GetProperty("kind").GetString());
    }

    // The oracle of every fuzz case: decoding returns (no exception), and what it returns can be
    // described, serialised, and (for a valid table) encoded back to the same bytes.
    private static void DecodeEverything(byte[] bytes)
    {
        MadtDecodeResult result = Madt.Decode(bytes);
        foreach (MadtDecodedEntry entry in result.Entries)
        {
            Assert.False(string.IsNullOrEmpty(entry.Entry.Describe()));
            Assert.InRange(entry.Offset, Madt.EntriesOffset, bytes.Length - 2);
        }

        _ = MadtJson.Serialize(result);
        if (result.IsValid)
        {
            Assert.Equal(0, Madt.Sum(bytes));
            Assert.Equal((uint)bytes.Length, result.Header!.Length);
        }
    }

    [Fact]
    public void RandomBytes_NeverThrow()
    {
        Gen.Byte.Array[0, 400].Sample(DecodeEverything, iter: 3000);
    }

    [Fact]
    public void RandomBytesBehindAValidHeader_NeverThrow()
    {
        // Random structures behind a correct header, length and checksum reach the deeper checks.
        Gen.Byte.Array[0, 300].Sample(body =>
        {
            byte[] table = TableWith(body);
            DecodeEverything(table);
        }, iter: 3000);
    }

    [Fact]
    public void RandomStructures_NeverThrow()
    {
        Gen<byte[]> structure = Gen.Select(Gen.OneOf(Gen.Byte[0, 0x0B], Gen.Byte), Gen.Byte[0, 20]).SelectMany((type, length) =>
            Gen.Byte.Array[Math.Max(0, length - 2)].Select(body => (byte[])[type, length, .. body]));
        structure.Array[0, 12].Sample(structures => DecodeEverything(TableWith(structures)), iter: 3000);
    }

    [Fact]
    public void BitFlipsOfValidTables_NeverThrow()
    {
        Gen.Select(Gen.Int[1, 300], Gen.Bool, Gen.Int.Array[1, 8], Gen.Bool).Sample((vcpus, locked, flips, fixChecksum) =>
        {
            byte[] table = Madt.Build(MachineWith(vcpus, locked));
            foreach (int flip in flips)
            {
                int bit = (int)((uint)flip % (uint)(table.Length * 8));
                table[bit / 8] ^= (byte)(1 << (bit % 8));
            }

            DecodeEverything(fixChecksum ? FixChecksum(table) : table);
        }, iter: 1000);
    }

    [Fact]
    public void TruncationsAndExtensionsOfValidTables_NeverThrow()
    {
        Gen.Select(Gen.Int[1, 40], Gen.Bool, Gen.Int[-200, 40], Gen.Byte).Sample((vcpus, locked, delta, fill) =>
        {
            byte[] table = Madt.Build(MachineWith(vcpus, locked));
            int length = Math.Max(0, table.Length + delta);
            byte[] changed = new byte[length];
            changed.AsSpan().Fill(fill);
            table.AsSpan(0, Math.Min(length, table.Length)).CopyTo(changed);
            DecodeEverything(changed);
        }, iter: 2000);
    }

    [Fact]
    public void RandomMachines_DecodeBackToTheirProcessors()
    {
        // Sparse IDs, ascending or descending: descending ones put small IDs at high indexes.
        Gen<MachineOptions> machines = Gen.Select(Gen.Int[1, 600], Gen.Bool, Gen.Int[0, 2], Gen.UInt[0, 0x2000]).SelectMany((vcpus, locked, layout, start) =>
            Gen.UInt[1, 9].Select(step => MachineWith(vcpus, locked, layout switch
            {
                0 => null,
                1 => SparseIds(vcpus, start, step),
                _ => [.. SparseIds(vcpus, start, step).Reverse()],
            })));
        machines.Sample(options =>
        {
            byte[] table = Madt.Build(options);
            MadtDecodeResult result = Madt.Decode(table);
            Assert.True(result.IsValid, string.Join("; ", result.Errors));
            Assert.Equal(0, Madt.Sum(table));

            // Whatever structure type each vCPU got, its ID and UID (= index) are there, in order.
            for (int i = 0; i < options.VcpuCount; i++)
            {
                (uint id, uint uid) = result.Entries[i].Entry switch
                {
                    MadtLocalApicEntry local => ((uint)local.ApicId, (uint)local.ProcessorUid),
                    MadtLocalX2ApicEntry local => (local.X2ApicId, local.ProcessorUid),
                    _ => throw new InvalidOperationException($"entry {i} is not a processor"),
                };
                Assert.Equal(options.ApicIdOf(i), id);
                Assert.Equal((uint)i, uid);
            }

            Assert.Equal(result.Count(MadtEntryType.LocalX2Apic) > 0 ? 1 : 0, result.Count(MadtEntryType.LocalX2ApicNmi));
            Assert.Equal(table, Madt.Encode(EntriesOf(result)));
        }, iter: 200);
    }

    private static uint[] SparseIds(int count, uint start, uint step)
    {
        var ids = new uint[count];
        for (int i = 0; i < count; i++)
        {
            ids[i] = start + (uint)i * step;
        }

        return ids;
    }
}
