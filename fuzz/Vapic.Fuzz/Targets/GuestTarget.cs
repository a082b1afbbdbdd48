using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Fuzz.Oracles;
using Vapic.Machine;
using Vapic.Machine.SavedState;
using Vapic.Virtualization;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>guest</c>: the bytes drive a guest. Byte 0 picks the mode (modulo
/// <see cref="ModeRegistry.Known"/>), byte 1 the machine (<see cref="MachineOf"/>), and the rest is a
/// program of <see cref="GuestOperation"/>s: MMIO and MSR accesses to the APIC and IOAPIC, CR8,
/// IPIs (INIT, SIPI, NMI, ...), MSIs, IOAPIC and LINT line changes, accepts, EOIs, time, host
/// scheduling and save/restore. Nothing may throw, and after every step every vCPU's PPR, ISR and
/// IRR must agree (<see cref="ApicInvariants"/>).
/// </summary>
public sealed class GuestTarget : FuzzTarget
{
    /// <summary>Steps run at most; the rest of a longer program is ignored.</summary>
    public const int MaxSteps = 4096;

    /// <summary>
    /// The virtual time one program may advance in total, in ns: with up to four vCPUs each running
    /// a periodic timer of 1 ns, this bounds the expiries one input can cause.
    /// </summary>
    public const long VirtualTimeBudgetNs = 250_000;

    /// <summary>The MSRs a program reaches besides 0x800-0x8FF, by selector 256 and up.</summary>
    public static IReadOnlyList<uint> OtherMsrs { get; } =
        [0x1B, 0x6E0, 0x10, 0xBD, 0x10A, 0x8FF, 0x900, 0xBFF, 0xC00, 0x7FF, 0x3A, 0x48, 0xC000_0080, 0];

    private static readonly string[] s_operationNames = Enum.GetNames<GuestOperation>();
    private static readonly int s_operationCount = s_operationNames.Length;

    /// <inheritdoc/>
    public override string Name => "guest";

    /// <inheritdoc/>
    public override string Description => "byte program of guest accesses and device events on a 1-4 vCPU machine under the mode of byte 0; PPR/ISR/IRR invariants after every step";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input) => Execute(input);

    /// <summary>Runs the program <paramref name="input"/> and returns the machine it ran on.</summary>
    /// <exception cref="FuzzInvariantException">An invariant broke.</exception>
    public static VirtualMachine Execute(ReadOnlySpan<byte> input)
    {
        var reader = new ProgramReader(input);
        string mode = ModeRegistry.Known[reader.Byte() % ModeRegistry.Known.Count];
        var machine = new VirtualMachine(MachineOf(reader.Byte()), ModeRegistry.Create(mode));
        ApicInvariants.Check(machine, "power-on");
        var state = new ProgramState(machine);
        for (int step = 0; step < MaxSteps && !reader.AtEnd; step++)
        {
            var operation = (GuestOperation)(reader.Byte() % s_operationCount);
            Step(ref reader, state, operation);
            ApicInvariants.Check(machine, s_operationNames[(int)operation], step);
        }

        return machine;
    }

    /// <summary>
    /// The machine of shape byte <paramref name="shape"/>: 1 + bits 1:0 vCPUs; bit 2 locked x2APIC;
    /// bit 3 a version 0x11 IOAPIC; bits 5:4 the APIC IDs (0..n-1; even; two clusters; x2APIC-only
    /// IDs); bit 6 AMD; bit 7 a 100 MHz APIC timer clock and a negative TSC offset.
    /// </summary>
    public static MachineOptions MachineOf(byte shape)
    {
        int vcpus = 1 + (shape & 3);
        uint[] ids = ((shape >> 4) & 3) switch
        {
            0 => [0, 1, 2, 3],
            1 => [0, 2, 4, 6],
            2 => [0x10, 0x11, 0x20, 0x2F],
            _ => [0x100, 0xFF, 0x1_0001, 0xFFFF_FFFE],
        };
        return new MachineOptions
        {
            VcpuCount = vcpus,
            ApicIds = ids[..vcpus],
            ForceX2Apic = (shape & 4) != 0,
            IoApicVersion = (shape & 8) != 0 ? (byte)0x11 : (byte)0x20,
            CpuVendor = (shape & 0x40) != 0 ? CpuVendor.Amd : CpuVendor.Intel,
            ApicTimerFrequencyHz = (shape & 0x80) != 0 ? 100_000_000 : MachineOptions.DefaultFrequencyHz,
            TscOffset = (shape & 0x80) != 0 ? -1_000_000 : 0,
        };
    }

    /// <summary>The MSR of selector <paramref name="selector"/>: 0x800 + selector below 256, else <see cref="OtherMsrs"/>.</summary>
    public static uint MsrOf(ushort selector) =>
        selector % (256 + OtherMsrs.Count) is int n && n < 256 ? ApicRegister.X2ApicMsrBase + (uint)n : OtherMsrs[n - 256];

    private static void Step(ref ProgramReader reader, ProgramState state, GuestOperation operation)
    {
        VirtualMachine machine = state.Machine;
        switch (operation)
        {
            case GuestOperation.MmioRead:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                vcpu.ReadMmio(ApicAddress(vcpu, reader.U16()), out _);
                break;
            }

            case GuestOperation.MmioWrite:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                ulong address = ApicAddress(vcpu, reader.U16());
                vcpu.WriteMmio(address, reader.U32());
                break;
            }

            case GuestOperation.RegisterRead:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                GuestRegisters.Read(vcpu, (reader.Byte() & 0x3F) << 4, out _);
                break;
            }

            case GuestOperation.RegisterWrite:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                int offset = (reader.Byte() & 0x3F) << 4;
                GuestRegisters.Write(vcpu, offset, reader.U32());
                break;
            }

            case GuestOperation.IoApicRead:
                machine.IoApic.ReadMmio(IoApicAddress(machine, reader.Byte()), out _);
                break;
            case GuestOperation.IoApicWrite:
            {
                ulong address = IoApicAddress(machine, reader.Byte());
                machine.IoApic.WriteMmio(address, reader.U32());
                break;
            }

            case GuestOperation.IoApicRegisterWrite:
            {
                ulong b = machine.IoApic.BaseAddress;
                machine.IoApic.WriteMmio(b, reader.Byte());
                machine.IoApic.WriteMmio(b + 0x10, reader.U32());
                break;
            }

            case GuestOperation.Rdmsr:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                vcpu.ReadMsr(MsrOf(reader.U16()), out _);
                break;
            }

            case GuestOperation.Wrmsr:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                uint msr = MsrOf(reader.U16());
                vcpu.WriteMsr(msr, reader.U64());
                break;
            }

            case GuestOperation.Cr8Read:
                reader.Vcpu(machine).ReadCr8();
                break;
            case GuestOperation.Cr8Write:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                vcpu.WriteCr8(reader.Byte());
                break;
            }

            case GuestOperation.Ipi:
                SendIpi(ref reader, machine);
                break;
            case GuestOperation.Msi:
            {
                uint address = reader.U24();
                ulong msiAddress = ((address & 0x80_0000) != 0 ? 0xFED0_0000UL : 0xFEE0_0000UL) | (address & 0xF_FFFF);
                machine.SendMsi(msiAddress, reader.U16());
                break;
            }

            case GuestOperation.IrqLine:
            {
                int pin = reader.Byte() % machine.IoApic.PinCount;
                Pulse(reader.Byte() % 3, asserted => machine.SetIrq(pin, asserted));
                break;
            }

            case GuestOperation.Lint:
            {
                LocalApic apic = reader.Vcpu(machine).Apic;
                byte control = reader.Byte();
                int pin = control & 1;
                Pulse(((control >> 1) & 3) % 3, asserted => apic.SetLint(pin, asserted));
                break;
            }

            case GuestOperation.Accept:
                reader.Vcpu(machine).Accept();
                break;
            case GuestOperation.Eoi:
                GuestRegisters.Write(reader.Vcpu(machine), ApicRegister.EoiOffset, 0);
                break;
            case GuestOperation.AdvanceTime:
            {
                long advance = Math.Min(reader.U16(), state.TimeLeftNs);
                state.TimeLeftNs -= advance;
                machine.Advance(advance);
                break;
            }

            case GuestOperation.HostState:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                vcpu.SetHostState((VcpuHostState)(reader.Byte() % 3));
                break;
            }

            case GuestOperation.HypervisorInject:
            {
                Vcpu vcpu = reader.Vcpu(machine);
                state.Mode.InjectFromHypervisor(vcpu, reader.Byte());
                break;
            }

            case GuestOperation.HypervisorNmi:
                state.Mode.InjectNmiFromHypervisor(reader.Vcpu(machine));
                break;
            case GuestOperation.LocalEvent:
            {
                LocalApic apic = reader.Vcpu(machine).Apic;
                if ((reader.Byte() & 1) != 0)
                {
                    apic.RaisePerformanceCounterInterrupt();
                }
                else
                {
                    apic.RaiseThermalInterrupt();
                }

                break;
            }

            case GuestOperation.SaveRestore:
                SaveRestore(state);
                break;
        }
    }

    private static void Pulse(int action, Action<bool> setLine)
    {
        // 0 high, 1 low, 2 pulse (high then low), as the trace's irq and lint commands.
        if (action != 1)
        {
            setLine(true);
        }

        if (action != 0)
        {
            setLine(false);
        }
    }

    private static ulong ApicAddress(Vcpu vcpu, ushort offset)
    {
        ulong page = (offset & 0x8000) != 0 ? 0xFEE0_0000UL : vcpu.Apic.MmioBase;
        return page + (offset & 0x1FFFu);
    }

    private static ulong IoApicAddress(VirtualMachine machine, byte window) =>
        machine.IoApic.BaseAddress + ((window & 0x80) != 0 ? (ulong)(window & 0x7F) : (window & 3) switch
        {
            0 => 0x00UL,
            1 => 0x10UL,
            2 => 0x40UL,
            _ => 0x20UL,
        });

    private static void SendIpi(ref ProgramReader reader, VirtualMachine machine)
    {
        Vcpu vcpu = reader.Vcpu(machine);
        byte vector = reader.Byte();
        byte control = reader.Byte();
        ushort destination = reader.U16();

        // ICR low: vector 7:0, delivery mode 10:8, destination mode 11, level 14, trigger mode 15,
        // shorthand 19:18 (SDM "Interrupt Command Register (ICR)").
        uint low = vector
            | ((uint)(control & 7) << 8)
            | ((uint)(control & 8) << 8)
            | ((uint)(control & 0x10) << 10)
            | ((uint)(control & 0x20) << 10)
            | ((uint)(control >> 6) << 18);
        uint target = vcpu.Apic.Mode == ApicMode.X2Apic
            ? destination == 0xFFFF ? InterruptMessage.X2ApicBroadcast : destination
            : (uint)(destination & 0xFF);
        GuestRegisters.SendIpi(vcpu, low, target);
    }

    private static void SaveRestore(ProgramState state)
    {
        VirtualMachine machine = state.Machine;
        MachineSnapshot before = MachineSnapshot.Of(machine);
        SavedStateResult saved = machine.TrySave(out MachineState? saveState);
        if (!saved.IsSuccess)
        {
            // Only a mode whose host cannot read the guest's interrupt state refuses, and a refusal changes nothing.
            if (MachineSnapshot.Of(machine).DifferenceFrom(before) is string change)
            {
                throw new FuzzInvariantException($"a refused save under {state.Mode.Name} changed the machine: {change}");
            }

            return;
        }

        MachineSnapshot prepared = MachineSnapshot.Of(machine);
        SavedStateResult restored = machine.Restore(saveState!);
        if (!restored.IsSuccess)
        {
            throw new FuzzInvariantException($"a state the machine saved under {state.Mode.Name} does not restore into it: {restored}");
        }

        if (MachineSnapshot.Of(machine).DifferenceFrom(prepared) is string difference)
        {
            throw new FuzzInvariantException($"restoring the machine's own state under {state.Mode.Name} changed it: {difference}");
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot)
    {
        var seeds = new List<FuzzSeed>();
        for (byte mode = 0; mode < ModeRegistry.Known.Count; mode++)
        {
            string name = ModeRegistry.Known[mode];
            seeds.Add(new FuzzSeed($"{name}-xapic-boot.bin", GuestPrograms.XApicBoot(mode)));
            seeds.Add(new FuzzSeed($"{name}-x2apic-devices.bin", GuestPrograms.X2ApicDevices(mode)));
        }

        seeds.Add(new FuzzSeed("emulated-locked-clusters-save-restore.bin", GuestPrograms.LockedSaveRestore(0)));
        seeds.Add(new FuzzSeed("apicv-halted-posted.bin", GuestPrograms.HaltedPosted(1)));
        seeds.Add(new FuzzSeed("avic-halted-doorbell.bin", GuestPrograms.HaltedPosted(2)));
        return seeds;
    }

    private sealed class ProgramState(VirtualMachine machine)
    {
        public VirtualMachine Machine { get; } = machine;

        public VirtualizationMode Mode { get; } = (VirtualizationMode)machine.Virtualization!;

        public long TimeLeftNs { get; set; } = VirtualTimeBudgetNs;
    }

    private ref struct ProgramReader(ReadOnlySpan<byte> input)
    {
        private readonly ReadOnlySpan<byte> _input = input;
        private int _position;

        public readonly bool AtEnd => _position >= _input.Length;

        public byte Byte() => _position < _input.Length ? _input[_position++] : Skip(1);

        public ushort U16() => (ushort)(Byte() | (Byte() << 8));

        public uint U24() => (uint)(Byte() | (Byte() << 8) | (Byte() << 16));

        public uint U32() => U16() | ((uint)U16() << 16);

        public ulong U64() => U32() | ((ulong)U32() << 32);

        public Vcpu Vcpu(VirtualMachine machine) => machine.GetVcpu(Byte() % machine.VcpuCount);

        private byte Skip(int count)
        {
            _position += count;
            return 0;
        }
    }
}
