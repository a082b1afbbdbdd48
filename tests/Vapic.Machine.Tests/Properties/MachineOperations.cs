using System.Text;
using CsCheck;
using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// How one vCPU is set up through guest accesses: its APIC mode, an xAPIC ID and LDR/DFR written
/// through MMIO, and SVR. Raw generated numbers are interpreted here so that shrinking stays simple.
/// </summary>
internal readonly record struct VcpuConfig(int ModeChoice, byte XApicId, bool WriteId, byte Ldr, int DfrChoice, int SvrChoice, bool Started = true)
{
    public static readonly Gen<VcpuConfig> Generator =
        Gen.Select(Gen.Int[0, 9], Gen.Frequency((3, Gen.Byte[0, 7]), (1, Gen.Byte)), Gen.Bool, Gen.Byte, Gen.Int[0, 3], Gen.Int[0, 9], Gen.Int[0, 4],
            (mode, id, writeId, ldr, dfr, svr, started) => new VcpuConfig(mode, id, writeId, ldr, dfr, svr, started != 0));

    public static VcpuConfig FromRaw(uint a, uint b) =>
        new((int)(a % 10), (byte)(a >> 8), ((a >> 16) & 1) != 0, (byte)b, (int)((b >> 8) % 4), (int)((b >> 16) % 10));

    public ApicMode Mode => ModeChoice < 5 ? ApicMode.XApic : ModeChoice < 8 ? ApicMode.X2Apic : ApicMode.Disabled;

    /// <summary>The configuration as the platform allows it: locked x2APIC never leaves x2APIC; without VER[24] SVR bit 12 does not exist.</summary>
    public VcpuConfig For(MachineOptions options) => this with
    {
        ModeChoice = options.ForceX2Apic ? 5 : ModeChoice,
        SvrChoice = options.IoApicVersion == 0x11 && SvrChoice == 9 ? 0 : SvrChoice,
    };

    /// <summary>Flat (most), cluster, or a model that is neither (matches nothing but the broadcast).</summary>
    public uint Dfr => DfrChoice switch
    {
        2 => 0x0FFF_FFFFu,
        3 => 0x5FFF_FFFFu,
        _ => 0xFFFF_FFFFu,
    };

    /// <summary>Software-enabled (most), software-disabled, or enabled with EOI-broadcast suppression.</summary>
    public uint Svr => SvrChoice switch
    {
        7 or 8 => 0xFFu,
        9 => 0x11FFu,
        _ => 0x1FFu,
    };

    /// <summary>Applies the configuration to <paramref name="cpu"/> with guest accesses only.</summary>
    public void Apply(Vcpu cpu)
    {
        switch (Mode)
        {
            case ApicMode.XApic:
                cpu.EnterXApic();
                if (WriteId)
                {
                    cpu.Write(Reg.Id, (uint)XApicId << 24);
                }

                cpu.Write(Reg.LogicalDestination, (uint)Ldr << 24);
                cpu.Write(Reg.DestinationFormat, Dfr);
                cpu.Write(Reg.SpuriousVector, Svr);
                break;
            case ApicMode.X2Apic:
                if (cpu.Mode() != ApicMode.X2Apic)
                {
                    cpu.EnterXApic();

                    // Values written in xAPIC mode must not leak into x2APIC routing.
                    cpu.Write(Reg.LogicalDestination, (uint)Ldr << 24);
                    cpu.EnterX2Apic();
                }

                cpu.WrMsr(Msr.X2ApicSpuriousVector, Svr);
                break;
            default:
                if (cpu.Mode() != ApicMode.Disabled)
                {
                    cpu.WriteRegister(Reg.SpuriousVector, Svr);
                    cpu.DisableGlobally();
                }

                break;
        }
    }
}

/// <summary>A machine: vCPU count, an APIC ID scheme and one configuration per vCPU.</summary>
internal sealed record MachineSpec(int VcpuCount, int IdScheme, VcpuConfig[] Configs, int Platform = 2)
{
    /// <summary>
    /// Machines of 1-64 vCPUs; 1 in 8 with locked x2APIC, 1 in 8 with a version 0x11 IOAPIC.
    /// <paramref name="ldrAliases"/> adds x2APIC IDs whose derived LDRs coincide.
    /// </summary>
    public static Gen<MachineSpec> Generator(bool ldrAliases = false) =>
        Gen.Select(Gen.Int[1, 64], Gen.Int[0, ldrAliases ? 8 : 7], VcpuConfig.Generator.Array[64], Gen.Int[0, 7],
            (n, scheme, configs, platform) => new MachineSpec(n, scheme, configs, platform));

    public MachineOptions Options => new()
    {
        VcpuCount = VcpuCount,
        ApicIds = Ids(),
        ForceX2Apic = Platform == 0,
        IoApicVersion = Platform == 1 ? (byte)0x11 : (byte)0x20,
    };

    /// <summary>
    /// The initial APIC IDs: 0..n-1 (half of the time), small strides, strides that need x2APIC,
    /// spread-out 32-bit IDs, and (scheme 8) pairs i and i + 0x10_0000 whose derived x2APIC LDRs are equal.
    /// </summary>
    public uint[]? Ids()
    {
        if (IdScheme < 4)
        {
            return null;
        }

        var ids = new uint[VcpuCount];
        for (int i = 0; i < VcpuCount; i++)
        {
            ulong id = IdScheme switch
            {
                4 => (2UL * (ulong)i) + 1,
                5 => 0x10UL * (ulong)i,
                6 => (0x101UL * (ulong)i) + 0x7F,
                7 => ((ulong)i * 0x9E37_79B1UL) % 0xFFFF_FFFFUL,
                _ => ((ulong)(i / 2) * 3) + ((ulong)(i % 2) * 0x10_0000),
            };
            ids[i] = (uint)id;
        }

        return ids;
    }

    public VirtualMachine Build()
    {
        MachineOptions options = Options;
        var machine = new VirtualMachine(options);
        for (int i = 1; i < VcpuCount; i++)
        {
            if (Configs[i].Started)
            {
                machine.StartAp(i, (byte)i);
            }
        }

        for (int i = 0; i < VcpuCount; i++)
        {
            Configs[i].For(options).Apply(machine.GetVcpu(i));
        }

        return machine;
    }

    public override string ToString() =>
        $"MachineSpec {{ VcpuCount = {VcpuCount}, IdScheme = {IdScheme}, Platform = {Platform}, Configs = [{string.Join(", ", Configs.Take(VcpuCount))}] }}";
}

/// <summary>How a generated destination is chosen; resolved against the machine when the operation runs.</summary>
internal static class DestinationSelector
{
    /// <summary>
    /// Resolves <paramref name="raw"/>: the physical ID or logical ID of some vCPU, the union of two
    /// logical IDs, 0xFF, 0xFFFF_FFFF, a random byte, a random 32-bit value, or an x2APIC cluster value.
    /// </summary>
    public static uint Resolve(uint raw, ApicView[] views)
    {
        int n = views.Length;
        ApicView a = views[(int)((raw >> 4) % (uint)n)];
        ApicView b = views[(int)((raw >> 12) % (uint)n)];
        return (raw & 0xF) switch
        {
            0 or 1 or 2 => a.Id,
            3 or 4 => LogicalId(a),
            5 => LogicalId(a) | LogicalId(b),
            6 => 0xFF,
            7 => 0xFFFF_FFFF,
            8 or 9 => raw >> 24,
            10 => raw,
            11 => (a.Ldr & 0xFFFF_0000) | (raw >> 16),
            12 => a.Id & 0xFF,
            _ => (raw >> 20) & 0xF,
        };
    }

    private static uint LogicalId(in ApicView view) => view.Mode == ApicMode.XApic ? view.Ldr >> 24 : view.Ldr;
}

/// <summary>Vectors: usually from a small palette so that merges, priorities and pin vectors interact.</summary>
internal static class VectorSelector
{
    private static readonly byte[] s_palette = [0x20, 0x21, 0x31, 0x40, 0x41, 0x4F, 0x51, 0x80, 0x90, 0x91, 0xC4, 0xFF];

    public static byte Resolve(uint raw) => (raw & 7) == 0 ? (byte)(raw >> 8) : s_palette[(raw >> 3) % (uint)s_palette.Length];
}

internal enum OpKind : byte
{
    Ipi,
    SelfIpi,
    Msi,
    Irq,
    Rte,
    IoApicEoi,
    Accept,
    Eoi,
    Tpr,
    Svr,
    Timer,
    Advance,
    Reconfigure,
}

/// <summary>One random operation; <see cref="Cpu"/> is taken modulo the vCPU count.</summary>
internal readonly record struct Op(OpKind Kind, int Cpu, uint A, uint B, uint C)
{
    public static readonly Gen<OpKind> KindGenerator = Gen.Frequency(
        (12, Gen.Const(OpKind.Ipi)),
        (2, Gen.Const(OpKind.SelfIpi)),
        (8, Gen.Const(OpKind.Msi)),
        (6, Gen.Const(OpKind.Irq)),
        (4, Gen.Const(OpKind.Rte)),
        (1, Gen.Const(OpKind.IoApicEoi)),
        (12, Gen.Const(OpKind.Accept)),
        (8, Gen.Const(OpKind.Eoi)),
        (3, Gen.Const(OpKind.Tpr)),
        (2, Gen.Const(OpKind.Svr)),
        (3, Gen.Const(OpKind.Timer)),
        (4, Gen.Const(OpKind.Advance)),
        (2, Gen.Const(OpKind.Reconfigure)));

    public static readonly Gen<Op> Generator =
        Gen.Select(KindGenerator, Gen.Int[0, 63], Gen.UInt, Gen.UInt, Gen.UInt, (k, cpu, a, b, c) => new Op(k, cpu, a, b, c));
}

/// <summary>What an operation sent, so that a checker can compute its expected effect.</summary>
internal sealed class OpEffect
{
    /// <summary>Messages the operation put on the bus itself (IPI, SELF IPI, MSI).</summary>
    public readonly List<InterruptMessage> Messages = [];

    /// <summary>The IOAPIC pin whose messages this operation may cause, or -1.</summary>
    public int Pin = -1;

    /// <summary>For an accept: what the CPU took.</summary>
    public CpuEvent Accepted;
}

/// <summary>
/// Runs <see cref="Op"/>s against a machine through guest accesses (MMIO, MSR, accept), devices
/// (IRQ lines, MSI writes) and time. Optionally writes every observation to a log.
/// </summary>
internal sealed class MachineDriver
{
    public const int Pins = 4;

    private readonly StringBuilder? _log;

    public MachineDriver(MachineSpec spec, StringBuilder? log = null)
    {
        Spec = spec;
        Machine = spec.Build();
        _log = log;
        Views = ApicView.ObserveAll(Machine);
    }

    public MachineSpec Spec { get; }

    public VirtualMachine Machine { get; }

    public int N => Machine.VcpuCount;

    /// <summary>The APIC views as of the end of the last operation.</summary>
    public ApicView[] Views { get; private set; }

    /// <summary>Each pin has its own vector so that an EOI names at most one pin.</summary>
    public static byte PinVector(int pin) => (byte)(0x90 + pin);

    /// <summary>The message the IOAPIC sends for <paramref name="pin"/>, decoded from its RTE by the test.</summary>
    public InterruptMessage PinMessage(int pin)
    {
        ulong rte = Machine.IoApic.GetRedirectionEntry(pin);
        uint destination = (uint)(rte >> 56) | ((uint)((rte >> 49) & 0x7F) << 8);
        return new InterruptMessage(
            (byte)rte,
            (DeliveryMode)((rte >> 8) & 7),
            ((rte >> 11) & 1) != 0 ? DestinationMode.Logical : DestinationMode.Physical,
            destination,
            DestinationShorthand.None,
            LevelTriggered: ((rte >> 15) & 1) != 0,
            Assert: true,
            RedirectionHint: false,
            InterruptSource.IoApic,
            SourceVcpu: -1);
    }

    public OpEffect Run(Op op)
    {
        var effect = new OpEffect();
        int cpuIndex = op.Cpu % N;
        Vcpu cpu = Machine.GetVcpu(cpuIndex);
        ApicMode mode = Views[cpuIndex].Mode;
        switch (op.Kind)
        {
            case OpKind.Ipi:
                SendIpi(cpuIndex, cpu, mode, op, effect);
                break;
            case OpKind.SelfIpi:
                {
                    byte vector = VectorSelector.Resolve(op.A);
                    ApicAccessResult r = cpu.WriteMsr(Msr.X2ApicSelfIpi, vector);
                    Log($"selfipi {cpuIndex} {vector:x2} {r}");
                    Assert.Equal(mode == ApicMode.X2Apic ? ApicAccessResult.Ok : ApicAccessResult.GeneralProtection, r);
                    if (r == ApicAccessResult.Ok)
                    {
                        effect.Messages.Add(new InterruptMessage(vector, DeliveryMode.Fixed, DestinationMode.Physical, Views[cpuIndex].Id,
                            DestinationShorthand.Self, false, true, false, InterruptSource.Ipi, cpuIndex));
                    }

                    break;
                }

            case OpKind.Msi:
                SendMsi(op, effect);
                break;
            case OpKind.Irq:
                {
                    int pin = (int)(op.A % Pins);
                    effect.Pin = pin;
                    Log($"irq {pin} {WorkloadDriver.DriveIrq(Machine, pin, op.B)}");
                    break;
                }

            case OpKind.Rte:
                ProgramRte(cpu, op, effect);
                break;
            case OpKind.IoApicEoi:
                {
                    int pin = (int)(op.A % Pins);
                    effect.Pin = pin;
                    ApicAccessResult r = cpu.WriteMmio(TestGuest.IoApicBase + 0x40, PinVector(pin));
                    Log($"ioapic-eoi {pin} {r}");
                    break;
                }

            case OpKind.Accept:
                effect.Accepted = cpu.Accept();
                Log($"accept {cpuIndex} = {effect.Accepted}");
                break;
            case OpKind.Eoi:
                {
                    // The EOI'd vector's pin (if it is a pin vector) may re-deliver.
                    int highest = cpu.Apic.Isr.Highest();
                    effect.Pin = highest >= 0x90 && highest < 0x90 + Pins ? highest - 0x90 : -1;
                    ApicAccessResult r = mode == ApicMode.X2Apic
                        ? cpu.WriteMsr(Msr.X2ApicEoi, 0)
                        : cpu.WriteMmio(TestGuest.ApicBase + Reg.Eoi, op.A);
                    Log($"eoi {cpuIndex} {r}");
                    break;
                }

            case OpKind.Tpr:
                {
                    // Mostly low priorities, so that interrupts keep flowing; sometimes anything.
                    uint tpr = (op.B >> 8) % 4 == 0 ? op.B & 0xFF : op.B & 0x3F;
                    ApicAccessResult r = (op.A & 1) == 0
                        ? WriteRegister(cpu, mode, Reg.TaskPriority, tpr)
                        : cpu.WriteCr8(tpr >> 4);
                    Log($"tpr {cpuIndex} {r}");
                    break;
                }

            case OpKind.Svr:
                {
                    uint svr = VcpuConfig.FromRaw(op.A, op.B).For(Machine.Options).Svr;
                    ApicAccessResult r = WriteRegister(cpu, mode, Reg.SpuriousVector, svr);
                    Log($"svr {cpuIndex} {svr:x} {r}");
                    break;
                }

            case OpKind.Timer:
                ArmTimer(cpuIndex, cpu, mode, op);
                break;
            case OpKind.Advance:
                {
                    long next = Machine.NextTimerDeadline;
                    if ((op.A & 3) == 0 && next != long.MaxValue && next - Machine.Now <= 1_000_000)
                    {
                        Machine.AdvanceTo(next);
                    }
                    else
                    {
                        Machine.Advance(op.B % 5000);
                    }

                    Log($"time {Machine.Now}");
                    break;
                }

            case OpKind.Reconfigure:
                VcpuConfig.FromRaw(op.A, op.B).For(Machine.Options).Apply(cpu);
                Log($"reconfigure {cpuIndex}");
                break;
        }

        Views = ApicView.ObserveAll(Machine);
        return effect;
    }

    private void SendIpi(int index, Vcpu cpu, ApicMode mode, Op op, OpEffect effect)
    {
        byte vector = VectorSelector.Resolve(op.A);
        uint b = op.B;
        (DeliveryMode deliveryMode, bool deassert) = (b % 32) switch
        {
            < 14 => (DeliveryMode.Fixed, false),
            < 19 => (DeliveryMode.LowestPriority, false),
            19 => (DeliveryMode.Smi, false),
            < 23 => (DeliveryMode.Nmi, false),
            23 => (DeliveryMode.Init, false),
            24 => (DeliveryMode.Init, true),
            < 27 => (DeliveryMode.StartUp, false),
            27 => (DeliveryMode.ExtInt, false),
            28 => (DeliveryMode.Reserved3, false),
            _ => (DeliveryMode.Fixed, false),
        };
        uint shorthand = ((b >> 5) % 8) switch
        {
            5 => 1u,
            6 => 2u,
            7 => 3u,
            _ => 0u,
        };
        uint logical = (b >> 8) & 1;
        uint level = deassert ? 0 : ((b >> 9) % 4 == 0 ? 0u : 1u);
        uint trigger = deassert ? 1 : (b >> 11) & 1;
        uint low = vector | ((uint)deliveryMode << 8) | (logical << 11) | (level << 14) | (trigger << 15) | (shorthand << 18);
        uint destination = DestinationSelector.Resolve(op.C, Views);

        ApicAccessResult r;
        if (mode == ApicMode.X2Apic)
        {
            r = cpu.WriteMsr(Msr.X2ApicInterruptCommand, ((ulong)destination << 32) | low);
        }
        else
        {
            destination &= 0xFF;
            r = cpu.WriteMmio(TestGuest.ApicBase + Reg.InterruptCommandHigh, destination << 24);
            if (r == ApicAccessResult.Ok)
            {
                r = cpu.WriteMmio(TestGuest.ApicBase + Reg.InterruptCommandLow, low);
            }
        }

        Log($"ipi {index} {destination:x} {low:x} {r}");
        Assert.Equal(mode == ApicMode.Disabled ? ApicAccessResult.Unmapped : ApicAccessResult.Ok, r);
        if (r != ApicAccessResult.Ok || deliveryMode is DeliveryMode.Reserved3 or DeliveryMode.ExtInt)
        {
            return; // 011 and 111 are not IPIs (lapic-reference §10)
        }

        effect.Messages.Add(new InterruptMessage(vector, deliveryMode,
            logical != 0 ? DestinationMode.Logical : DestinationMode.Physical, destination, (DestinationShorthand)shorthand,
            LevelTriggered: false, Assert: !(deliveryMode == DeliveryMode.Init && level == 0 && trigger == 1),
            RedirectionHint: false, InterruptSource.Ipi, index));
    }

    private void SendMsi(Op op, OpEffect effect)
    {
        byte vector = VectorSelector.Resolve(op.A);
        uint b = op.B;
        var deliveryMode = (DeliveryMode)((b % 32) switch
        {
            < 16 => 0u,
            < 22 => 1u,
            22 => 2u,
            23 or 24 => 4u,
            25 => 5u,
            26 or 27 => 7u,
            28 => 3u,
            29 => 6u,
            _ => 0u,
        });
        bool level = ((b >> 5) & 1) != 0;
        bool logical = ((b >> 6) & 1) != 0;
        bool redirectionHint = ((b >> 7) & 3) == 0;
        uint destination = DestinationSelector.Resolve(op.C, Views) & 0x7FFF;

        // SDM "Message Address Register Format" plus the extended destination ID in bits 11:5.
        ulong address = 0xFEE0_0000UL | ((ulong)(destination & 0xFF) << 12) | ((ulong)(destination >> 8) << 5) |
            (redirectionHint ? 8UL : 0) | (logical ? 4UL : 0);
        uint data = vector | ((uint)deliveryMode << 8) | (level ? 0xC000u : 0);
        MsiDecodeResult r = Machine.SendMsi(address, data);
        Log($"msi {address:x} {data:x} {r}");
        bool reserved = deliveryMode is DeliveryMode.Reserved3 or DeliveryMode.StartUp;
        Assert.Equal(reserved ? MsiDecodeResult.ReservedDeliveryMode : MsiDecodeResult.Ok, r);
        if (!reserved)
        {
            effect.Messages.Add(new InterruptMessage(vector, deliveryMode, logical ? DestinationMode.Logical : DestinationMode.Physical,
                destination, DestinationShorthand.None, level, true, redirectionHint, InterruptSource.Msi, -1));
        }
    }

    private void ProgramRte(Vcpu cpu, Op op, OpEffect effect)
    {
        int pin = (int)(op.A % Pins);
        effect.Pin = pin;
        uint b = op.B;
        uint deliveryMode = (b % 16) switch
        {
            < 8 => 0u,
            < 11 => 1u,
            11 => 2u,
            12 => 4u,
            13 => 5u,
            14 => 7u,
            _ => (b & 0x1000) != 0 ? 3u : 6u,
        };
        uint low = PinVector(pin) | (deliveryMode << 8) | (((b >> 4) & 1) << 11) | (((b >> 5) & 1) << 15) | ((b >> 6) % 4 == 0 ? 1u << 16 : 0);
        uint destination = DestinationSelector.Resolve(op.C, Views) & 0x7FFF;
        uint high = ((destination & 0xFF) << 24) | ((destination >> 8) << 17);

        // Masked first, so that only the final entry can deliver (a write to an asserted level pin delivers).
        cpu.IoApicWrite(TestGuest.RteLow(pin), low | (1u << 16));
        cpu.IoApicWrite(TestGuest.RteHigh(pin), high);
        cpu.IoApicWrite(TestGuest.RteLow(pin), low);
        Log($"rte {pin} {high:x8}{low:x8}");
    }

    private void ArmTimer(int index, Vcpu cpu, ApicMode mode, Op op)
    {
        if (mode == ApicMode.Disabled)
        {
            Assert.Equal(ApicAccessResult.Unmapped, cpu.WriteMmio(TestGuest.ApicBase + Reg.LvtTimer, 0x30));
            return;
        }

        byte vector = VectorSelector.Resolve(op.A);
        uint timerMode = (op.A >> 16) % 3;
        uint masked = (op.A >> 20) % 4 == 0 ? 1u : 0;
        cpu.WriteRegister(Reg.LvtTimer, vector | (masked << 16) | (timerMode << 17));
        cpu.WriteRegister(Reg.DivideConfiguration, op.B & 0xB);
        if (timerMode == 2)
        {
            ulong deadline = (ulong)Math.Max(0, Machine.Now + (long)(op.C % 6000) - 1000);
            cpu.WrMsr(Msr.TscDeadline, deadline);
        }
        else
        {
            cpu.WriteRegister(Reg.InitialCount, op.C % 3000);
        }

        Log($"timer {index} {op.A:x} {op.B & 0xB:x} {op.C}");
    }

    private static ApicAccessResult WriteRegister(Vcpu cpu, ApicMode mode, uint offset, uint value) => mode == ApicMode.X2Apic
        ? cpu.WriteMsr(Msr.Of(offset), value)
        : cpu.WriteMmio(TestGuest.ApicBase + offset, value);

    private void Log(string line) => _log?.AppendLine(line);

    // Every xAPIC register slot (reading a reserved slot would latch ESR bit 7 and change the state).
    private static readonly uint[] s_dumpOffsets =
    [
        0x20, 0x30, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0,
        0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170,
        0x180, 0x190, 0x1A0, 0x1B0, 0x1C0, 0x1D0, 0x1E0, 0x1F0,
        0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270,
        0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3E0,
    ];

    /// <summary>Every guest-visible register of every vCPU, the IOAPIC, time, run states and counters, as text.</summary>
    public string Dump()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"now {Machine.Now} next {Machine.NextTimerDeadline}");
        for (int i = 0; i < N; i++)
        {
            Vcpu cpu = Machine.GetVcpu(i);
            sb.Append($"cpu {i} {cpu.RunState} {cpu.EntryPoint:x} {cpu.CodeSegment:x} base {cpu.RdMsr(Msr.ApicBase):x} ");
            sb.Append($"tsc {cpu.RdMsr(Vcpu.MsrTsc)} deadline {cpu.RdMsr(Msr.TscDeadline)} cr8 {cpu.ReadCr8()} ");
            sb.Append($"events {cpu.Apic.PendingEvents} ");
            foreach (uint offset in s_dumpOffsets)
            {
                ApicAccessResult r = Views[i].Mode == ApicMode.X2Apic
                    ? cpu.ReadMsr(Msr.Of(offset), out ulong v)
                    : ReadMmio(cpu, offset, out v);
                sb.Append($"{offset:x}={v:x}/{r} ");
            }

            LocalApicCounters c = cpu.Apic.Counters;
            sb.AppendLine($"| {c.FixedAccepted} {c.Merged} {c.DroppedSoftwareDisabled} {c.DroppedIllegalVector} {c.DroppedGloballyDisabled} " +
                $"{c.EventsLatched} {c.Acknowledged} {c.Eois} {c.IpisSent} {c.EoiBroadcasts} {c.TimerExpiries} {c.TimerExpiriesMasked} {c.ErrorsRaised}");
        }

        for (byte index = 0; index < 0x40; index++)
        {
            sb.Append($"{Machine.IoApic.ReadRegister(index):x} ");
        }

        MachineCounters m = Machine.Counters;
        sb.AppendLine($"| {m.IpisRouted} {m.IoApicMessagesRouted} {m.MsisRouted} {m.NoDestination} {m.LowestPriorityNoCandidate} " +
            $"{m.ReservedModeDropped} {m.InitDeassertsIgnored} {m.StartupsDiscarded} {m.StartupsTaken} {m.InitsTaken} {m.TimerExpiries} {m.EoiBroadcasts}");
        return sb.ToString();
    }

    private static ApicAccessResult ReadMmio(Vcpu cpu, uint offset, out ulong value)
    {
        ApicAccessResult r = cpu.ReadMmio(TestGuest.ApicBase + offset, out uint v);
        value = v;
        return r;
    }
}
