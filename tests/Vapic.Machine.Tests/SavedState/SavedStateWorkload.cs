using System.Text;
using CsCheck;
using Vapic.Apic;
using Vapic.Machine.SavedState;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>A machine for the saved-state properties: 1-16 vCPUs, an APIC ID scheme and the platform switches.</summary>
internal sealed record SavedStateMachineSpec(
    int VcpuCount, int IdScheme, bool ForceX2Apic, byte IoApicVersion, bool ExtendedDestinationId, int X2ApicMask,
    CpuVendor Vendor = CpuVendor.Intel, long TscOffset = 0)
{
    public static readonly Gen<SavedStateMachineSpec> Generator = Gen.Select(
        Gen.Int[1, 16], Gen.Int[0, 3], Gen.Int[0, 7], Gen.Int[0, 7], Gen.Bool, Gen.Int[0, 0xFFFF], Gen.Bool, Gen.Long,
        (n, scheme, force, io, ext, x2, amd, tsc) => new SavedStateMachineSpec(
            n, scheme, force == 0, io == 0 ? (byte)0x11 : (byte)0x20, ext, x2, amd ? CpuVendor.Amd : CpuVendor.Intel, tsc));

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
        ExtendedDestinationId = ExtendedDestinationId,
        CpuVendor = Vendor,
        TscOffset = TscOffset,
    };

    /// <summary>A fresh machine at power-on.</summary>
    public VirtualMachine Create() => new(Options);

    /// <summary>
    /// A machine as a guest leaves it after boot: every AP started by SIPI, every LAPIC
    /// software-enabled, some switched to x2APIC (<see cref="X2ApicMask"/>).
    /// </summary>
    public VirtualMachine Boot()
    {
        VirtualMachine machine = Create();
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

            SavedStateDriver.WriteRegister(cpu, 0x0F0, 0x1FF);
        }

        return machine;
    }
}

internal enum WorkloadOp : byte
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
    Timer,
    Dcr,
    TimerMode,
    Advance,
    ModeSwitch,
    Svr,
    TscWrite,
    Lint,
    HostState,
    Read,
}

/// <summary>One random operation; <see cref="Cpu"/> is taken modulo the vCPU count.</summary>
internal readonly record struct WorkloadStep(WorkloadOp Kind, int Cpu, uint A, uint B, uint C)
{
    public static readonly Gen<WorkloadStep> Generator = Gen.Select(
        Gen.Frequency(
            (10, Gen.Const(WorkloadOp.Ipi)),
            (2, Gen.Const(WorkloadOp.SelfIpi)),
            (6, Gen.Const(WorkloadOp.Msi)),
            (6, Gen.Const(WorkloadOp.Irq)),
            (4, Gen.Const(WorkloadOp.Rte)),
            (1, Gen.Const(WorkloadOp.IoApicEoi)),
            (12, Gen.Const(WorkloadOp.Accept)),
            (8, Gen.Const(WorkloadOp.Eoi)),
            (3, Gen.Const(WorkloadOp.Tpr)),
            (10, Gen.Const(WorkloadOp.Timer)),
            (2, Gen.Const(WorkloadOp.Dcr)),
            (2, Gen.Const(WorkloadOp.TimerMode)),
            (8, Gen.Const(WorkloadOp.Advance)),
            (2, Gen.Const(WorkloadOp.ModeSwitch)),
            (1, Gen.Const(WorkloadOp.Svr)),
            (1, Gen.Const(WorkloadOp.TscWrite)),
            (2, Gen.Const(WorkloadOp.Lint)),
            (1, Gen.Const(WorkloadOp.HostState)),
            (3, Gen.Const(WorkloadOp.Read))),
        Gen.Int[0, 15], Gen.UInt, Gen.UInt, Gen.UInt,
        (k, cpu, a, b, c) => new WorkloadStep(k, cpu, a, b, c));
}

/// <summary>
/// Runs <see cref="WorkloadStep"/>s through guest accesses, device lines, MSIs and time, and logs
/// everything observable: access results, values read, accepted events and each timer expiry time
/// (time advances from deadline to deadline through <see cref="VirtualMachine.NextTimerDeadline"/>).
/// Never asserts: every outcome is data for the comparison, and nothing here may throw.
/// </summary>
internal static class SavedStateDriver
{
    public const int Pins = 6;

    private static readonly byte[] s_vectors = [0x20, 0x21, 0x31, 0x40, 0x4F, 0x51, 0x80, 0x90, 0x91, 0x92, 0xC4, 0xFF, 0x07];

    public static byte Vector(uint raw) => s_vectors[raw % (uint)s_vectors.Length];

    public static void Run(VirtualMachine machine, WorkloadStep step, StringBuilder log)
    {
        int index = step.Cpu % machine.VcpuCount;
        Vcpu cpu = machine.GetVcpu(index);
        switch (step.Kind)
        {
            case WorkloadOp.Ipi:
                {
                    uint mode = (step.B % 16) switch { < 9 => 0u, < 11 => 1u, 11 => 2u, 12 => 4u, 13 => 5u, 14 => 6u, _ => 3u };
                    uint low = Vector(step.A) | (mode << 8) | (((step.B >> 4) & 1) << 11) | 0x4000 | (((step.B >> 5) & 1) << 15) |
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

            case WorkloadOp.Rte:
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
                    uint mode = (step.A % 3) << 17;
                    uint masked = step.A % 7 == 0 ? 0x1_0000u : 0;
                    log.Append($"timer {index} {WriteRegister(cpu, 0x3E0, step.B & 0xB)} {WriteRegister(cpu, 0x320, mode | masked | Vector(step.C))} ");
                    if (mode == 2u << 17)
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

            case WorkloadOp.Dcr:
                log.AppendLine($"dcr {index} {WriteRegister(cpu, 0x3E0, step.B & 0xF)} tmcct {ReadRegister(cpu, 0x390)}");
                break;
            case WorkloadOp.TimerMode:
                log.AppendLine($"lvtt {index} {WriteRegister(cpu, 0x320, ((step.A % 4) << 17) | Vector(step.C))}");
                break;
            case WorkloadOp.Advance:
                {
                    long target = machine.Now + (step.A % 4 == 0 ? step.B % 40_000 : step.B % 3_000);
                    while (machine.NextTimerDeadline <= target)
                    {
                        machine.AdvanceTo(Math.Max(machine.Now, machine.NextTimerDeadline));
                        log.Append($"expiry {machine.Now}:");
                        for (int i = 0; i < machine.VcpuCount; i++)
                        {
                            log.Append($" {machine.GetVcpu(i).Apic.Irr.Highest()}/{machine.GetVcpu(i).Apic.Irr.Count}");
                        }

                        log.AppendLine();
                    }

                    machine.AdvanceTo(target);
                    log.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
                    break;
                }

            case WorkloadOp.ModeSwitch:
                {
                    ulong value = (cpu.Apic.BaseMsr & ~0xC00UL) | ((ulong)(step.A % 4) << 10);
                    log.AppendLine($"base {index} {value:x} {cpu.WriteMsr(ApicBaseMsr.Msr, value)}");
                    break;
                }

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
            case WorkloadOp.HostState:
                cpu.SetHostState((VcpuHostState)(step.A % 3));
                log.AppendLine($"host {index} {cpu.HostState}");
                break;
            case WorkloadOp.Read:
                log.AppendLine($"read {index} {Dump(machine, cpu)}");
                break;
        }
    }

    /// <summary>Every guest-visible register of <paramref name="cpu"/> plus its run state, events and TSC, as text.</summary>
    public static string Dump(VirtualMachine machine, Vcpu cpu)
    {
        var sb = new StringBuilder();
        sb.Append($"{cpu.RunState} {cpu.EntryPoint:x}/{cpu.CodeSegment:x} {cpu.HostState} base {cpu.Apic.BaseMsr:x} events {cpu.Apic.PendingEvents} ");
        sb.Append($"tsc {(cpu.ReadMsr(Vcpu.MsrTsc, out ulong tsc) == ApicAccessResult.Ok ? tsc : 0)} ");
        sb.Append($"tscdl {(cpu.ReadMsr(0x6E0, out ulong dl) == ApicAccessResult.Ok ? dl : 0)} cr8 {cpu.ReadCr8()} ");
        foreach (int offset in s_readable)
        {
            sb.Append($"{offset:x}={ReadRegister(cpu, offset)} ");
        }

        return sb.ToString();
    }

    /// <summary>Every vCPU's registers, the IOAPIC entries and the clock.</summary>
    public static string DumpAll(VirtualMachine machine)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"now {machine.Now} next {machine.NextTimerDeadline}");
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            sb.AppendLine($"cpu {i} {Dump(machine, machine.GetVcpu(i))}");
        }

        sb.Append($"ioapic id {machine.IoApic.ReadRegister(0)} sel {machine.IoApic.RegisterSelect} retrigger {machine.IoApic.RetriggerDeadline}");
        for (int pin = 0; pin < machine.IoApic.PinCount; pin++)
        {
            sb.Append($" {machine.IoApic.GetRedirectionEntry(pin):x}/{machine.IoApic.GetLine(pin)}");
        }

        return sb.ToString();
    }

    private static readonly int[] s_readable =
    [
        0x020, 0x030, 0x080, 0x0A0, 0x0D0, 0x0E0, 0x0F0, 0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170,
        0x180, 0x190, 0x1A0, 0x1B0, 0x1C0, 0x1D0, 0x1E0, 0x1F0, 0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270,
        0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3E0,
    ];

    /// <summary>Writes register <paramref name="offset"/> through MMIO (xAPIC) or its MSR (x2APIC); a disabled APIC answers Unmapped.</summary>
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

    /// <summary>Some vCPU's APIC ID, its xAPIC logical bit, an x2APIC logical ID, a broadcast, or anything.</summary>
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

/// <summary>Mutations of a saved-state file for the corruption property.</summary>
internal readonly record struct Corruption(int Kind, uint A, uint B, uint C, byte[] Noise)
{
    public static readonly Gen<Corruption> Generator = Gen.Select(Gen.Int[0, 7], Gen.UInt, Gen.UInt, Gen.UInt, Gen.Byte.Array[0, 300],
        (k, a, b, c, noise) => new Corruption(k, a, b, c, noise));

    public byte[] Apply(byte[] original)
    {
        byte[] bytes = (byte[])original.Clone();
        switch (Kind)
        {
            case 0:
            case 1:
                {
                    // One to eight bit flips.
                    uint seed = A;
                    int flips = 1 + (int)(B % 8);
                    for (int i = 0; i < flips; i++)
                    {
                        seed = (seed * 1_664_525) + 1_013_904_223;
                        int bit = (int)(seed % (uint)(bytes.Length * 8));
                        bytes[bit / 8] ^= (byte)(1 << (bit % 8));
                    }

                    return bytes;
                }

            case 2:
                return bytes[..(int)(A % (uint)bytes.Length)];
            case 3:
                {
                    // A different format or section version.
                    int at = A % 2 == 0 ? 8 : SectionOffset(bytes, (int)(B % 64)) + 2;
                    bytes[at] = (byte)C;
                    bytes[at + 1] = (byte)(C >> 8);
                    return bytes;
                }

            case 4:
                return A % 2 == 0 ? Noise : [.. "VAPICSS\0"u8.ToArray(), .. Noise];
            case 5:
                {
                    // A random 32-bit value over any aligned field.
                    int at = (int)(A % (uint)(bytes.Length - 3));
                    BitConverter.TryWriteBytes(bytes.AsSpan(at), C % 3 == 0 ? B : B % 256);
                    return bytes;
                }

            case 6:
                {
                    // Duplicate or drop a whole section.
                    int start = SectionOffset(bytes, (int)(A % 64));
                    int length = 8 + BitConverter.ToInt32(bytes, start + 4);
                    return B % 2 == 0
                        ? [.. bytes[..(start + length)], .. bytes[start..(start + length)], .. bytes[(start + length)..]]
                        : [.. bytes[..start], .. bytes[(start + length)..]];
                }

            default:
                // Trailing bytes.
                return [.. bytes, .. Noise.Length == 0 ? [0] : Noise];
        }
    }

    /// <summary>The offset of section number <paramref name="n"/> (wrapping) in a well-formed file.</summary>
    private static int SectionOffset(byte[] file, int n)
    {
        var offsets = new List<int>();
        int at = SavedStateSerializer.HeaderSize;
        while (at + 8 <= file.Length)
        {
            offsets.Add(at);
            at += 8 + BitConverter.ToInt32(file, at + 4);
        }

        return offsets[n % offsets.Count];
    }
}
