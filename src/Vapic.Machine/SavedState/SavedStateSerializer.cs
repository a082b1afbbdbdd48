using System.Buffers.Binary;
using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.SavedState;

/// <summary>
/// Vapic's binary saved-state format (docs/saved-state.md, byte by byte): the magic "VAPICSS\0",
/// the format version, then sections (type u16, version u16, payload length u32, payload), all
/// little-endian: the machine first, then a vCPU and a LAPIC section per vCPU, the IOAPIC, and the
/// end section.
/// </summary>
/// <remarks>
/// Versions are major.minor (major in bits 15:8). A new minor version only appends fields whose
/// default means "absent"; a reader accepts its own major with any minor up to its own, filling
/// fields an older minor lacks with their defaults, and refuses a newer minor or another major.
/// </remarks>
public static class SavedStateSerializer
{
    /// <summary>The container format version written: 1.1 (1.0 files, without the frequencies, are still read).</summary>
    public const ushort FormatVersion = 0x0101;

    /// <summary>The machine section's version: 1.1, which appends the TSC and APIC timer frequencies to 1.0.</summary>
    public const ushort MachineSectionVersion = 0x0101;

    /// <summary>The vCPU section's version: 1.0.</summary>
    public const ushort VcpuSectionVersion = 0x0100;

    /// <summary>The LAPIC section's version: 1.0.</summary>
    public const ushort LocalApicSectionVersion = 0x0100;

    /// <summary>The IOAPIC section's version: 1.0.</summary>
    public const ushort IoApicSectionVersion = 0x0100;

    /// <summary>The end section's version: 1.0.</summary>
    public const ushort EndSectionVersion = 0x0100;

    /// <summary>The size of the file header: magic (8) and format version (2).</summary>
    public const int HeaderSize = 10;

    /// <summary>The size of a section header: type (2), version (2), payload length (4).</summary>
    public const int SectionHeaderSize = 8;

    /// <summary>The machine payload without its APIC ID list.</summary>
    public const int MachinePayloadFixedSize = 16;

    /// <summary>
    /// The machine payload's fields after the APIC ID list, added in section version 1.1: the TSC
    /// frequency and the APIC timer frequency in Hz, u64 each.
    /// </summary>
    public const int MachineFrequenciesSize = 16;

    /// <summary>The vCPU payload.</summary>
    public const int VcpuPayloadSize = 16;

    /// <summary>The LAPIC payload.</summary>
    public const int LocalApicPayloadSize = 224;

    /// <summary>The IOAPIC payload without its pins.</summary>
    public const int IoApicPayloadFixedSize = 16;

    /// <summary>The size of one IOAPIC pin record.</summary>
    public const int IoApicPinSize = 16;

    private const byte MachineForceX2Apic = 1 << 0;
    private const byte MachineExtendedDestinationId = 1 << 1;

    private const byte LapicX2ApicLocked = 1 << 0;
    private const byte LapicTimerCounting = 1 << 1;
    private const byte LapicTimerArmed = 1 << 2;
    private const byte LapicLint0Asserted = 1 << 3;
    private const byte LapicLint1Asserted = 1 << 4;
    private const byte LapicLint0RemoteIrr = 1 << 5;
    private const byte LapicLint1RemoteIrr = 1 << 6;

    private const byte IoApicRetriggerArmed = 1 << 0;

    /// <summary>The 8-byte magic at offset 0.</summary>
    public static ReadOnlySpan<byte> Magic => "VAPICSS\0"u8;

    /// <summary>Encodes <paramref name="state"/>. The state is written as it is; only a restore judges it.</summary>
    /// <exception cref="ArgumentException">
    /// The state cannot be represented: a missing part, a vCPU count outside 1..4096 or different from
    /// the APIC ID count, a pin count outside 1..255, a negative storm count, MAXPHYADDR above 255, or
    /// a frequency that is not positive (0 in the file means the 1 GHz default).
    /// </exception>
    public static byte[] Serialize(MachineState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        CheckRepresentable(state);
        int vcpuCount = state.Vcpus.Length;
        int pinCount = state.IoApic.Pins.Length;
        int size = HeaderSize +
            SectionHeaderSize + MachinePayloadFixedSize + (4 * vcpuCount) + MachineFrequenciesSize +
            (vcpuCount * (SectionHeaderSize + VcpuPayloadSize + SectionHeaderSize + LocalApicPayloadSize)) +
            SectionHeaderSize + IoApicPayloadFixedSize + (IoApicPinSize * pinCount) +
            SectionHeaderSize;
        byte[] bytes = new byte[size];
        Span<byte> span = bytes;
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[8..], FormatVersion);
        int offset = HeaderSize;

        Span<byte> machine = Section(span, ref offset, SavedStateSectionType.Machine, MachineSectionVersion,
            MachinePayloadFixedSize + (4 * vcpuCount) + MachineFrequenciesSize);
        WriteMachine(machine, state);
        for (int i = 0; i < vcpuCount; i++)
        {
            VcpuState vcpu = state.Vcpus[i];
            WriteVcpu(Section(span, ref offset, SavedStateSectionType.Vcpu, VcpuSectionVersion, VcpuPayloadSize), i, vcpu);
            WriteLocalApic(Section(span, ref offset, SavedStateSectionType.LocalApic, LocalApicSectionVersion, LocalApicPayloadSize), i, vcpu.Apic);
        }

        WriteIoApic(Section(span, ref offset, SavedStateSectionType.IoApic, IoApicSectionVersion, IoApicPayloadFixedSize + (IoApicPinSize * pinCount)), state.IoApic);
        Section(span, ref offset, SavedStateSectionType.End, EndSectionVersion, 0);
        return bytes;
    }

    /// <summary>
    /// Decodes a saved-state file. Never throws: any problem comes back as a typed error with the
    /// byte offset where it was found. A decoded state is complete (every section present once) but
    /// not yet judged against a machine: <see cref="VirtualMachine.Restore"/> does that.
    /// </summary>
    public static SavedStateReadResult Deserialize(ReadOnlySpan<byte> data)
    {
        int magicLength = Math.Min(data.Length, Magic.Length);
        for (int i = 0; i < magicLength; i++)
        {
            if (data[i] != Magic[i])
            {
                return Error(SavedStateFormatError.BadMagic, i, "the file does not start with \"VAPICSS\\0\"");
            }
        }

        if (data.Length < HeaderSize)
        {
            return Error(SavedStateFormatError.Truncated, data.Length, $"the input ends inside the {HeaderSize}-byte header");
        }

        ushort formatVersion = BinaryPrimitives.ReadUInt16LittleEndian(data[8..]);
        if (!IsReadable(formatVersion, FormatVersion))
        {
            return Error(SavedStateFormatError.UnsupportedVersion, 8, $"format version {VersionText(formatVersion)} is not readable by {VersionText(FormatVersion)}");
        }

        var parser = new Parser();
        int offset = HeaderSize;
        while (true)
        {
            if (data.Length - offset < SectionHeaderSize)
            {
                return Error(SavedStateFormatError.Truncated, offset,
                    offset == data.Length ? "the input ends before the end section" : "the input ends inside a section header");
            }

            var type = (SavedStateSectionType)BinaryPrimitives.ReadUInt16LittleEndian(data[offset..]);
            ushort version = BinaryPrimitives.ReadUInt16LittleEndian(data[(offset + 2)..]);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(data[(offset + 4)..]);
            ushort supported = type switch
            {
                SavedStateSectionType.Machine => MachineSectionVersion,
                SavedStateSectionType.Vcpu => VcpuSectionVersion,
                SavedStateSectionType.LocalApic => LocalApicSectionVersion,
                SavedStateSectionType.IoApic => IoApicSectionVersion,
                SavedStateSectionType.End => EndSectionVersion,
                _ => 0,
            };
            if (supported == 0)
            {
                return Error(SavedStateFormatError.UnknownSectionType, offset, $"section type 0x{(ushort)type:x4} is unknown");
            }

            if (!IsReadable(version, supported))
            {
                return Error(SavedStateFormatError.UnsupportedVersion, offset + 2,
                    $"{type} section version {VersionText(version)} is not readable by {VersionText(supported)}");
            }

            int payloadOffset = offset + SectionHeaderSize;
            if (length > (uint)(data.Length - payloadOffset))
            {
                return Error(SavedStateFormatError.Truncated, offset + 4,
                    $"the {type} section's {length} bytes run past the end of the input ({data.Length - payloadOffset} left)");
            }

            if (type != SavedStateSectionType.Machine && !parser.HasMachine)
            {
                return Error(SavedStateFormatError.OutOfOrder, offset, $"a {type} section comes before the machine section");
            }

            ReadOnlySpan<byte> payload = data.Slice(payloadOffset, (int)length);
            SavedStateReadResult result = type switch
            {
                SavedStateSectionType.Machine => parser.ReadMachine(payload, version, offset),
                SavedStateSectionType.Vcpu => parser.ReadVcpu(payload, offset),
                SavedStateSectionType.LocalApic => parser.ReadLocalApic(payload, offset),
                SavedStateSectionType.IoApic => parser.ReadIoApic(payload, offset),
                _ => length == 0 ? default : Error(SavedStateFormatError.LengthMismatch, offset + 4, $"the end section has {length} payload bytes, not 0"),
            };
            if (!result.IsSuccess)
            {
                return result;
            }

            if (type == SavedStateSectionType.End)
            {
                int end = payloadOffset + (int)length;
                if (end != data.Length)
                {
                    return Error(SavedStateFormatError.TrailingBytes, end, $"{data.Length - end} bytes follow the end section");
                }

                return parser.Finish(formatVersion, offset);
            }

            offset = payloadOffset + (int)length;
        }
    }

    private static bool IsReadable(ushort version, ushort supported) =>
        version >> 8 == supported >> 8 && (version & 0xFF) <= (supported & 0xFF);

    private static string VersionText(ushort version) => $"{version >> 8}.{version & 0xFF}";

    private static SavedStateReadResult Error(SavedStateFormatError error, int offset, string message) => new(null, error, offset, message);

    private static void CheckRepresentable(MachineState state)
    {
        if (state.Configuration is null || state.Configuration.ApicIds.IsDefault || state.Vcpus.IsDefault || state.IoApic is null || state.IoApic.Pins.IsDefault)
        {
            throw new ArgumentException("The state has a missing part.", nameof(state));
        }

        int count = state.Vcpus.Length;
        if (count is < 1 or > MachineOptions.MaxVcpus || state.Configuration.ApicIds.Length != count)
        {
            throw new ArgumentException($"The state has {count} vCPU states and {state.Configuration.ApicIds.Length} APIC IDs; both must be the same, 1 to {MachineOptions.MaxVcpus}.", nameof(state));
        }

        if ((uint)state.Configuration.MaxPhysicalAddressBits > byte.MaxValue || (byte)state.Configuration.CpuVendor > (byte)CpuVendor.Amd)
        {
            throw new ArgumentException("MAXPHYADDR or the CPU vendor does not fit its byte.", nameof(state));
        }

        if (state.Configuration.TscFrequencyHz <= 0 || state.Configuration.ApicTimerFrequencyHz <= 0)
        {
            throw new ArgumentException("A TSC or APIC timer frequency is not positive.", nameof(state));
        }

        foreach (VcpuState vcpu in state.Vcpus)
        {
            if (vcpu?.Apic is null)
            {
                throw new ArgumentException("A vCPU state or its LAPIC state is missing.", nameof(state));
            }
        }

        ImmutableArray<IoApicPinState> pins = state.IoApic.Pins;
        if (pins.Length is < 1 or > byte.MaxValue)
        {
            throw new ArgumentException($"The IOAPIC has {pins.Length} pins; the format holds 1 to 255.", nameof(state));
        }

        foreach (IoApicPinState pin in pins)
        {
            if (pin.SuccessiveEois < 0)
            {
                throw new ArgumentException("A storm count is negative.", nameof(state));
            }
        }
    }

    private static Span<byte> Section(Span<byte> file, ref int offset, SavedStateSectionType type, ushort version, int length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(file[offset..], (ushort)type);
        BinaryPrimitives.WriteUInt16LittleEndian(file[(offset + 2)..], version);
        BinaryPrimitives.WriteUInt32LittleEndian(file[(offset + 4)..], (uint)length);
        Span<byte> payload = file.Slice(offset + SectionHeaderSize, length);
        offset += SectionHeaderSize + length;
        return payload;
    }

    private static void WriteMachine(Span<byte> p, MachineState state)
    {
        MachineConfigurationState c = state.Configuration;
        BinaryPrimitives.WriteInt64LittleEndian(p, state.VirtualTime);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], (uint)c.ApicIds.Length);
        p[12] = c.IoApicVersion;
        p[13] = (byte)c.MaxPhysicalAddressBits;
        p[14] = (byte)((c.ForceX2Apic ? MachineForceX2Apic : 0) | (c.ExtendedDestinationId ? MachineExtendedDestinationId : 0));
        p[15] = (byte)c.CpuVendor;
        for (int i = 0; i < c.ApicIds.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p[(MachinePayloadFixedSize + (4 * i))..], c.ApicIds[i]);
        }

        int frequencies = MachinePayloadFixedSize + (4 * c.ApicIds.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(p[frequencies..], (ulong)c.TscFrequencyHz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[(frequencies + 8)..], (ulong)c.ApicTimerFrequencyHz);
    }

    private static void WriteVcpu(Span<byte> p, int index, VcpuState vcpu)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)index);
        p[4] = (byte)vcpu.RunState;
        p[5] = (byte)vcpu.HostState;
        BinaryPrimitives.WriteUInt16LittleEndian(p[6..], vcpu.CodeSegment);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], vcpu.EntryPoint);
    }

    private static void WriteLocalApic(Span<byte> p, int index, LocalApicState s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)index);
        p[4] = (byte)s.Mode;
        p[5] = (byte)(
            (s.X2ApicLocked ? LapicX2ApicLocked : 0) |
            (s.TimerCounting ? LapicTimerCounting : 0) |
            (s.TimerExpiresInNs is not null ? LapicTimerArmed : 0) |
            (s.Lint0Asserted ? LapicLint0Asserted : 0) |
            (s.Lint1Asserted ? LapicLint1Asserted : 0) |
            (s.Lint0RemoteIrr ? LapicLint0RemoteIrr : 0) |
            (s.Lint1RemoteIrr ? LapicLint1RemoteIrr : 0));
        p[6] = (byte)s.PendingEvents;
        p[7] = s.StartupVector;
        BinaryPrimitives.WriteUInt64LittleEndian(p[0x08..], s.BaseMsr);
        ReadOnlySpan<uint> words =
        [
            s.X2ApicId, s.Version, s.XApicId, s.LogicalDestination, s.DestinationFormat, s.TaskPriority, s.SpuriousVector,
            s.ErrorStatus, s.PendingErrors, s.InterruptCommandLow, s.InterruptCommandHigh,
            s.LvtCmci, s.LvtTimer, s.LvtThermal, s.LvtPerformanceCounter, s.LvtLint0, s.LvtLint1, s.LvtError,
            s.InitialCount, s.DivideConfiguration,
        ];
        for (int i = 0; i < words.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p[(0x10 + (4 * i))..], words[i]);
        }

        WriteBitmap(p[0x60..], s.Isr);
        WriteBitmap(p[0x80..], s.Tmr);
        WriteBitmap(p[0xA0..], s.Irr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[0xC0..], s.TscDeadline);
        BinaryPrimitives.WriteUInt64LittleEndian(p[0xC8..], s.Tsc);
        BinaryPrimitives.WriteInt64LittleEndian(p[0xD0..], s.TimerElapsedNs);
        BinaryPrimitives.WriteInt64LittleEndian(p[0xD8..], s.TimerExpiresInNs ?? 0);
    }

    private static void WriteBitmap(Span<byte> p, in InterruptBitmap bitmap)
    {
        for (int i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p[(4 * i)..], bitmap.GetChunk(i));
        }
    }

    private static void WriteIoApic(Span<byte> p, IoApicState s)
    {
        p[0] = s.Version;
        p[1] = s.RegisterSelect;
        p[2] = (byte)s.Pins.Length;
        p[3] = s.RetriggerInNs is not null ? IoApicRetriggerArmed : (byte)0;
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], s.Id);
        BinaryPrimitives.WriteInt64LittleEndian(p[8..], s.RetriggerInNs ?? 0);
        for (int i = 0; i < s.Pins.Length; i++)
        {
            Span<byte> pin = p.Slice(IoApicPayloadFixedSize + (IoApicPinSize * i), IoApicPinSize);
            IoApicPinState state = s.Pins[i];
            BinaryPrimitives.WriteUInt64LittleEndian(pin, state.RedirectionEntry);
            pin[8] = state.LineAsserted ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt32LittleEndian(pin[12..], (uint)state.SuccessiveEois);
        }
    }

    /// <summary>Collects sections as they are read, then checks that none is missing.</summary>
    private sealed class Parser
    {
        private MachineConfigurationState? _configuration;
        private long _virtualTime;
        private VcpuState?[] _vcpus = [];
        private LocalApicState?[] _apics = [];
        private IoApicState? _ioApic;

        public bool HasMachine => _configuration is not null;

        public SavedStateReadResult ReadMachine(ReadOnlySpan<byte> p, ushort version, int section)
        {
            int payload = section + SectionHeaderSize;
            if (_configuration is not null)
            {
                return Error(SavedStateFormatError.DuplicateSection, section, "a second machine section");
            }

            if (p.Length < MachinePayloadFixedSize)
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4, $"the machine section has {p.Length} bytes, fewer than {MachinePayloadFixedSize}");
            }

            uint count = BinaryPrimitives.ReadUInt32LittleEndian(p[8..]);
            if (count is < 1 or > MachineOptions.MaxVcpus)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 8, $"vCPU count {count} is outside 1..{MachineOptions.MaxVcpus}");
            }

            // Version 1.0 ends after the APIC IDs; 1.1 appends the frequencies.
            int frequencies = MachinePayloadFixedSize + (4 * (int)count);
            bool hasFrequencies = (version & 0xFF) >= 1;
            int expected = frequencies + (hasFrequencies ? MachineFrequenciesSize : 0);
            if (p.Length != expected)
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4,
                    $"the version {VersionText(version)} machine section has {p.Length} bytes; {count} vCPUs need {expected}");
            }

            long tscFrequency = MachineOptions.DefaultFrequencyHz;
            long timerFrequency = MachineOptions.DefaultFrequencyHz;
            if (hasFrequencies)
            {
                SavedStateReadResult result = ReadFrequency(p, frequencies, payload, "TSC", ref tscFrequency);
                if (result.IsSuccess)
                {
                    result = ReadFrequency(p, frequencies + 8, payload, "APIC timer", ref timerFrequency);
                }

                if (!result.IsSuccess)
                {
                    return result;
                }
            }

            byte flags = p[14];
            if ((flags & ~(MachineForceX2Apic | MachineExtendedDestinationId)) != 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 14, $"machine flags 0x{flags:x2} set reserved bits");
            }

            if (p[15] > (byte)CpuVendor.Amd)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 15, $"CPU vendor {p[15]} is neither 0 (Intel) nor 1 (AMD)");
            }

            var ids = ImmutableArray.CreateBuilder<uint>((int)count);
            for (int i = 0; i < (int)count; i++)
            {
                ids.Add(BinaryPrimitives.ReadUInt32LittleEndian(p[(MachinePayloadFixedSize + (4 * i))..]));
            }

            _virtualTime = BinaryPrimitives.ReadInt64LittleEndian(p);
            _configuration = new MachineConfigurationState
            {
                ApicIds = ids.MoveToImmutable(),
                IoApicVersion = p[12],
                MaxPhysicalAddressBits = p[13],
                ForceX2Apic = (flags & MachineForceX2Apic) != 0,
                ExtendedDestinationId = (flags & MachineExtendedDestinationId) != 0,
                CpuVendor = (CpuVendor)p[15],
                TscFrequencyHz = tscFrequency,
                ApicTimerFrequencyHz = timerFrequency,
            };
            _vcpus = new VcpuState?[count];
            _apics = new LocalApicState?[count];
            return default;
        }

        public SavedStateReadResult ReadVcpu(ReadOnlySpan<byte> p, int section)
        {
            if (p.Length != VcpuPayloadSize)
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4, $"the vCPU section has {p.Length} bytes, not {VcpuPayloadSize}");
            }

            SavedStateReadResult result = ReadIndex(p, section, _vcpus.Length, out int index);
            if (!result.IsSuccess)
            {
                return result;
            }

            if (_vcpus[index] is not null)
            {
                return Error(SavedStateFormatError.DuplicateSection, section, $"a second vCPU section for vCPU {index}");
            }

            // The LAPIC is filled in when the machine is assembled.
            _vcpus[index] = new VcpuState
            {
                RunState = (VcpuRunState)p[4],
                HostState = (VcpuHostState)p[5],
                CodeSegment = BinaryPrimitives.ReadUInt16LittleEndian(p[6..]),
                EntryPoint = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]),
                Apic = Placeholder,
            };
            return default;
        }

        public SavedStateReadResult ReadLocalApic(ReadOnlySpan<byte> p, int section)
        {
            int payload = section + SectionHeaderSize;
            if (p.Length != LocalApicPayloadSize)
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4, $"the LAPIC section has {p.Length} bytes, not {LocalApicPayloadSize}");
            }

            SavedStateReadResult result = ReadIndex(p, section, _apics.Length, out int index);
            if (!result.IsSuccess)
            {
                return result;
            }

            if (_apics[index] is not null)
            {
                return Error(SavedStateFormatError.DuplicateSection, section, $"a second LAPIC section for vCPU {index}");
            }

            byte flags = p[5];
            if ((flags & 0x80) != 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 5, $"LAPIC flags 0x{flags:x2} set reserved bit 7");
            }

            bool armed = (flags & LapicTimerArmed) != 0;
            long expiresIn = BinaryPrimitives.ReadInt64LittleEndian(p[0xD8..]);
            if (!armed && expiresIn != 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 0xD8, "a timer expiry is given but the armed flag is clear");
            }

            _apics[index] = new LocalApicState
            {
                Mode = (ApicMode)p[4],
                X2ApicLocked = (flags & LapicX2ApicLocked) != 0,
                TimerCounting = (flags & LapicTimerCounting) != 0,
                Lint0Asserted = (flags & LapicLint0Asserted) != 0,
                Lint1Asserted = (flags & LapicLint1Asserted) != 0,
                Lint0RemoteIrr = (flags & LapicLint0RemoteIrr) != 0,
                Lint1RemoteIrr = (flags & LapicLint1RemoteIrr) != 0,
                PendingEvents = (ApicEvents)p[6],
                StartupVector = p[7],
                BaseMsr = BinaryPrimitives.ReadUInt64LittleEndian(p[0x08..]),
                X2ApicId = Word(p, 0),
                Version = Word(p, 1),
                XApicId = Word(p, 2),
                LogicalDestination = Word(p, 3),
                DestinationFormat = Word(p, 4),
                TaskPriority = Word(p, 5),
                SpuriousVector = Word(p, 6),
                ErrorStatus = Word(p, 7),
                PendingErrors = Word(p, 8),
                InterruptCommandLow = Word(p, 9),
                InterruptCommandHigh = Word(p, 10),
                LvtCmci = Word(p, 11),
                LvtTimer = Word(p, 12),
                LvtThermal = Word(p, 13),
                LvtPerformanceCounter = Word(p, 14),
                LvtLint0 = Word(p, 15),
                LvtLint1 = Word(p, 16),
                LvtError = Word(p, 17),
                InitialCount = Word(p, 18),
                DivideConfiguration = Word(p, 19),
                Isr = ReadBitmap(p[0x60..]),
                Tmr = ReadBitmap(p[0x80..]),
                Irr = ReadBitmap(p[0xA0..]),
                TscDeadline = BinaryPrimitives.ReadUInt64LittleEndian(p[0xC0..]),
                Tsc = BinaryPrimitives.ReadUInt64LittleEndian(p[0xC8..]),
                TimerElapsedNs = BinaryPrimitives.ReadInt64LittleEndian(p[0xD0..]),
                TimerExpiresInNs = armed ? expiresIn : null,
            };
            return default;
        }

        public SavedStateReadResult ReadIoApic(ReadOnlySpan<byte> p, int section)
        {
            int payload = section + SectionHeaderSize;
            if (_ioApic is not null)
            {
                return Error(SavedStateFormatError.DuplicateSection, section, "a second IOAPIC section");
            }

            if (p.Length < IoApicPayloadFixedSize)
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4, $"the IOAPIC section has {p.Length} bytes, fewer than {IoApicPayloadFixedSize}");
            }

            int pinCount = p[2];
            if (pinCount == 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 2, "the IOAPIC has no pins");
            }

            if (p.Length != IoApicPayloadFixedSize + (IoApicPinSize * pinCount))
            {
                return Error(SavedStateFormatError.LengthMismatch, section + 4,
                    $"the IOAPIC section has {p.Length} bytes; {pinCount} pins need {IoApicPayloadFixedSize + (IoApicPinSize * pinCount)}");
            }

            byte flags = p[3];
            if ((flags & ~IoApicRetriggerArmed) != 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 3, $"IOAPIC flags 0x{flags:x2} set reserved bits");
            }

            long retriggerIn = BinaryPrimitives.ReadInt64LittleEndian(p[8..]);
            if ((flags & IoApicRetriggerArmed) == 0 && retriggerIn != 0)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + 8, "a re-delivery time is given but the armed flag is clear");
            }

            var pins = ImmutableArray.CreateBuilder<IoApicPinState>(pinCount);
            for (int i = 0; i < pinCount; i++)
            {
                int at = IoApicPayloadFixedSize + (IoApicPinSize * i);
                ReadOnlySpan<byte> pin = p.Slice(at, IoApicPinSize);
                if (pin[8] > 1)
                {
                    return Error(SavedStateFormatError.InvalidValue, payload + at + 8, $"pin {i} line level {pin[8]} is neither 0 nor 1");
                }

                if (pin[9] != 0 || pin[10] != 0 || pin[11] != 0)
                {
                    return Error(SavedStateFormatError.InvalidValue, payload + at + 9, $"pin {i} reserved bytes are not 0");
                }

                uint eois = BinaryPrimitives.ReadUInt32LittleEndian(pin[12..]);
                if (eois > int.MaxValue)
                {
                    return Error(SavedStateFormatError.InvalidValue, payload + at + 12, $"pin {i} storm count {eois} is out of range");
                }

                pins.Add(new IoApicPinState(BinaryPrimitives.ReadUInt64LittleEndian(pin), pin[8] != 0, (int)eois));
            }

            _ioApic = new IoApicState
            {
                Version = p[0],
                RegisterSelect = p[1],
                Id = BinaryPrimitives.ReadUInt32LittleEndian(p[4..]),
                Pins = pins.MoveToImmutable(),
                RetriggerInNs = (flags & IoApicRetriggerArmed) != 0 ? retriggerIn : null,
            };
            return default;
        }

        public SavedStateReadResult Finish(ushort formatVersion, int endSection)
        {
            if (_ioApic is null)
            {
                return Error(SavedStateFormatError.MissingSection, endSection, "no IOAPIC section");
            }

            var vcpus = ImmutableArray.CreateBuilder<VcpuState>(_vcpus.Length);
            for (int i = 0; i < _vcpus.Length; i++)
            {
                VcpuState? vcpu = _vcpus[i];
                LocalApicState? apic = _apics[i];
                if (vcpu is null || apic is null)
                {
                    return Error(SavedStateFormatError.MissingSection, endSection, $"no {(vcpu is null ? "vCPU" : "LAPIC")} section for vCPU {i}");
                }

                vcpus.Add(vcpu with { Apic = apic });
            }

            var state = new MachineState
            {
                FormatVersion = formatVersion,
                Configuration = _configuration!,
                VirtualTime = _virtualTime,
                Vcpus = vcpus.MoveToImmutable(),
                IoApic = _ioApic,
            };
            return new SavedStateReadResult(state, SavedStateFormatError.None, 0, null);
        }

        private static readonly LocalApicState Placeholder = new();

        /// <summary>A u64 frequency in Hz at <paramref name="at"/>: 0 means the 1 GHz default (as in 1.0); above 2^63 − 1 is invalid.</summary>
        private static SavedStateReadResult ReadFrequency(ReadOnlySpan<byte> p, int at, int payload, string name, ref long frequency)
        {
            ulong raw = BinaryPrimitives.ReadUInt64LittleEndian(p[at..]);
            if (raw > long.MaxValue)
            {
                return Error(SavedStateFormatError.InvalidValue, payload + at, $"the {name} frequency {raw} Hz does not fit a signed 64-bit number");
            }

            if (raw != 0)
            {
                frequency = (long)raw;
            }

            return default;
        }

        private static SavedStateReadResult ReadIndex(ReadOnlySpan<byte> p, int section, int count, out int index)
        {
            uint raw = BinaryPrimitives.ReadUInt32LittleEndian(p);
            index = (int)Math.Min(raw, int.MaxValue);
            return raw < (uint)count
                ? default
                : Error(SavedStateFormatError.InvalidValue, section + SectionHeaderSize, $"vCPU index {raw} is not below the vCPU count {count}");
        }

        private static uint Word(ReadOnlySpan<byte> p, int index) => BinaryPrimitives.ReadUInt32LittleEndian(p[(0x10 + (4 * index))..]);

        private static InterruptBitmap ReadBitmap(ReadOnlySpan<byte> p)
        {
            InterruptBitmap bitmap = default;
            for (int i = 0; i < 8; i++)
            {
                bitmap.SetChunk(i, BinaryPrimitives.ReadUInt32LittleEndian(p[(4 * i)..]));
            }

            return bitmap;
        }
    }
}
