using System.Buffers.Binary;
using Vapic.Apic;

namespace Vapic.Fuzz.Targets;

/// <summary>Writes <c>guest</c> programs (see <see cref="GuestOperation"/>) for the seeds and the tests.</summary>
public sealed class GuestProgramBuilder
{
    private readonly List<byte> _bytes = [];

    /// <summary>Starts a program for mode index <paramref name="mode"/> and machine shape <paramref name="shape"/> (<see cref="GuestTarget.MachineOf"/>).</summary>
    public GuestProgramBuilder(byte mode, byte shape)
    {
        _bytes.Add(mode);
        _bytes.Add(shape);
    }

    /// <summary>The program so far.</summary>
    public byte[] ToArray() => [.. _bytes];

    /// <summary>Writes a register through the interface the APIC's mode uses.</summary>
    public GuestProgramBuilder Register(byte cpu, int offset, uint value) => Op(GuestOperation.RegisterWrite, cpu, (byte)(offset >> 4)).U32(value);

    /// <summary>Reads a register through the interface the APIC's mode uses.</summary>
    public GuestProgramBuilder ReadRegister(byte cpu, int offset) => Op(GuestOperation.RegisterRead, cpu, (byte)(offset >> 4));

    /// <summary>An MMIO write at <paramref name="offset"/> in the APIC page at its current base.</summary>
    public GuestProgramBuilder MmioWrite(byte cpu, ushort offset, uint value) => Op(GuestOperation.MmioWrite, cpu).U16(offset).U32(value);

    /// <summary>An MMIO read at <paramref name="offset"/> in the APIC page at its current base.</summary>
    public GuestProgramBuilder MmioRead(byte cpu, ushort offset) => Op(GuestOperation.MmioRead, cpu).U16(offset);

    /// <summary>WRMSR of <paramref name="msr"/>, which must be 0x800-0x8FF or in <see cref="GuestTarget.OtherMsrs"/>.</summary>
    public GuestProgramBuilder Wrmsr(byte cpu, uint msr, ulong value) => Op(GuestOperation.Wrmsr, cpu).U16(Selector(msr)).U64(value);

    /// <summary>RDMSR of <paramref name="msr"/>, numbered as <see cref="Wrmsr"/>.</summary>
    public GuestProgramBuilder Rdmsr(byte cpu, uint msr) => Op(GuestOperation.Rdmsr, cpu).U16(Selector(msr));

    /// <summary>MOV to CR8.</summary>
    public GuestProgramBuilder Cr8(byte cpu, byte value) => Op(GuestOperation.Cr8Write, cpu, value);

    /// <summary>An IPI: <paramref name="control"/> as <see cref="GuestOperation.Ipi"/> describes it.</summary>
    public GuestProgramBuilder Ipi(byte cpu, byte vector, DeliveryMode mode, ushort destination, DestinationShorthand shorthand = DestinationShorthand.None, bool logical = false, bool level = false) =>
        Op(GuestOperation.Ipi, cpu, vector, (byte)((byte)mode | (logical ? 8 : 0) | 0x10 | (level ? 0x20 : 0) | ((byte)shorthand << 6))).U16(destination);

    /// <summary>An edge MSI with <paramref name="vector"/> to physical APIC ID <paramref name="destination"/>.</summary>
    public GuestProgramBuilder Msi(byte destination, byte vector, DeliveryMode mode = DeliveryMode.Fixed) =>
        Op(GuestOperation.Msi).U24((uint)destination << 12).U16((ushort)(vector | ((int)mode << 8)));

    /// <summary>IOREGSEL = <paramref name="index"/>, IOWIN = <paramref name="value"/>.</summary>
    public GuestProgramBuilder IoApicRegister(byte index, uint value) => Op(GuestOperation.IoApicRegisterWrite, index).U32(value);

    /// <summary>Reads IOWIN (window 1).</summary>
    public GuestProgramBuilder IoApicReadWindow() => Op(GuestOperation.IoApicRead, 1);

    /// <summary>Writes the IOAPIC EOI register (window 2).</summary>
    public GuestProgramBuilder IoApicEoi(byte vector) => Op(GuestOperation.IoApicWrite, 2).U32(vector);

    /// <summary>An IOAPIC input line: 0 high, 1 low, 2 pulse.</summary>
    public GuestProgramBuilder Irq(byte pin, byte action) => Op(GuestOperation.IrqLine, pin, action);

    /// <summary>A LINT pin: 0 high, 1 low, 2 pulse.</summary>
    public GuestProgramBuilder Lint(byte cpu, int pin, byte action) => Op(GuestOperation.Lint, cpu, (byte)(pin | (action << 1)));

    /// <summary>The CPU takes its highest-priority pending event.</summary>
    public GuestProgramBuilder Accept(byte cpu) => Op(GuestOperation.Accept, cpu);

    /// <summary>EOI.</summary>
    public GuestProgramBuilder Eoi(byte cpu) => Op(GuestOperation.Eoi, cpu);

    /// <summary>Advances virtual time.</summary>
    public GuestProgramBuilder Time(ushort nanoseconds) => Op(GuestOperation.AdvanceTime).U16(nanoseconds);

    /// <summary>Host scheduling: 0 running, 1 preempted, 2 halted.</summary>
    public GuestProgramBuilder Host(byte cpu, byte state) => Op(GuestOperation.HostState, cpu, state);

    /// <summary>The hypervisor injects a fixed interrupt.</summary>
    public GuestProgramBuilder Inject(byte cpu, byte vector) => Op(GuestOperation.HypervisorInject, cpu, vector);

    /// <summary>The hypervisor injects an NMI.</summary>
    public GuestProgramBuilder InjectNmi(byte cpu) => Op(GuestOperation.HypervisorNmi, cpu);

    /// <summary>A thermal (0) or performance-counter (1) interrupt.</summary>
    public GuestProgramBuilder LocalEvent(byte cpu, byte source) => Op(GuestOperation.LocalEvent, cpu, source);

    /// <summary>Save the machine and restore it.</summary>
    public GuestProgramBuilder SaveRestore() => Op(GuestOperation.SaveRestore);

    private GuestProgramBuilder Op(GuestOperation operation, params ReadOnlySpan<byte> operands)
    {
        _bytes.Add((byte)operation);
        foreach (byte operand in operands)
        {
            _bytes.Add(operand);
        }

        return this;
    }

    private GuestProgramBuilder U16(ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        _bytes.AddRange(bytes);
        return this;
    }

    private GuestProgramBuilder U24(uint value)
    {
        U16((ushort)value);
        _bytes.Add((byte)(value >> 16));
        return this;
    }

    private GuestProgramBuilder U32(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        _bytes.AddRange(bytes);
        return this;
    }

    private GuestProgramBuilder U64(ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        _bytes.AddRange(bytes);
        return this;
    }

    private static ushort Selector(uint msr)
    {
        if (msr is >= ApicRegister.X2ApicMsrBase and < ApicRegister.X2ApicMsrBase + 256)
        {
            return (ushort)(msr - ApicRegister.X2ApicMsrBase);
        }

        for (int i = 0; i < GuestTarget.OtherMsrs.Count; i++)
        {
            if (GuestTarget.OtherMsrs[i] == msr)
            {
                return (ushort)(256 + i);
            }
        }

        throw new ArgumentOutOfRangeException(nameof(msr), msr, "not an MSR a guest program reaches");
    }
}
