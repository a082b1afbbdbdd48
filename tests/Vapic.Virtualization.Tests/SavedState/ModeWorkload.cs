using System.Text;
using CsCheck;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Tests.SavedState;

/// <summary>
/// A machine for the saved-state properties under a mode: 1-8 vCPUs, an APIC ID scheme, the
/// platform switches, booted by INIT-SIPI with every LAPIC software-enabled and some in x2APIC.
/// </summary>
internal sealed record ModeMachineSpec(int VcpuCount, int IdScheme, bool ForceX2Apic, byte IoApicVersion, int X2ApicMask, long TscOffset)
{
    /// <summary>The modes whose host can save and restore (savic cannot).</summary>
    public static readonly string[] SavableModes = ["emulated", "apicv", "avic", "passthrough"];

    public static readonly Gen<ModeMachineSpec> Generator = Gen.Select(
        Gen.Int[1, 8], Gen.Int[0, 3], Gen.Int[0, 5], Gen.Bool, Gen.Int[0, 0xFF], Gen.Frequency((3, Gen.Const(0L)), (1, Gen.Long[-1_000_000, 1_000_000])),
        (n, scheme, force, io, x2, tsc) => new ModeMachineSpec(n, scheme, force == 0, io ? (byte)0x11 : (byte)0x20, x2, tsc));

    public MachineOptions Options => new()
    {
        VcpuCount = VcpuCount,
        ApicIds = IdScheme switch
        {
            0 => null,
            1 => Enumerable.Range(0, VcpuCount).Select(i => (uint)((2 * i) + 1)).ToArray(),
            2 => Enumerable.Range(0, VcpuCount).Select(i => (uint)(0x1F0 + (i * 0x11))).ToArray(), // above 0xFE: x2APIC from RESET
            _ => Enumerable.Range(0, VcpuCount).Select(i => (uint)(i * 0x10)).ToArray(),
        },
        ForceX2Apic = ForceX2Apic,
        IoApicVersion = IoApicVersion,
        TscOffset = TscOffset,
    };

    /// <summary>A machine at power-on under a new instance of mode <paramref name="mode"/>.</summary>
    public VirtualMachine Create(string mode) => new(Options, ModeRegistry.Create(mode));

    /// <summary>A machine as a guest leaves it after boot, under a new instance of mode <paramref name="mode"/>.</summary>
    public VirtualMachine Boot(string mode)
    {
        VirtualMachine machine = Create(mode);
        for (int i = 1; i < VcpuCount; i++)
        {
            var sipi = new InterruptMessage((byte)(0x10 + i), DeliveryMode.StartUp, DestinationMode.Physical, 0, DestinationShorthand.Self,
                LevelTriggered: false, Assert: true, RedirectionHint: false, InterruptSource.External, SourceVcpu: i);
            machine.Deliver(in sipi);
            machine.GetVcpu(i).Accept();
        }

        for (int i = 0; i < VcpuCount; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            if (cpu.Apic.Mode == ApicMode.XApic && ((X2ApicMask >> i) & 1) != 0)
            {
                cpu.WriteMsr(ApicBaseMsr.Msr, cpu.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable);
            }

            ModeDriver.WriteRegister(cpu, 0x0F0, 0x1FF);
        }

        return machine;
    }
}

internal enum ModeOp : byte
{
    Ipi,
    SelfIpi,
    Msi,
    Irq,
    Rte,
    IoApicEoi,
    Inject,
    Accept,
    Eoi,
    Tpr,
    Timer,
    TimerMode,
    Advance,
    BaseMsr,
    Identity,
    Svr,
    HostState,
    Inhibit,
    Read,
}

/// <summary>One random operation; <see cref="Cpu"/> is taken modulo the vCPU count.</summary>
internal readonly record struct ModeStep(ModeOp Kind, int Cpu, uint A, uint B, uint C)
{
    public static readonly Gen<ModeStep> Generator = Gen.Select(
        Gen.Frequency(
            (10, Gen.Const(ModeOp.Ipi)),
            (2, Gen.Const(ModeOp.SelfIpi)),
            (6, Gen.Const(ModeOp.Msi)),
            (5, Gen.Const(ModeOp.Irq)),
            (3, Gen.Const(ModeOp.Rte)),
            (1, Gen.Const(ModeOp.IoApicEoi)),
            (2, Gen.Const(ModeOp.Inject)),
            (12, Gen.Const(ModeOp.Accept)),
            (8, Gen.Const(ModeOp.Eoi)),
            (3, Gen.Const(ModeOp.Tpr)),
            (6, Gen.Const(ModeOp.Timer)),
            (1, Gen.Const(ModeOp.TimerMode)),
            (7, Gen.Const(ModeOp.Advance)),
            (1, Gen.Const(ModeOp.BaseMsr)),
            (1, Gen.Const(ModeOp.Identity)),
            (1, Gen.Const(ModeOp.Svr)),
            (8, Gen.Const(ModeOp.HostState)),
            (1, Gen.Const(ModeOp.Inhibit)),
            (2, Gen.Const(ModeOp.Read))),
        Gen.Int[0, 7], Gen.UInt, Gen.UInt, Gen.UInt,
        (k, cpu, a, b, c) => new ModeStep(k, cpu, a, b, c));

    /// <summary>
    /// Steps that deschedule vCPUs and send them interrupts without running them (host scheduling,
    /// IPIs from one sender, MSIs, IOAPIC lines, hypervisor injections): a run ending with some
    /// leaves interrupts held for vCPUs that are not in guest mode, such as posted ones in a PIR.
    /// </summary>
    public static readonly Gen<ModeStep> HoldingGenerator = Gen.Select(
        Gen.Frequency(
            (6, Gen.Const(ModeOp.HostState)),
            (5, Gen.Const(ModeOp.Ipi)),
            (4, Gen.Const(ModeOp.Msi)),
            (2, Gen.Const(ModeOp.Irq)),
            (2, Gen.Const(ModeOp.Inject))),
        Gen.Int[0, 7], Gen.UInt, Gen.UInt, Gen.UInt,
        (k, cpu, a, b, c) => new ModeStep(k, cpu, a, b, c));
}

/// <summary>
/// Runs <see cref="ModeStep"/>s through guest accesses, device lines, MSIs, the hypervisor and
/// time, and logs only what the guest can observe: access results and values read, the events
/// each accept takes, and every timer expiry with its time in ns and the vCPUs whose timers fired.
/// Host states, pending-but-untaken events and the raw IRR are not logged: they are the host's
/// view, and modes legitimately differ there (a PIR bit is not yet in IRR). Never asserts.
/// </summary>
internal static class ModeDriver
{
    public const int Pins = 6;

    private static readonly byte[] s_vectors = [0x20, 0x21, 0x31, 0x40, 0x4F, 0x51, 0x80, 0x90, 0x91, 0x92, 0xC4, 0xFF, 0x07];

    private static readonly int[] s_readable =
    [
        0x020, 0x030, 0x080, 0x0A0, 0x0D0, 0x0E0, 0x0F0, 0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170,
        0x180, 0x190, 0x1A0, 0x1B0, 0x1C0, 0x1D0, 0x1E0, 0x1F0, 0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270,
        0x280, 0x300, 0x310, 0x320, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3E0,
    ];

    public static byte Vector(uint raw) => s_vectors[raw % (uint)s_vectors.Length];

    public static void Run(VirtualMachine machine, ModeStep step, StringBuilder log)
    {
        var mode = (VirtualizationMode)machine.Virtualization!;
        int index = step.Cpu % machine.VcpuCount;
        Vcpu cpu = machine.GetVcpu(index);
        switch (step.Kind)
        {
            case ModeOp.Ipi:
                {
                    // Mostly fixed; some lowest priority, SMI, NMI, INIT, SIPI; level bit, logical, shorthands.
                    uint deliveryMode = (step.B % 16) switch { < 10 => 0u, < 12 => 1u, 12 => 2u, 13 => 4u, 14 => 5u, _ => 6u };
                    uint low = Vector(step.A) | (deliveryMode << 8) | (((step.B >> 4) & 1) << 11) | 0x4000 | (((step.B >> 5) % 8 == 0 ? 1u : 0) << 15) |
                        (((step.B >> 8) % 4 == 0 ? (step.B >> 10) & 3 : 0) << 18);
                    uint destination = Destination(machine, step.C);
                    ApicAccessResult r = cpu.Apic.Mode == ApicMode.X2Apic
                        ? cpu.WriteMsr(0x830, ((ulong)destination << 32) | low)
                        : WriteIcrXApic(cpu, destination, low);
                    log.AppendLine($"ipi {index} {destination:x} {low:x} {r}");
                    break;
                }

            case ModeOp.SelfIpi:
                log.AppendLine($"selfipi {index} {cpu.WriteMsr(0x83F, Vector(step.A))}");
                break;
            case ModeOp.Msi:
                {
                    uint destination = Destination(machine, step.C) & 0x7FFF;
                    ulong address = 0xFEE0_0000UL | ((ulong)(destination & 0xFF) << 12) | ((ulong)(destination >> 8) << 5) | ((step.B & 4) != 0 ? 4UL : 0);
                    uint data = Vector(step.A) | (((step.B >> 4) % 8 == 1 ? 1u : 0) << 8) | ((step.B & 0x100) != 0 ? 0xC000u : 0);
                    log.AppendLine($"msi {address:x} {data:x} {machine.SendMsi(address, data)}");
                    break;
                }

            case ModeOp.Irq:
                {
                    int pin = (int)(step.A % Pins);
                    switch (step.B % 3)
                    {
                        case 0:
                            machine.SetIrq(pin, true);
                            break;
                        case 1:
                            machine.SetIrq(pin, false);
                            break;
                        default:
                            machine.SetIrq(pin, true);
                            machine.SetIrq(pin, false);
                            break;
                    }

                    log.AppendLine($"irq {pin} {step.B % 3}");
                    break;
                }

            case ModeOp.Rte:
                {
                    int pin = (int)(step.A % Pins);
                    uint destination = Destination(machine, step.C) & 0x7FFF;
                    uint low = (uint)(0x90 + pin) | (((step.B % 8) == 7 ? 1u : 0) << 8) | (((step.B >> 4) & 1) << 11) |
                        (((step.B >> 5) & 1) << 15) | ((step.B >> 6) % 4 == 0 ? 1u << 16 : 0);
                    uint high = ((destination & 0xFF) << 24) | ((destination >> 8) << 17);
                    IoApicWrite(cpu, (byte)(0x10 + (2 * pin)), low | 0x1_0000, log);
                    IoApicWrite(cpu, (byte)(0x11 + (2 * pin)), high, log);
                    IoApicWrite(cpu, (byte)(0x10 + (2 * pin)), low, log);
                    log.AppendLine($"rte {pin} {high:x8}{low:x8}");
                    break;
                }

            case ModeOp.IoApicEoi:
                log.AppendLine($"ioapic-eoi {cpu.WriteMmio(IoApic.DefaultBase + 0x40, (uint)(0x90 + (step.A % Pins)))}");
                break;
            case ModeOp.Inject:
                if ((step.A & 7) == 0)
                {
                    mode.InjectNmiFromHypervisor(cpu);
                    log.AppendLine($"hv-nmi {index}");
                }
                else
                {
                    mode.InjectFromHypervisor(cpu, Vector(step.B));
                    log.AppendLine($"hv-inject {index} {Vector(step.B):x}");
                }

                break;
            case ModeOp.Accept:
                log.AppendLine($"accept {index} {cpu.Accept()}");
                break;
            case ModeOp.Eoi:
                log.AppendLine($"eoi {index} {WriteRegister(cpu, 0x0B0, 0)}");
                break;
            case ModeOp.Tpr:
                log.AppendLine((step.A & 1) == 0
                    ? $"tpr {index} {WriteRegister(cpu, 0x080, step.B & 0x3F)}"
                    : $"cr8 {index} {cpu.WriteCr8((step.B >> 4) & 3)} {cpu.ReadCr8()}");
                break;
            case ModeOp.Timer:
                {
                    uint timerMode = (step.A % 3) << 17;
                    uint masked = step.A % 7 == 0 ? 0x1_0000u : 0;
                    log.Append($"timer {index} {WriteRegister(cpu, 0x3E0, step.B & 0xB)} {WriteRegister(cpu, 0x320, timerMode | masked | Vector(step.C))} ");
                    if (timerMode == 2u << 17)
                    {
                        ulong tsc = (ulong)(machine.Now + cpu.Apic.TscOffset);
                        log.AppendLine($"{cpu.WriteMsr(0x6E0, tsc + ((step.B >> 4) % 9000) - 1000)}");
                    }
                    else
                    {
                        // At least 100 ticks, so that a long advance does not log tens of thousands of expiries.
                        log.AppendLine($"{WriteRegister(cpu, 0x380, 100 + ((step.B >> 4) % 2500))}");
                    }

                    break;
                }

            case ModeOp.TimerMode:
                log.AppendLine($"lvtt {index} {WriteRegister(cpu, 0x320, ((step.A % 4) << 17) | Vector(step.C))}");
                break;
            case ModeOp.Advance:
                {
                    long target = machine.Now + (step.A % 4 == 0 ? step.B % 40_000 : step.B % 3_000);
                    while (machine.NextTimerDeadline <= target)
                    {
                        long deadline = Math.Max(machine.Now, machine.NextTimerDeadline);
                        log.Append($"expiry {deadline}:");
                        for (int i = 0; i < machine.VcpuCount; i++)
                        {
                            if (machine.GetVcpu(i).Apic.TimerDeadline <= deadline)
                            {
                                log.Append($" cpu{i}");
                            }
                        }

                        log.AppendLine(machine.IoApic.RetriggerDeadline <= deadline ? " ioapic" : "");
                        machine.AdvanceTo(deadline);
                    }

                    machine.AdvanceTo(target);
                    log.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
                    break;
                }

            case ModeOp.BaseMsr:
                {
                    // Enter or leave x2APIC, disable globally, or move the base (APIC_BASE_MODIFIED).
                    ulong value = (cpu.Apic.BaseMsr & ~0xC00UL) | ((ulong)(step.A % 4) << 10);
                    if (step.B % 4 == 0)
                    {
                        value = (value & 0xFFFUL) | 0xFEC8_0000UL;
                    }

                    log.AppendLine($"base {index} {value:x} {cpu.WriteMsr(ApicBaseMsr.Msr, value)}");
                    break;
                }

            case ModeOp.Identity:
                // xAPIC ID (APIC_ID_MODIFIED, aliasing), LDR or DFR (logical aliasing); Unmapped or #GP in other modes.
                log.AppendLine((step.A % 3) switch
                {
                    0 => $"id {index} {WriteRegister(cpu, 0x020, (step.B % 4) << 24)}",
                    1 => $"ldr {index} {WriteRegister(cpu, 0x0D0, (1u << (int)(step.B % 8)) << 24)}",
                    _ => $"dfr {index} {WriteRegister(cpu, 0x0E0, step.B % 2 == 0 ? 0xFFFF_FFFFu : 0x0FFF_FFFFu)}",
                });
                break;
            case ModeOp.Svr:
                log.AppendLine($"svr {index} {WriteRegister(cpu, 0x0F0, step.A % 4 == 0 ? 0xFFu : 0x1FFu | (step.B & 0x1000))}");
                break;
            case ModeOp.HostState:
                {
                    // Host scheduling is invisible to the guest: not logged. Mostly preempted (where
                    // posted interrupts wait), sometimes every other vCPU at once.
                    VcpuHostState state = (step.A % 4) switch { 0 => VcpuHostState.Running, 3 => VcpuHostState.Halted, _ => VcpuHostState.Preempted };
                    for (int i = 0; i < machine.VcpuCount; i++)
                    {
                        if (i == index ? step.B % 4 != 0 : step.B % 4 == 0)
                        {
                            machine.GetVcpu(i).SetHostState(state);
                        }
                    }

                    break;
                }

            case ModeOp.Inhibit:
                // A reason both vendors honor, set by the host (not guest-visible, not in the saved state).
                mode.SetInhibit(ApicvInhibit.BlockIrq, step.A % 2 == 0);
                break;
            case ModeOp.Read:
                log.AppendLine($"read {index} {Dump(machine, cpu)}");
                break;
        }
    }

    /// <summary>What <paramref name="cpu"/>'s guest can read: run state and entry point, base MSR, TSC, TSC deadline, CR8 and every readable register.</summary>
    public static string Dump(VirtualMachine machine, Vcpu cpu)
    {
        var sb = new StringBuilder();
        sb.Append($"{cpu.RunState} {cpu.EntryPoint:x}/{cpu.CodeSegment:x} ");
        sb.Append($"base {(cpu.ReadMsr(ApicBaseMsr.Msr, out ulong b) == ApicAccessResult.Ok ? b : 0):x} ");
        sb.Append($"tsc {(cpu.ReadMsr(Vcpu.MsrTsc, out ulong tsc) == ApicAccessResult.Ok ? tsc : 0)} ");
        sb.Append($"tscdl {(cpu.ReadMsr(0x6E0, out ulong dl) == ApicAccessResult.Ok ? dl : 0)} cr8 {cpu.ReadCr8()} ");
        foreach (int offset in s_readable)
        {
            sb.Append($"{offset:x}={ReadRegister(cpu, offset)} ");
        }

        return sb.ToString();
    }

    /// <summary>Every vCPU as its guest reads it, the IOAPIC entries and the clock.</summary>
    public static string DumpAll(VirtualMachine machine)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            sb.AppendLine($"cpu {i} {Dump(machine, machine.GetVcpu(i))}");
        }

        for (int pin = 0; pin < machine.IoApic.PinCount; pin++)
        {
            sb.Append($" {machine.IoApic.GetRedirectionEntry(pin):x}/{machine.IoApic.GetLine(pin)}");
        }

        return sb.ToString();
    }

    /// <summary>Writes register <paramref name="offset"/> through MMIO at the APIC's base (xAPIC) or its MSR (x2APIC); a disabled APIC answers Unmapped.</summary>
    public static ApicAccessResult WriteRegister(Vcpu cpu, int offset, uint value) => cpu.Apic.Mode == ApicMode.X2Apic
        ? cpu.WriteMsr(0x800 + (uint)(offset >> 4), offset == 0x0B0 ? 0 : value)
        : cpu.WriteMmio(cpu.Apic.MmioBase + (ulong)offset, value);

    public static string ReadRegister(Vcpu cpu, int offset)
    {
        ApicAccessResult r;
        ulong value;
        if (cpu.Apic.Mode == ApicMode.X2Apic)
        {
            r = cpu.ReadMsr(0x800 + (uint)(offset >> 4), out value);
        }
        else
        {
            r = cpu.ReadMmio(cpu.Apic.MmioBase + (ulong)offset, out uint v);
            value = v;
        }

        return r == ApicAccessResult.Ok ? value.ToString("x") : r.ToString();
    }

    private static ApicAccessResult WriteIcrXApic(Vcpu cpu, uint destination, uint low)
    {
        ApicAccessResult r = cpu.WriteMmio(cpu.Apic.MmioBase + 0x310, (destination & 0xFF) << 24);
        return r == ApicAccessResult.Ok ? cpu.WriteMmio(cpu.Apic.MmioBase + 0x300, low) : r;
    }

    private static void IoApicWrite(Vcpu cpu, byte index, uint value, StringBuilder log)
    {
        ApicAccessResult a = cpu.WriteMmio(IoApic.DefaultBase, index);
        ApicAccessResult b = cpu.WriteMmio(IoApic.DefaultBase + 0x10, value);
        if (a != ApicAccessResult.Ok || b != ApicAccessResult.Ok)
        {
            log.AppendLine($"ioapic write {a} {b}");
        }
    }

    /// <summary>Some vCPU's APIC ID, its logical ID, a broadcast, or anything.</summary>
    private static uint Destination(VirtualMachine machine, uint raw)
    {
        LocalApic apic = machine.GetVcpu((int)((raw >> 4) % (uint)machine.VcpuCount)).Apic;
        return (raw & 7) switch
        {
            0 or 1 or 2 => apic.Id,
            3 => apic.Mode == ApicMode.X2Apic ? apic.LogicalDestination : apic.LogicalDestination >> 24,
            4 => 0xFF,
            5 => 0xFFFF_FFFF,
            6 => raw >> 24,
            _ => 1u << (int)((raw >> 8) & 7),
        };
    }
}
