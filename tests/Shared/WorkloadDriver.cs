using System.Text;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Testing;

/// <summary>
/// Runs <see cref="WorkloadStep"/>s through guest accesses, device lines, MSIs and time, and logs
/// what is observable: access results and values read, the events each accept takes, and every timer
/// expiry with its time in ns and the vCPUs whose timers fired (time advances from deadline to
/// deadline through <see cref="VirtualMachine.NextTimerDeadline"/>). Never asserts: every outcome is
/// data for the comparison, and nothing here may throw.
/// </summary>
/// <remarks>
/// <see cref="GuestView"/> logs only what the guest can observe, so that runs under different
/// virtualization modes compare equal; <see cref="HostView"/> adds what the host sees of a bare
/// machine (host states, pending-but-untaken events, the raw IRR after each expiry, the IOAPIC's
/// retrigger deadline), where a mode legitimately differs (a posted vector waits in a PIR, not in IRR).
/// </remarks>
internal sealed class WorkloadDriver
{
    /// <summary>Logs what the guest can observe.</summary>
    public static readonly WorkloadDriver GuestView = new(hostView: false);

    /// <summary>Logs what the guest can observe and the host's view of the LAPICs and the IOAPIC.</summary>
    public static readonly WorkloadDriver HostView = new(hostView: true);

    /// <summary>IOAPIC inputs the workload drives; pin p has vector 0x90 + p.</summary>
    public const int Pins = 6;

    private static readonly byte[] s_vectors = [0x20, 0x21, 0x31, 0x40, 0x4F, 0x51, 0x80, 0x90, 0x91, 0x92, 0xC4, 0xFF, 0x07];

    // Every readable xAPIC register (reading a reserved slot would latch ESR bit 7 and change the state).
    private static readonly int[] s_readable =
    [
        0x020, 0x030, 0x080, 0x0A0, 0x0D0, 0x0E0, 0x0F0, 0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170,
        0x180, 0x190, 0x1A0, 0x1B0, 0x1C0, 0x1D0, 0x1E0, 0x1F0, 0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270,
        0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3E0,
    ];

    private readonly bool _hostView;

    private WorkloadDriver(bool hostView) => _hostView = hostView;

    public static byte Vector(uint raw) => s_vectors[raw % (uint)s_vectors.Length];

    /// <summary>
    /// Runs <paramref name="step"/> on <paramref name="machine"/> and logs what it observed; false (and
    /// nothing done) for the host operations (<see cref="WorkloadOp.HostState"/>, <see cref="WorkloadOp.Inject"/>,
    /// <see cref="WorkloadOp.Inhibit"/>), which the caller interprets.
    /// </summary>
    public bool TryRun(VirtualMachine machine, WorkloadStep step, StringBuilder log)
    {
        int index = step.Cpu % machine.VcpuCount;
        Vcpu cpu = machine.GetVcpu(index);
        switch (step.Kind)
        {
            case WorkloadOp.Ipi:
                {
                    // Mostly fixed; some lowest priority, SMI, NMI, INIT, SIPI and reserved 011; logical bit, trigger bit, shorthands.
                    uint deliveryMode = (step.B % 16) switch { < 9 => 0u, < 11 => 1u, 11 => 2u, 12 => 4u, 13 => 5u, 14 => 6u, _ => 3u };
                    uint low = Vector(step.A) | (deliveryMode << 8) | (((step.B >> 4) & 1) << 11) | 0x4000 | (((step.B >> 5) & 1) << 15) |
                        (((step.B >> 6) % 4 == 0 ? (step.B >> 8) & 3 : 0) << 18);
                    uint destination = Destination(machine, step.C);
                    ApicAccessResult r = cpu.Apic.Mode == ApicMode.X2Apic
                        ? cpu.WriteMsr(0x830, ((ulong)destination << 32) | low)
                        : WriteIcrXApic(cpu, destination, low);
                    log.AppendLine($"ipi {index} {destination:x} {low:x} {r}");
                    break;
                }

            case WorkloadOp.SelfIpi:
                log.AppendLine($"selfipi {index} {cpu.WriteMsr(0x83F, Vector(step.A))}");
                break;
            case WorkloadOp.Msi:
                {
                    uint destination = Destination(machine, step.C) & 0x7FFF;
                    ulong address = 0xFEE0_0000UL | ((ulong)(destination & 0xFF) << 12) | ((ulong)(destination >> 8) << 5) | ((step.B & 4) != 0 ? 4UL : 0);
                    uint data = Vector(step.A) | (((step.B >> 4) % 8 == 1 ? 1u : 0) << 8) | ((step.B & 0x100) != 0 ? 0xC000u : 0);
                    log.AppendLine($"msi {address:x} {data:x} {machine.SendMsi(address, data)}");
                    break;
                }

            case WorkloadOp.Irq:
                {
                    int pin = (int)(step.A % Pins);
                    log.AppendLine($"irq {pin} {DriveIrq(machine, pin, step.B)}");
                    break;
                }

            case WorkloadOp.Rte:
                {
                    int pin = (int)(step.A % Pins);
                    uint destination = Destination(machine, step.C) & 0x7FFF;
                    uint low = (uint)(0x90 + pin) | (((step.B % 8) == 7 ? 1u : 0) << 8) | (((step.B >> 4) & 1) << 11) |
                        (((step.B >> 5) & 1) << 15) | ((step.B >> 6) % 4 == 0 ? 1u << 16 : 0);
                    uint high = ((destination & 0xFF) << 24) | ((destination >> 8) << 17);

                    // Masked first, so that only the final entry can deliver (a write to an asserted level pin delivers).
                    IoApicWrite(cpu, (byte)(0x10 + (2 * pin)), low | 0x1_0000, log);
                    IoApicWrite(cpu, (byte)(0x11 + (2 * pin)), high, log);
                    IoApicWrite(cpu, (byte)(0x10 + (2 * pin)), low, log);
                    log.AppendLine($"rte {pin} {high:x8}{low:x8}");
                    break;
                }

            case WorkloadOp.IoApicEoi:
                log.AppendLine($"ioapic-eoi {cpu.WriteMmio(IoApic.DefaultBase + 0x40, (uint)(0x90 + (step.A % Pins)))}");
                break;
            case WorkloadOp.Accept:
                log.AppendLine($"accept {index} {cpu.Accept()}");
                break;
            case WorkloadOp.Eoi:
                log.AppendLine($"eoi {index} {WriteRegister(cpu, 0x0B0, 0)}");
                break;
            case WorkloadOp.Tpr:
                log.AppendLine((step.A & 1) == 0
                    ? $"tpr {index} {WriteRegister(cpu, 0x080, step.B & 0x3F)}"
                    : $"cr8 {index} {cpu.WriteCr8((step.B >> 4) & 3)} {cpu.ReadCr8()}");
                break;
            case WorkloadOp.Timer:
                {
                    uint timerMode = (step.A % 3) << 17;
                    uint masked = step.A % 7 == 0 ? 0x1_0000u : 0;
                    log.Append($"timer {index} {WriteRegister(cpu, 0x3E0, step.B & 0xB)} {WriteRegister(cpu, 0x320, timerMode | masked | Vector(step.C))} ");
                    if (timerMode == 2u << 17)
                    {
                        // -1000 to +8000 TSC ticks from now: some deadlines already passed.
                        log.AppendLine($"{cpu.WriteMsr(0x6E0, cpu.Apic.GuestTscNow + ((step.B >> 4) % 9000) - 1000)}");
                    }
                    else
                    {
                        // At least 100 ticks, so that a long advance does not log tens of thousands of expiries.
                        log.AppendLine($"{WriteRegister(cpu, 0x380, 100 + ((step.B >> 4) % 2500))}");
                    }

                    break;
                }

            case WorkloadOp.Dcr:
                log.AppendLine($"dcr {index} {WriteRegister(cpu, 0x3E0, step.B & 0xF)} tmcct {ReadRegister(cpu, 0x390)}");
                break;
            case WorkloadOp.TimerMode:
                log.AppendLine($"lvtt {index} {WriteRegister(cpu, 0x320, ((step.A % 4) << 17) | Vector(step.C))}");
                break;
            case WorkloadOp.Advance:
                Advance(machine, machine.Now + (step.A % 4 == 0 ? step.B % 40_000 : step.B % 3_000), log);
                break;
            case WorkloadOp.BaseMsr:
                {
                    // Enter or leave x2APIC, disable globally, or move the base (APIC_BASE_MODIFIED under a mode).
                    ulong value = (cpu.Apic.BaseMsr & ~0xC00UL) | ((ulong)(step.A % 4) << 10);
                    if (step.B % 4 == 0)
                    {
                        value = (value & 0xFFFUL) | 0xFEC8_0000UL;
                    }

                    log.AppendLine($"base {index} {value:x} {cpu.WriteMsr(ApicBaseMsr.Msr, value)}");
                    break;
                }

            case WorkloadOp.Identity:
                // xAPIC ID (APIC_ID_MODIFIED, aliasing), LDR or DFR (logical aliasing); Unmapped or #GP in other modes.
                log.AppendLine((step.A % 3) switch
                {
                    0 => $"id {index} {WriteRegister(cpu, 0x020, (step.B % 4) << 24)}",
                    1 => $"ldr {index} {WriteRegister(cpu, 0x0D0, (1u << (int)(step.B % 8)) << 24)}",
                    _ => $"dfr {index} {WriteRegister(cpu, 0x0E0, step.B % 2 == 0 ? 0xFFFF_FFFFu : 0x0FFF_FFFFu)}",
                });
                break;
            case WorkloadOp.Svr:
                log.AppendLine($"svr {index} {WriteRegister(cpu, 0x0F0, step.A % 4 == 0 ? 0xFFu : 0x1FFu | (step.B & 0x1000))}");
                break;
            case WorkloadOp.TscWrite:
                log.AppendLine($"tsc {index} {cpu.WriteMsr(Vcpu.MsrTsc, step.A % 1_000_000)}");
                break;
            case WorkloadOp.Lint:
                if ((step.A & 1) == 0)
                {
                    // LINT0 as a level-triggered Fixed input, so that remote IRR comes into play.
                    log.Append($"lvt-lint0 {index} {WriteRegister(cpu, 0x350, 0x8000u | Vector(step.C))} ");
                }

                cpu.Apic.SetLint((int)(step.B & 1), (step.B & 2) != 0);
                log.AppendLine($"lint {index} {step.B & 1} {(step.B & 2) != 0}");
                break;
            case WorkloadOp.Read:
                log.AppendLine($"read {index} {Dump(cpu)}");
                break;
            default:
                return false;
        }

        return true;
    }

    /// <summary>
    /// What <paramref name="cpu"/>'s guest can read: run state and entry point, IA32_APIC_BASE, TSC,
    /// TSC deadline, CR8 and every readable register; with the host view also its host state and pending events.
    /// </summary>
    public string Dump(Vcpu cpu)
    {
        var sb = new StringBuilder();
        sb.Append($"{cpu.RunState} {cpu.EntryPoint:x}/{cpu.CodeSegment:x} ");
        if (_hostView)
        {
            sb.Append($"{cpu.HostState} events {cpu.Apic.PendingEvents} ");
        }

        sb.Append($"base {(cpu.ReadMsr(ApicBaseMsr.Msr, out ulong b) == ApicAccessResult.Ok ? b : 0):x} ");
        sb.Append($"tsc {(cpu.ReadMsr(Vcpu.MsrTsc, out ulong tsc) == ApicAccessResult.Ok ? tsc : 0)} ");
        sb.Append($"tscdl {(cpu.ReadMsr(0x6E0, out ulong dl) == ApicAccessResult.Ok ? dl : 0)} cr8 {cpu.ReadCr8()} ");
        foreach (int offset in s_readable)
        {
            sb.Append($"{offset:x}={ReadRegister(cpu, offset)} ");
        }

        return sb.ToString();
    }

    /// <summary>Every vCPU (<see cref="Dump"/>), the IOAPIC's ID, select register and entries, and the clock.</summary>
    public string DumpAll(VirtualMachine machine)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            sb.AppendLine($"cpu {i} {Dump(machine.GetVcpu(i))}");
        }

        sb.Append($"ioapic id {machine.IoApic.ReadRegister(0)} sel {machine.IoApic.RegisterSelect}");
        if (_hostView)
        {
            sb.Append($" retrigger {machine.IoApic.RetriggerDeadline}");
        }

        for (int pin = 0; pin < machine.IoApic.PinCount; pin++)
        {
            sb.Append($" {machine.IoApic.GetRedirectionEntry(pin):x}/{machine.IoApic.GetLine(pin)}");
        }

        return sb.ToString();
    }

    /// <summary>Raises (<paramref name="how"/> % 3 = 0), lowers (1) or pulses (2) IOAPIC input <paramref name="pin"/>; returns how % 3.</summary>
    public static uint DriveIrq(VirtualMachine machine, int pin, uint how)
    {
        switch (how % 3)
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

        return how % 3;
    }

    /// <summary>Writes register <paramref name="offset"/> through MMIO at the APIC's base (xAPIC) or its MSR (x2APIC); a disabled APIC answers Unmapped.</summary>
    public static ApicAccessResult WriteRegister(Vcpu cpu, int offset, uint value) => cpu.Apic.Mode == ApicMode.X2Apic
        ? cpu.WriteMsr(0x800 + (uint)(offset >> 4), offset == 0x0B0 ? 0 : value)
        : cpu.WriteMmio(cpu.Apic.MmioBase + (ulong)offset, value);

    /// <summary>Reads register <paramref name="offset"/> like <see cref="WriteRegister"/>: the value in hex, or the access result when it fails.</summary>
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

    /// <summary>
    /// Advances to <paramref name="target"/> one timer deadline at a time, logging each: its time, the
    /// vCPUs whose timers fire, whether the IOAPIC retriggers, and with the host view each vCPU's IRR after it.
    /// </summary>
    private void Advance(VirtualMachine machine, long target, StringBuilder log)
    {
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

            log.Append(machine.IoApic.RetriggerDeadline <= deadline ? " ioapic" : "");
            machine.AdvanceTo(deadline);
            if (_hostView)
            {
                log.Append(" irr");
                for (int i = 0; i < machine.VcpuCount; i++)
                {
                    log.Append($" {machine.GetVcpu(i).Apic.Irr.Highest()}/{machine.GetVcpu(i).Apic.Irr.Count}");
                }
            }

            log.AppendLine();
        }

        machine.AdvanceTo(target);
        log.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
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

    /// <summary>Some vCPU's APIC ID, its logical ID (xAPIC: the LDR's top byte), a broadcast, a random byte, or one logical bit.</summary>
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
