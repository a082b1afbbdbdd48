using System.Diagnostics.CodeAnalysis;

namespace Vapic.Apic;

/// <summary>
/// An I/O APIC: a redirection table that turns interrupt-pin transitions into interrupt messages
/// for the local APICs (82093AA datasheet; lapic-reference.md §11). Registers are reached
/// indirectly through IOREGSEL and IOWIN; version 0x20 adds the EOI register at base + 0x40.
/// The device holds no reference to any local APIC: messages go through <see cref="IIoApicHost"/>.
/// </summary>
public sealed partial class IoApic
{
    /// <summary>The conventional IOAPIC base address.</summary>
    public const ulong DefaultBase = 0xFEC0_0000;

    /// <summary>The conventional number of pins (GSIs 0–23).</summary>
    public const int DefaultPinCount = 24;

    private readonly IIoApicHost _host;
    private readonly bool _extendedDestinationId;

    // Volatile state: everything Reset() restores.
    private readonly ulong[] _entries;
    private readonly bool[] _lines;
    private readonly int[] _successiveEois;
    private byte _registerSelect;
    private uint _id;
    private long _retriggerDeadline;

    /// <summary>Creates an IOAPIC in its RESET state.</summary>
    /// <param name="host">Routes messages and schedules the storm-guard timer.</param>
    /// <param name="version">0x11 (82093AA style, no EOI register) or 0x20 (with EOI register).</param>
    /// <param name="pinCount">Number of pins, 1 to <see cref="IoApicRegisters.MaxPinCount"/>.</param>
    /// <param name="baseAddress">The 4 KiB-aligned MMIO base.</param>
    /// <param name="extendedDestinationId">
    /// Whether RTE bits 55:49 supply destination bits 14:8 (the Linux/QEMU extended destination ID).
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is outside the documented range.</exception>
    public IoApic(
        IIoApicHost host,
        byte version = IoApicRegisters.Version20,
        int pinCount = DefaultPinCount,
        ulong baseAddress = DefaultBase,
        bool extendedDestinationId = true)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (version is not (IoApicRegisters.Version11 or IoApicRegisters.Version20))
        {
            ThrowArgumentOutOfRange(nameof(version), "The IOAPIC version must be 0x11 or 0x20.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(pinCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pinCount, IoApicRegisters.MaxPinCount);
        if ((baseAddress & (IoApicRegisters.WindowSize - 1)) != 0)
        {
            ThrowArgumentOutOfRange(nameof(baseAddress), "The IOAPIC base must be 4 KiB aligned.");
        }

        _host = host;
        Version = version;
        PinCount = pinCount;
        BaseAddress = baseAddress;
        _extendedDestinationId = extendedDestinationId;
        _entries = new ulong[pinCount];
        _lines = new bool[pinCount];
        _successiveEois = new int[pinCount];
        ResetState();
    }

    /// <summary>The MMIO base address of the 4 KiB register window.</summary>
    public ulong BaseAddress { get; }

    /// <summary>The version register's low byte: 0x11 or 0x20.</summary>
    public byte Version { get; }

    /// <summary>The number of pins (redirection entries).</summary>
    public int PinCount { get; }

    /// <summary>Whether RTE bits 55:49 extend the destination to 15 bits.</summary>
    public bool ExtendedDestinationId => _extendedDestinationId;

    /// <summary>True when this IOAPIC has the EOI register at base + 0x40 (version 0x20).</summary>
    public bool HasEoiRegister => Version == IoApicRegisters.Version20;

    /// <summary>The 4-bit IOAPIC ID (ID register bits 27:24).</summary>
    public byte Id => (byte)(_id >> 24);

    /// <summary>The current IOREGSEL value.</summary>
    public byte RegisterSelect => _registerSelect;

    /// <summary>Statistics; not guest-visible.</summary>
    public IoApicCounters Counters { get; } = new();

    /// <summary>True when <paramref name="address"/> lies inside the 4 KiB window at <see cref="BaseAddress"/>.</summary>
    public bool Decodes(ulong address) => address - BaseAddress < IoApicRegisters.WindowSize;

    /// <summary>
    /// A 32-bit MMIO read. IOREGSEL and IOWIN read their contents; the EOI register is write-only and
    /// every other offset reads 0.
    /// </summary>
    /// <returns><see cref="ApicAccessResult.Unmapped"/> (value 0) outside the window, otherwise Ok.</returns>
    public ApicAccessResult ReadMmio(ulong address, out uint value)
    {
        if (!Decodes(address))
        {
            value = 0;
            return ApicAccessResult.Unmapped;
        }

        value = (address - BaseAddress) switch
        {
            IoApicRegisters.RegisterSelectOffset => _registerSelect,
            IoApicRegisters.WindowOffset => ReadRegister(_registerSelect),
            _ => 0,
        };
        return ApicAccessResult.Ok;
    }

    /// <summary>
    /// A 32-bit MMIO write. IOREGSEL keeps bits 7:0; IOWIN writes the selected register; the EOI
    /// register (version 0x20 only) ends the interrupt whose vector is in bits 7:0. Writes elsewhere
    /// in the window, and to base + 0x40 on version 0x11, are ignored.
    /// </summary>
    /// <returns><see cref="ApicAccessResult.Unmapped"/> outside the window, otherwise Ok.</returns>
    public ApicAccessResult WriteMmio(ulong address, uint value)
    {
        if (!Decodes(address))
        {
            return ApicAccessResult.Unmapped;
        }

        switch (address - BaseAddress)
        {
            case IoApicRegisters.RegisterSelectOffset:
                _registerSelect = (byte)value;
                break;
            case IoApicRegisters.WindowOffset:
                WriteRegister(_registerSelect, value);
                break;
            case IoApicRegisters.EoiOffset:
                WriteEoiRegister((byte)value);
                break;
        }

        return ApicAccessResult.Ok;
    }

    /// <summary>Reads indirect register <paramref name="index"/> (what IOWIN returns when IOREGSEL = index).</summary>
    public uint ReadRegister(byte index)
    {
        switch (index)
        {
            case IoApicRegisters.IdIndex:
                return _id;
            case IoApicRegisters.VersionIndex:
                return Version | ((uint)(PinCount - 1) << 16);
            case IoApicRegisters.ArbitrationIdIndex:
                // KVM and QEMU report the ID as the arbitration ID (no APIC-bus arbitration is modelled).
                return _id;
        }

        if (TryGetEntryIndex(index, out int pin))
        {
            ulong entry = _entries[pin];
            return (index & 1) == 0 ? (uint)entry : (uint)(entry >> 32);
        }

        // A24: KVM returns all ones for indices that name no register.
        return IoApicRegisters.UnimplementedValue;
    }

    /// <summary>
    /// Writes indirect register <paramref name="index"/> (what IOWIN does when IOREGSEL = index).
    /// Only ID bits 27:24 and the redirection entries are writable; version, arbitration ID and
    /// unimplemented indices ignore writes.
    /// </summary>
    public void WriteRegister(byte index, uint value)
    {
        if (index == IoApicRegisters.IdIndex)
        {
            _id = value & IoApicRegisters.IdMask;
            return;
        }

        if (TryGetEntryIndex(index, out int pin))
        {
            WriteEntry(pin, highDword: (index & 1) != 0, value);
        }
    }

    /// <summary>The raw redirection entry of <paramref name="pin"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pin"/> is not below <see cref="PinCount"/>.</exception>
    public ulong GetRedirectionEntry(int pin)
    {
        ValidatePin(pin);
        return _entries[pin];
    }

    /// <summary>
    /// Power-on RESET: every entry masked (0x0001_0000), IOREGSEL 0, ID 0, all lines deasserted,
    /// storm counters cleared and no deferred re-delivery (KVM <c>kvm_ioapic_reset</c>, QEMU).
    /// <see cref="Counters"/> keep counting.
    /// </summary>
    public void Reset()
    {
        bool hadDeadline = _retriggerDeadline != long.MaxValue;
        ResetState();
        if (hadDeadline)
        {
            _host.TimerChanged(this);
        }
    }

    private void ResetState()
    {
        Array.Fill(_entries, RedirectionEntry.ResetValue);
        Array.Clear(_lines);
        Array.Clear(_successiveEois);
        _registerSelect = 0;
        _id = 0;
        _retriggerDeadline = long.MaxValue;
    }

    private bool TryGetEntryIndex(byte index, out int pin)
    {
        pin = (index - IoApicRegisters.RedirectionTableIndex) >> 1;
        return index >= IoApicRegisters.RedirectionTableIndex && pin < PinCount;
    }

    private void ValidatePin(int pin)
    {
        if ((uint)pin >= (uint)PinCount)
        {
            ThrowArgumentOutOfRange(nameof(pin), "The pin number must be below PinCount.");
        }
    }

    [DoesNotReturn]
    private static void ThrowArgumentOutOfRange(string paramName, string message) =>
        throw new ArgumentOutOfRangeException(paramName, message);
}
