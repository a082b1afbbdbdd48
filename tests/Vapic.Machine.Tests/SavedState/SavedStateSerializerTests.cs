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

        // 10 header + machine (8 + 16 + 2×4 + 16) + 2 × (vCPU 8 + 16, LAPIC 8 + 224) + IOAPIC (8 + 16 + 24×16) + end 8.
        Assert.Equal(986, file.Length);
        Assert.Equal("VAPICSS\0"u8.ToArray(), file[..8]);
        Assert.Equal(0x0101, U16(file, 8));

        // Machine section (version 1.1) at 10.
        Assert.Equal((1, 0x0101, 40u), (U16(file, 10), U16(file, 12), U32(file, 14)));
        Assert.Equal(0L, BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(18)));
        Assert.Equal(2u, U32(file, 26));
        Assert.Equal((0x20, 46, 0x02, 0), (file[30], file[31], file[32], file[33]));   // IOAPIC 0x20, MAXPHYADDR, extended destination ID, Intel
        Assert.Equal((0u, 1u), (U32(file, 34), U32(file, 38)));
        Assert.Equal((1_000_000_000UL, 1_000_000_000UL), (U64(file, 42), U64(file, 50)));   // TSC and APIC timer at 1 GHz

        // vCPU 0 at 58: running at the reset vector (CS 0xF000, EIP → 0xFFFF_FFF0).
        Assert.Equal((2, 0x0100, 16u), (U16(file, 58), U16(file, 60), U32(file, 62)));
        Assert.Equal(0u, U32(file, 66));
        Assert.Equal((0, 0), (file[70], file[71]));
        Assert.Equal(0xF000, U16(file, 72));
        Assert.Equal(0xFFFF_FFF0UL, U64(file, 74));

        // LAPIC 0 at 82, payload at 90: the SDM power-on values of the BSP.
        const int p = 90;
        Assert.Equal((3, 0x0100, 224u), (U16(file, 82), U16(file, 84), U32(file, 86)));
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
        Assert.Equal((2, 1u, 1), (U16(file, 314), U32(file, 322), file[326]));

        // IOAPIC at 570: version 0x20, 24 pins, every RTE masked.
        Assert.Equal((4, 0x0100, 16u + (24 * 16)), (U16(file, 570), U16(file, 572), U32(file, 574)));
        Assert.Equal((0x20, 0, 24, 0), (file[578], file[579], file[580], file[581]));
        for (int pin = 0; pin < 24; pin++)
        {
            Assert.Equal(0x0001_0000UL, U64(file, 594 + (16 * pin)));
        }

        // End at 978.
        Assert.Equal((0xFFFF, 0x0100, 0u), (U16(file, 978), U16(file, 980), U32(file, 982)));
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
        { "format minor 2", SavedStateFormatError.UnsupportedVersion, 8 },
        { "section minor 1", SavedStateFormatError.UnsupportedVersion, 84 },
        { "no end section", SavedStateFormatError.Truncated, 978 },
        { "section header cut", SavedStateFormatError.Truncated, 978 },
        { "payload cut", SavedStateFormatError.Truncated, 574 },
        { "LAPIC length 223", SavedStateFormatError.LengthMismatch, 86 },
        { "vCPU length 17", SavedStateFormatError.LengthMismatch, 62 },
        { "machine length", SavedStateFormatError.LengthMismatch, 14 },
        { "IOAPIC length", SavedStateFormatError.LengthMismatch, 574 },
        { "end with payload", SavedStateFormatError.LengthMismatch, 982 },
        { "unknown section", SavedStateFormatError.UnknownSectionType, 570 },
        { "trailing byte", SavedStateFormatError.TrailingBytes, 986 },
        { "second LAPIC for vCPU 0", SavedStateFormatError.DuplicateSection, 314 },
        { "second vCPU section for vCPU 1", SavedStateFormatError.DuplicateSection, 338 },
        { "second machine", SavedStateFormatError.DuplicateSection, 58 },
        { "second IOAPIC", SavedStateFormatError.DuplicateSection, 978 },
        { "no IOAPIC", SavedStateFormatError.MissingSection, 570 },
        { "no LAPIC for vCPU 1", SavedStateFormatError.MissingSection, 746 },
        { "vCPU before machine", SavedStateFormatError.OutOfOrder, 10 },
        { "vCPU count 0", SavedStateFormatError.InvalidValue, 26 },
        { "machine flag bit 2", SavedStateFormatError.InvalidValue, 32 },
        { "CPU vendor 2", SavedStateFormatError.InvalidValue, 33 },
        { "vCPU index 2", SavedStateFormatError.InvalidValue, 66 },
        { "LAPIC flag bit 7", SavedStateFormatError.InvalidValue, 95 },
        { "expiry without armed flag", SavedStateFormatError.InvalidValue, 90 + 0xD8 },
        { "line level 2", SavedStateFormatError.InvalidValue, 594 + 8 },
        { "no pins", SavedStateFormatError.InvalidValue, 580 },
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
            case "format minor 2":
                f[8] = 2;
                return f;
            case "section minor 1":
                f[84] = 1;
                return f;
            case "no end section":
                return f[..978];
            case "section header cut":
                return f[..981];
            case "payload cut":
                return f[..716];
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
                f[570] = 5;
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
                f[66] = 2;
                return f;
            case "LAPIC flag bit 7":
                f[95] |= 0x80;
                return f;
            case "expiry without armed flag":
                f[90 + 0xD8] = 1;
                return f;
            case "line level 2":
                f[594 + 8] = 2;
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

    private static byte[] Join(List<byte[]> sections) => [.. "VAPICSS\0"u8.ToArray(), 0x01, 0x01, .. sections.SelectMany(s => s)];

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
