using System.Buffers.Binary;
using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>A saved-state file format that <see cref="LapicStateFile"/> reads and writes.</summary>
public enum LapicStateFormat : byte
{
    /// <summary>Vapic's own machine saved state (<see cref="SavedStateSerializer"/>).</summary>
    Vapic,

    /// <summary>KVM register pages in Vapic's small container (docs/state-interop.md).</summary>
    Kvm,

    /// <summary>Xen HVM save records: LAPIC (5) and LAPIC_REGS (6) per vCPU, then END.</summary>
    Xen,
}

/// <summary>
/// Reads and writes the local APIC states of every vCPU in the Vapic, KVM and Xen formats
/// (docs/state-interop.md). Readers never throw on malformed data: they return a typed error
/// with the offset of the structure at fault.
/// </summary>
public static class LapicStateFile
{
    /// <summary>The magic that opens a KVM container.</summary>
    public static ReadOnlySpan<byte> KvmMagic => "VAPICKVM"u8;

    /// <summary>The KVM container version.</summary>
    public const ushort KvmVersion = 1;

    /// <summary>KVM container flag: the pages use the KVM_X2APIC_API_USE_32BIT_IDS ID format.</summary>
    public const ushort KvmFlag32BitIds = 1;

    /// <summary>The KVM container header: magic, version u16, flags u16, vCPU count u32.</summary>
    public const int KvmHeaderSize = 16;

    /// <summary>One vCPU entry: x2APIC ID u32, reserved u32, IA32_APIC_BASE u64, IA32_TSC_DEADLINE u64, guest TSC u64.</summary>
    public const int KvmVcpuEntrySize = 32;

    /// <summary>The largest vCPU count a file may announce.</summary>
    public const int MaxApics = 4096;

    /// <summary>Guesses the format from the first bytes: Vapic's and the KVM container's magic, Xen otherwise.</summary>
    public static LapicStateFormat Detect(ReadOnlySpan<byte> data) =>
        data.StartsWith(SavedStateSerializer.Magic) ? LapicStateFormat.Vapic :
        data.StartsWith(KvmMagic) ? LapicStateFormat.Kvm : LapicStateFormat.Xen;

    /// <summary>Reads every vCPU's LAPIC state from <paramref name="data"/> in <paramref name="format"/>.</summary>
    public static LapicFileReadResult Read(LapicStateFormat format, ReadOnlySpan<byte> data) => Checked(format switch
    {
        LapicStateFormat.Kvm => ReadKvm(data),
        LapicStateFormat.Xen => ReadXen(data),
        _ => ReadVapic(data),
    });

    /// <summary>
    /// What every format must hold for the APICs to belong to one machine, so that whatever one
    /// format reads, every other writes and reads back: x2APIC IDs unique, and each APIC's mode the
    /// one its IA32_APIC_BASE names (EN and EXTD; EXTD without EN is invalid, SDM "x2APIC State
    /// Transitions").
    /// </summary>
    private static LapicFileReadResult Checked(LapicFileReadResult read)
    {
        if (!read.IsSuccess)
        {
            return read;
        }

        ImmutableArray<LocalApicState> apics = read.Apics;
        var ids = new Dictionary<uint, int>(apics.Length);
        for (int i = 0; i < apics.Length; i++)
        {
            LocalApicState s = apics[i];
            bool enabled = (s.BaseMsr & ApicBaseMsr.GlobalEnable) != 0;
            bool extended = (s.BaseMsr & ApicBaseMsr.X2ApicEnable) != 0;
            if (extended && !enabled)
            {
                return LapicFileReadResult.Fail(InteropError.InvalidApicMode, 0, $"vCPU {i}: IA32_APIC_BASE 0x{s.BaseMsr:x} sets EXTD without EN");
            }

            ApicMode mode = !enabled ? ApicMode.Disabled : extended ? ApicMode.X2Apic : ApicMode.XApic;
            if (s.Mode != mode)
            {
                return LapicFileReadResult.Fail(InteropError.Inconsistent, 0, $"vCPU {i}: saved in {s.Mode} mode, but IA32_APIC_BASE 0x{s.BaseMsr:x} says {mode}");
            }

            if (!ids.TryAdd(s.X2ApicId, i))
            {
                return LapicFileReadResult.Fail(InteropError.Inconsistent, 0, $"vCPU {i}: x2APIC ID 0x{s.X2ApicId:x} repeats vCPU {ids[s.X2ApicId]}'s");
            }
        }

        return read;
    }

    /// <summary>Writes <paramref name="apics"/> (vCPU order, at least one) in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentException">
    /// The format cannot carry these APICs: for Vapic, no machine has their IDs; for Xen, an APIC
    /// outside x2APIC mode whose ID register is not its initial APIC ID.
    /// </exception>
    /// <param name="format">The format.</param>
    /// <param name="apics">The states.</param>
    /// <param name="x2ApicApi32BitIds">KVM only: write the x2APIC-API 32-bit ID format.</param>
    public static byte[] Write(LapicStateFormat format, IReadOnlyList<LocalApicState> apics, bool x2ApicApi32BitIds = true)
    {
        ArgumentNullException.ThrowIfNull(apics);
        return format switch
        {
            LapicStateFormat.Kvm => WriteKvm(apics, x2ApicApi32BitIds),
            LapicStateFormat.Xen => WriteXen(apics),
            _ => SavedStateSerializer.Serialize(ToMachineState(apics)),
        };
    }

    /// <summary>
    /// A machine state holding <paramref name="apics"/>: the power-on state of a machine with
    /// their x2APIC IDs, with each vCPU's LAPIC replaced.
    /// </summary>
    /// <exception cref="ArgumentException">No Vapic machine has these IDs (repeated, or too many vCPUs).</exception>
    public static MachineState ToMachineState(IReadOnlyList<LocalApicState> apics)
    {
        ArgumentNullException.ThrowIfNull(apics);
        uint[] ids = new uint[apics.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = apics[i].X2ApicId;
        }

        // The options a Vapic machine derives from the APICs: a locked x2APIC, and the IOAPIC version
        // that sets VER bit 24 (EOI-broadcast suppression is offered only with a version 0x20 IOAPIC).
        bool locked = ids.Length > 0;
        foreach (LocalApicState apic in apics)
        {
            locked &= apic.X2ApicLocked;
        }

        byte ioApicVersion = ids.Length > 0 && (apics[0].Version & (1u << 24)) == 0 ? (byte)0x11 : (byte)0x20;
        MachineState power = new VirtualMachine(new MachineOptions
        {
            VcpuCount = ids.Length,
            ApicIds = ids,
            ForceX2Apic = locked,
            IoApicVersion = ioApicVersion,
        }).Save();
        var vcpus = ImmutableArray.CreateBuilder<VcpuState>(ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            vcpus.Add(power.Vcpus[i] with { Apic = apics[i] });
        }

        return power with { Vcpus = vcpus.MoveToImmutable() };
    }

    private static LapicFileReadResult ReadVapic(ReadOnlySpan<byte> data)
    {
        SavedStateReadResult read = SavedStateSerializer.Deserialize(data);
        if (!read.IsSuccess || read.State is null)
        {
            return LapicFileReadResult.Fail(InteropError.BadHeader, read.Offset, $"not a Vapic saved state: {read.Message}");
        }

        var apics = ImmutableArray.CreateBuilder<LocalApicState>(read.State.Vcpus.Length);
        foreach (VcpuState vcpu in read.State.Vcpus)
        {
            apics.Add(vcpu.Apic);
        }

        return apics.Count == 0
            ? LapicFileReadResult.Fail(InteropError.Empty, 0, "the saved state holds no vCPU")
            : new LapicFileReadResult(apics.MoveToImmutable(), InteropError.None, 0, null);
    }

    private static byte[] WriteKvm(IReadOnlyList<LocalApicState> apics, bool x2ApicApi32BitIds)
    {
        byte[] data = new byte[KvmHeaderSize + (apics.Count * (KvmVcpuEntrySize + LapicPage.Size))];
        KvmMagic.CopyTo(data);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(8), KvmVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(10), x2ApicApi32BitIds ? KvmFlag32BitIds : (ushort)0);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(12), (uint)apics.Count);
        int pages = KvmHeaderSize + (apics.Count * KvmVcpuEntrySize);
        for (int i = 0; i < apics.Count; i++)
        {
            LocalApicState s = apics[i];
            Span<byte> entry = data.AsSpan(KvmHeaderSize + (i * KvmVcpuEntrySize), KvmVcpuEntrySize);
            BinaryPrimitives.WriteUInt32LittleEndian(entry, s.X2ApicId);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[8..], s.BaseMsr);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[16..], s.TscDeadline);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[24..], s.Tsc);
            KvmLapicState.Export(s, x2ApicApi32BitIds).CopyTo(data.AsSpan(pages + (i * LapicPage.Size)));
        }

        return data;
    }

    private static LapicFileReadResult ReadKvm(ReadOnlySpan<byte> data)
    {
        if (data.Length < KvmHeaderSize || !data.StartsWith(KvmMagic))
        {
            return LapicFileReadResult.Fail(InteropError.BadHeader, 0, "not a KVM LAPIC container (no VAPICKVM header)");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(data[8..]);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(data[10..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(data[12..]);
        if (version != KvmVersion)
        {
            return LapicFileReadResult.Fail(InteropError.BadHeader, 8, $"KVM container version {version} is not {KvmVersion}");
        }

        if ((flags & ~KvmFlag32BitIds) != 0)
        {
            return LapicFileReadResult.Fail(InteropError.BadHeader, 10, $"unknown KVM container flags 0x{flags:x}");
        }

        if (count is 0 or > MaxApics)
        {
            return LapicFileReadResult.Fail(count == 0 ? InteropError.Empty : InteropError.BadLength, 12, $"vCPU count {count} is not 1 to {MaxApics}");
        }

        long expected = KvmHeaderSize + (count * (long)(KvmVcpuEntrySize + LapicPage.Size));
        if (data.Length != expected)
        {
            return LapicFileReadResult.Fail(data.Length < expected ? InteropError.Truncated : InteropError.BadLength, Math.Min(data.Length, (int)Math.Min(expected, int.MaxValue)),
                $"{count} vCPUs need {expected} bytes, the file has {data.Length}");
        }

        bool ids32 = (flags & KvmFlag32BitIds) != 0;
        int pages = KvmHeaderSize + ((int)count * KvmVcpuEntrySize);
        var apics = ImmutableArray.CreateBuilder<LocalApicState>((int)count);
        for (int i = 0; i < (int)count; i++)
        {
            int at = KvmHeaderSize + (i * KvmVcpuEntrySize);
            ReadOnlySpan<byte> entry = data.Slice(at, KvmVcpuEntrySize);
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(entry);
            if (BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]) != 0)
            {
                return LapicFileReadResult.Fail(InteropError.BadHeader, at + 4, $"vCPU {i}: reserved field is not 0");
            }

            for (int j = 0; j < i; j++)
            {
                if (apics[j].X2ApicId == id)
                {
                    return LapicFileReadResult.Fail(InteropError.Inconsistent, at, $"vCPU {i}: x2APIC ID 0x{id:x} repeats vCPU {j}'s");
                }
            }

            LapicImportResult imported = KvmLapicState.Import(
                data.Slice(pages + (i * LapicPage.Size), LapicPage.Size),
                BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]),
                id,
                ids32,
                BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(entry[24..]));
            if (!imported.IsSuccess)
            {
                return LapicFileReadResult.Fail(imported.Error, at, $"vCPU {i}: {imported.Message}");
            }

            apics.Add(imported.State!);
        }

        return new LapicFileReadResult(apics.MoveToImmutable(), InteropError.None, 0, null);
    }

    private static byte[] WriteXen(IReadOnlyList<LocalApicState> apics)
    {
        for (int i = 0; i < apics.Count; i++)
        {
            LocalApicState s = apics[i];
            if (s.Mode != ApicMode.X2Apic && s.XApicId >> 24 != s.X2ApicId)
            {
                // Xen's records carry no initial APIC ID: outside x2APIC mode a reader takes it from
                // the ID register, which the guest may have rewritten (SDM "Local APIC ID").
                throw new ArgumentException(
                    $"vCPU {i}: its xAPIC ID register (0x{s.XApicId >> 24:x}) is not its initial APIC ID 0x{s.X2ApicId:x}, which Xen's LAPIC records cannot carry",
                    nameof(apics));
            }
        }

        // Xen saves all LAPIC records, then all LAPIC_REGS records, each handler over every vCPU.
        int recordBytes = XenLapicRecord.DescriptorSize + XenLapicRecord.Size;
        int regsBytes = XenLapicRecord.DescriptorSize + LapicPage.Size;
        byte[] data = new byte[(apics.Count * (recordBytes + regsBytes)) + XenLapicRecord.DescriptorSize];
        int at = 0;
        for (int i = 0; i < apics.Count; i++)
        {
            WriteDescriptor(data.AsSpan(at), XenLapicRecord.LapicTypecode, (ushort)i, XenLapicRecord.Size);
            XenLapicRecord.From(apics[i]).WriteTo(data.AsSpan(at + XenLapicRecord.DescriptorSize));
            at += recordBytes;
        }

        for (int i = 0; i < apics.Count; i++)
        {
            WriteDescriptor(data.AsSpan(at), XenLapicRecord.LapicRegsTypecode, (ushort)i, LapicPage.Size);
            XenLapicRecord.ExportRegisters(apics[i]).CopyTo(data.AsSpan(at + XenLapicRecord.DescriptorSize));
            at += regsBytes;
        }

        WriteDescriptor(data.AsSpan(at), XenLapicRecord.EndTypecode, 0, 0);
        return data;
    }

    private static void WriteDescriptor(Span<byte> destination, ushort typecode, ushort instance, uint length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, typecode);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], instance);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], length);
    }

    private static LapicFileReadResult ReadXen(ReadOnlySpan<byte> data)
    {
        var records = new SortedDictionary<ushort, (XenLapicRecord Record, int Offset)>();
        var pages = new SortedDictionary<ushort, int>();
        int at = 0;
        while (true)
        {
            if (data.Length - at < XenLapicRecord.DescriptorSize)
            {
                return LapicFileReadResult.Fail(InteropError.Truncated, at, "the Xen records end without an END record (typecode 0)");
            }

            ushort typecode = BinaryPrimitives.ReadUInt16LittleEndian(data[at..]);
            ushort instance = BinaryPrimitives.ReadUInt16LittleEndian(data[(at + 2)..]);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(data[(at + 4)..]);
            int body = at + XenLapicRecord.DescriptorSize;
            if (typecode == XenLapicRecord.EndTypecode)
            {
                break;
            }

            if (length > (uint)(data.Length - body))
            {
                return LapicFileReadResult.Fail(InteropError.Truncated, at, $"record typecode {typecode} instance {instance} announces {length} bytes, {data.Length - body} remain");
            }

            if (typecode == XenLapicRecord.LapicTypecode)
            {
                if (length > XenLapicRecord.Size)
                {
                    return LapicFileReadResult.Fail(InteropError.BadLength, at, $"LAPIC record instance {instance} is {length} bytes, more than {XenLapicRecord.Size}");
                }

                if (!records.TryAdd(instance, (XenLapicRecord.Read(data.Slice(body, (int)length)), at)))
                {
                    return LapicFileReadResult.Fail(InteropError.Inconsistent, at, $"LAPIC record instance {instance} appears twice");
                }
            }
            else if (typecode == XenLapicRecord.LapicRegsTypecode)
            {
                if (length != LapicPage.Size)
                {
                    return LapicFileReadResult.Fail(InteropError.BadLength, at, $"LAPIC_REGS record instance {instance} is {length} bytes, not {LapicPage.Size}");
                }

                if (!pages.TryAdd(instance, body))
                {
                    return LapicFileReadResult.Fail(InteropError.Inconsistent, at, $"LAPIC_REGS record instance {instance} appears twice");
                }
            }

            // Other typecodes (CPU, IOAPIC, ...) belong to other devices and are skipped.
            at = body + (int)length;
        }

        if (records.Count == 0 && pages.Count == 0)
        {
            return LapicFileReadResult.Fail(InteropError.Empty, 0, "no LAPIC record (typecode 5) in the Xen records");
        }

        var apics = ImmutableArray.CreateBuilder<LocalApicState>(records.Count);
        foreach ((ushort instance, (XenLapicRecord record, int offset)) in records)
        {
            if (!pages.TryGetValue(instance, out int page))
            {
                return LapicFileReadResult.Fail(InteropError.Inconsistent, offset, $"LAPIC record instance {instance} has no LAPIC_REGS record");
            }

            LapicImportResult imported = record.Import(data.Slice(page, LapicPage.Size));
            if (!imported.IsSuccess)
            {
                return LapicFileReadResult.Fail(imported.Error, offset, $"vCPU {instance}: {imported.Message}");
            }

            apics.Add(imported.State!);
        }

        foreach (ushort instance in pages.Keys)
        {
            if (!records.ContainsKey(instance))
            {
                return LapicFileReadResult.Fail(InteropError.Inconsistent, pages[instance] - XenLapicRecord.DescriptorSize, $"LAPIC_REGS record instance {instance} has no LAPIC record");
            }
        }

        return new LapicFileReadResult(apics.MoveToImmutable(), InteropError.None, 0, null);
    }
}
