using System.Buffers.Binary;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>The binary format: the byte layout of docs/saved-state.md, and one typed error per kind of damage.</summary>
public sealed class SavedStateSerializerTests
{
    [Fact]
    public void Serialize_PowerOnMachine_PutsEveryFieldAtItsDocumentedOffset()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        byte[] file = SavedStateSerializer.Serialize(machine.Save());

        // 10 header + machine (8 + 16 + 2×4) + 2 × (vCPU 8 + 16, LAPIC 8 + 224) + IOAPIC (8 + 16 + 24×16) + end 8.
        Assert.Equal(970, file.Length);
        Assert.Equal("VAPICSS\0"u8.ToArray(), file[..8]);
        Assert.Equal(0x0100, U16(file, 8));

        // Machine section at 10.
        Assert.Equal((1, 0x0100, 24u), (U16(file, 10), U16(file, 12), U32(file, 14)));
        Assert.Equal(0L, BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(18)));
        Assert.Equal(2u, U32(file, 26));
        Assert.Equal((0x20, 46, 0x02, 0), (file[30], file[31], file[32], file[33]));   // IOAPIC 0x20, MAXPHYADDR, extended destination ID, Intel
        Assert.Equal((0u, 1u), (U32(file, 34), U32(file, 38)));

        // vCPU 0 at 42: running at the reset vector (CS 0xF000, EIP → 0xFFFF_FFF0).
        Assert.Equal((2, 0x0100, 16u), (U16(file, 42), U16(file, 44), U32(file, 46)));
        Assert.Equal(0u, U32(file, 50));
        Assert.Equal((0, 0), (file[54], file[55]));
        Assert.Equal(0xF000, U16(file, 56));
        Assert.Equal(0xFFFF_FFF0UL, U64(file, 58));

        // LAPIC 0 at 66, payload at 74: the SDM power-on values of the BSP.
        const int p = 74;
        Assert.Equal((3, 0x0100, 224u), (U16(file, 66), U16(file, 68), U32(file, 70)));
        Assert.Equal(0u, U32(file, p));
        Assert.Equal((1, 0, 0, 0), (file[p + 4], file[p + 5], file[p + 6], file[p + 7]));   // xAPIC, no flags, no events
        Assert.Equal(0xFEE0_0900UL, U64(file, p + 0x08));
        Assert.Equal(0u, U32(file, p + 0x10));               // x2APIC ID
        Assert.Equal(0x0105_0014u, U32(file, p + 0x14));     // VER
        Assert.Equal(0xFFFF_FFFFu, U32(file, p + 0x20));     // DFR
        Assert.Equal(0xFFu, U32(file, p + 0x28));            // SVR
        for (int lvt = 0; lvt < 7; lvt++)
        {
            Assert.Equal(0x0001_0000u, U32(file, p + 0x3C + (4 * lvt)));   // CMCI, Timer, Thermal, Perf, LINT0, LINT1, Error
        }

        Assert.True(file.AsSpan(p + 0x60, 0x60).IndexOfAnyExcept((byte)0) < 0);   // ISR, TMR, IRR empty

        // vCPU 1 waits for SIPI.
        Assert.Equal((2, 1u, 1), (U16(file, 298), U32(file, 306), file[310]));

        // IOAPIC at 554: version 0x20, 24 pins, every RTE masked.
        Assert.Equal((4, 0x0100, 16u + (24 * 16)), (U16(file, 554), U16(file, 556), U32(file, 558)));
        Assert.Equal((0x20, 0, 24, 0), (file[562], file[563], file[564], file[565]));
        for (int pin = 0; pin < 24; pin++)
        {
            Assert.Equal(0x0001_0000UL, U64(file, 578 + (16 * pin)));
        }

        // End at 962.
        Assert.Equal((0xFFFF, 0x0100, 0u), (U16(file, 962), U16(file, 964), U32(file, 966)));
    }

    [Fact]
    public void Deserialize_OfSerialize_IsTheSameState()
    {
        VirtualMachine machine = new SavedStateMachineSpec(5, 2, false, 0x20, true, 0b10110).Boot();
        machine.GetVcpu(2).SetHostState(VcpuHostState.Halted);
        machine.SetIrq(3, true);
        machine.Advance(12_345);
        MachineState state = machine.Save();

        SavedStateReadResult read = SavedStateSerializer.Deserialize(SavedStateSerializer.Serialize(state));

        Assert.True(read.IsSuccess, read.ToString());
        Assert.Equal(state, read.State);
        Assert.Equal(SavedStateFormatError.None, read.Error);
    }

    public static TheoryData<string, SavedStateFormatError, int> Damages => new()
    {
        { "empty", SavedStateFormatError.Truncated, 0 },
        { "magic", SavedStateFormatError.BadMagic, 6 },
        { "header cut", SavedStateFormatError.Truncated, 9 },
        { "format major 2", SavedStateFormatError.UnsupportedVersion, 8 },
        { "format minor 1", SavedStateFormatError.UnsupportedVersion, 8 },
        { "section minor 1", SavedStateFormatError.UnsupportedVersion, 68 },
        { "no end section", SavedStateFormatError.Truncated, 962 },
        { "section header cut", SavedStateFormatError.Truncated, 962 },
        { "payload cut", SavedStateFormatError.Truncated, 558 },
        { "LAPIC length 223", SavedStateFormatError.LengthMismatch, 70 },
        { "vCPU length 17", SavedStateFormatError.LengthMismatch, 46 },
        { "machine length", SavedStateFormatError.LengthMismatch, 14 },
        { "IOAPIC length", SavedStateFormatError.LengthMismatch, 558 },
        { "end with payload", SavedStateFormatError.LengthMismatch, 966 },
        { "unknown section", SavedStateFormatError.UnknownSectionType, 554 },
        { "trailing byte", SavedStateFormatError.TrailingBytes, 970 },
        { "second LAPIC for vCPU 0", SavedStateFormatError.DuplicateSection, 298 },
        { "second vCPU section for vCPU 1", SavedStateFormatError.DuplicateSection, 322 },
        { "second machine", SavedStateFormatError.DuplicateSection, 42 },
        { "second IOAPIC", SavedStateFormatError.DuplicateSection, 962 },
        { "no IOAPIC", SavedStateFormatError.MissingSection, 554 },
        { "no LAPIC for vCPU 1", SavedStateFormatError.MissingSection, 730 },
        { "vCPU before machine", SavedStateFormatError.OutOfOrder, 10 },
        { "vCPU count 0", SavedStateFormatError.InvalidValue, 26 },
        { "machine flag bit 2", SavedStateFormatError.InvalidValue, 32 },
        { "CPU vendor 2", SavedStateFormatError.InvalidValue, 33 },
        { "vCPU index 2", SavedStateFormatError.InvalidValue, 50 },
        { "LAPIC flag bit 7", SavedStateFormatError.InvalidValue, 79 },
        { "expiry without armed flag", SavedStateFormatError.InvalidValue, 74 + 0xD8 },
        { "line level 2", SavedStateFormatError.InvalidValue, 578 + 8 },
        { "no pins", SavedStateFormatError.InvalidValue, 564 },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public void Deserialize_DamagedFile_NamesTheErrorAndItsOffset(string damage, SavedStateFormatError error, int offset)
    {
        byte[] good = SavedStateSerializer.Serialize(new VirtualMachine(new MachineOptions { VcpuCount = 2 }).Save());
        byte[] file = Damage(good, damage);

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);

        Assert.Equal((error, offset), (read.Error, read.Offset));
        Assert.Null(read.State);
        Assert.False(string.IsNullOrEmpty(read.Message));
    }

    [Fact]
    public void Deserialize_EveryPrefixAndEverySingleBitFlip_NeverThrows()
    {
        byte[] good = SavedStateSerializer.Serialize(new SavedStateMachineSpec(1, 0, false, 0x20, true, 1).Boot().Save());
        for (int length = 0; length < good.Length; length++)
        {
            Assert.False(SavedStateSerializer.Deserialize(good.AsSpan(0, length)).IsSuccess);
        }

        for (int bit = 0; bit < good.Length * 8; bit++)
        {
            good[bit / 8] ^= (byte)(1 << (bit % 8));
            SavedStateReadResult read = SavedStateSerializer.Deserialize(good);
            Assert.True(read.IsSuccess == (read.State is not null));
            good[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }

    [Fact]
    public void Serialize_UnrepresentableState_IsAnArgumentError()
    {
        MachineState state = new VirtualMachine(new MachineOptions()).Save();
        Assert.Throws<ArgumentNullException>(() => SavedStateSerializer.Serialize(null!));
        Assert.Throws<ArgumentException>(() => SavedStateSerializer.Serialize(state with { Vcpus = default }));
        Assert.Throws<ArgumentException>(() => SavedStateSerializer.Serialize(state with { Vcpus = [] }));
        Assert.Throws<ArgumentException>(() => SavedStateSerializer.Serialize(state with { IoApic = state.IoApic with { Pins = [] } }));
    }

    /// <summary>The named damage applied to a good file of a 2-vCPU machine (layout as in the first test).</summary>
    private static byte[] Damage(byte[] good, string damage)
    {
        byte[] f = (byte[])good.Clone();
        List<byte[]> sections = Split(good);   // 0 machine, 1 vCPU0, 2 LAPIC0, 3 vCPU1, 4 LAPIC1, 5 IOAPIC, 6 end
        switch (damage)
        {
            case "empty":
                return [];
            case "magic":
                f[6] = (byte)'X';
                return f;
            case "header cut":
                return f[..9];
            case "format major 2":
                f[9] = 2;
                return f;
            case "format minor 1":
                f[8] = 1;
                return f;
            case "section minor 1":
                f[68] = 1;
                return f;
            case "no end section":
                return f[..962];
            case "section header cut":
                return f[..965];
            case "payload cut":
                return f[..700];
            case "LAPIC length 223":
                sections[2] = Resize(sections[2], 223);
                return Join(sections);
            case "vCPU length 17":
                sections[1] = Resize(sections[1], 17);
                return Join(sections);
            case "machine length":
                sections[0] = Resize(sections[0], 20);
                return Join(sections);
            case "IOAPIC length":
                sections[5] = Resize(sections[5], 16 + (23 * 16));
                return Join(sections);
            case "end with payload":
                sections[6] = Resize(sections[6], 1);
                return Join(sections);
            case "unknown section":
                f[554] = 5;
                return f;
            case "trailing byte":
                return [.. f, 0];
            case "second LAPIC for vCPU 0":
                sections.Insert(3, sections[2]);
                return Join(sections);
            case "second vCPU section for vCPU 1":
                sections.Insert(3, sections[3]);
                return Join(sections);
            case "second machine":
                sections.Insert(1, sections[0]);
                return Join(sections);
            case "second IOAPIC":
                sections.Insert(6, sections[5]);
                return Join(sections);
            case "no IOAPIC":
                sections.RemoveAt(5);
                return Join(sections);
            case "no LAPIC for vCPU 1":
                sections.RemoveAt(4);
                return Join(sections);
            case "vCPU before machine":
                (sections[0], sections[1]) = (sections[1], sections[0]);
                return Join(sections);
            case "vCPU count 0":
                BinaryPrimitives.WriteUInt32LittleEndian(f.AsSpan(26), 0);
                return f;
            case "machine flag bit 2":
                f[32] |= 4;
                return f;
            case "CPU vendor 2":
                f[33] = 2;
                return f;
            case "vCPU index 2":
                f[50] = 2;
                return f;
            case "LAPIC flag bit 7":
                f[79] |= 0x80;
                return f;
            case "expiry without armed flag":
                f[74 + 0xD8] = 1;
                return f;
            case "line level 2":
                f[578 + 8] = 2;
                return f;
            case "no pins":
                sections[5] = Resize(sections[5], 16);
                sections[5][8 + 2] = 0;
                return Join(sections);
            default:
                throw new ArgumentException(damage);
        }
    }

    /// <summary>The sections of a well-formed file, each with its 8-byte header.</summary>
    private static List<byte[]> Split(byte[] file)
    {
        var sections = new List<byte[]>();
        for (int at = SavedStateSerializer.HeaderSize; at < file.Length;)
        {
            int length = 8 + (int)U32(file, at + 4);
            sections.Add(file[at..(at + length)]);
            at += length;
        }

        return sections;
    }

    private static byte[] Join(List<byte[]> sections) => [.. "VAPICSS\0"u8.ToArray(), 0x00, 0x01, .. sections.SelectMany(s => s)];

    /// <summary>The section with its payload cut or zero-extended to <paramref name="payloadLength"/> and its length field to match.</summary>
    private static byte[] Resize(byte[] section, int payloadLength)
    {
        byte[] resized = new byte[8 + payloadLength];
        section.AsSpan(0, Math.Min(section.Length, resized.Length)).CopyTo(resized);
        BinaryPrimitives.WriteUInt32LittleEndian(resized.AsSpan(4), (uint)payloadLength);
        return resized;
    }

    private static int U16(byte[] b, int at) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(at));

    private static uint U32(byte[] b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at));

    private static ulong U64(byte[] b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(at));
}
