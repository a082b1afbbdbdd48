using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.SecureAvic;

/// <summary>Where an interrupt in the kexec scenario came from.</summary>
public enum SecureAvicSource : byte
{
    /// <summary>A guest IPI: the sender's driver wrote the target's page (never subject to ALLOWED_IRR).</summary>
    GuestIpi,

    /// <summary>A device (IOAPIC line or MSI) the guest programmed; the hypervisor requests it.</summary>
    Device,

    /// <summary>The hypervisor's emulated LAPIC timer.</summary>
    Timer,

    /// <summary>The hypervisor on its own (<c>hv inject</c>, <c>hv nmi</c>): what a hostile hypervisor tries.</summary>
    Hypervisor,
}

/// <summary>One interrupt of the scenario and what became of it.</summary>
/// <param name="Phase">"kernel 1" (the Secure AVIC driver) or "kernel 2" (after kexec).</param>
/// <param name="Source">Who sent it.</param>
/// <param name="Vcpu">The target vCPU.</param>
/// <param name="Vector">The vector, or null for an NMI.</param>
/// <param name="Allowed">
/// What the target's Secure AVIC state said when it arrived: ALLOWED_IRR (or ALLOWEDNMI) for what
/// the hypervisor requests; null when nothing filtered it (a guest IPI, or Secure AVIC disabled).
/// </param>
/// <param name="GotThrough">Whether it reached the guest (IRR, or a pending NMI).</param>
public sealed record SecureAvicDelivery(string Phase, SecureAvicSource Source, int Vcpu, byte? Vector, bool? Allowed, bool GotThrough);

/// <summary>The Secure AVIC state of one vCPU at a point of the scenario.</summary>
/// <param name="Vcpu">The vCPU.</param>
/// <param name="AllowedVectors">ALLOWED_IRR, ascending.</param>
/// <param name="NmiAllowed">Whether the hypervisor may inject an NMI.</param>
/// <param name="ControlMsr">MSR_AMD64_SAVIC_CONTROL.</param>
/// <param name="RegisteredGpa">The backing page the hypervisor holds registered, or null.</param>
public sealed record SecureAvicVcpuSnapshot(int Vcpu, IReadOnlyList<byte> AllowedVectors, bool NmiAllowed, ulong ControlMsr, ulong? RegisteredGpa)
{
    internal static SecureAvicVcpuSnapshot Of(SecureAvicVcpu state)
    {
        var vectors = new List<byte>();
        for (int v = 0; v < 256; v++)
        {
            if (state.Page.IsAllowed((byte)v))
            {
                vectors.Add((byte)v);
            }
        }

        return new SecureAvicVcpuSnapshot(state.Index, vectors, state.NmiAllowed, state.ControlMsr, state.RegisteredGpa);
    }
}

/// <summary>The outcome of one run of <see cref="SecureAvicKexecScenario"/>.</summary>
/// <param name="TearDown">Whether the first kernel tore Secure AVIC down before kexec.</param>
/// <param name="FirstKernel">What the first kernel's driver allowed, per vCPU, before kexec.</param>
/// <param name="SecondKernel">The Secure AVIC state the second kernel runs with, per vCPU, at the end.</param>
/// <param name="Deliveries">Every interrupt of both phases: guest IPIs, devices, the timer, and the hypervisor's own attempts.</param>
/// <param name="UnhandledVcExceptions">#VC exceptions the second kernel could not handle (each would terminate an SEV-SNP guest).</param>
/// <param name="VectorMoves">IOAPIC vector moves by the first kernel: (vector, from vCPU, to vCPU, still allowed on the old vCPU afterwards).</param>
public sealed record SecureAvicKexecResult(
    bool TearDown,
    IReadOnlyList<SecureAvicVcpuSnapshot> FirstKernel,
    IReadOnlyList<SecureAvicVcpuSnapshot> SecondKernel,
    IReadOnlyList<SecureAvicDelivery> Deliveries,
    long UnhandledVcExceptions,
    IReadOnlyList<(byte Vector, int From, int To, bool StillAllowedOnOld)> VectorMoves)
{
    /// <summary>Device interrupts of the second kernel that never reached it.</summary>
    public int SecondKernelDevicesLost => Deliveries.Count(d => d.Phase == SecureAvicKexecScenario.SecondKernelPhase && d.Source == SecureAvicSource.Device && !d.GotThrough);

    /// <summary>
    /// Whether the second kernel, which knows nothing of Secure AVIC, boots cleanly: Secure AVIC
    /// is off and no page is registered on every vCPU, nothing is left allowed, it took no #VC it
    /// cannot handle and every one of its device interrupts arrived.
    /// </summary>
    public bool SecondKernelBootsCleanly =>
        UnhandledVcExceptions == 0 && SecondKernelDevicesLost == 0 &&
        SecondKernel.All(s => s.ControlMsr == 0 && s.RegisteredGpa is null && s.AllowedVectors.Count == 0);
}

/// <summary>
/// The kexec scenario of issue 7 (K. Shutemov's review of the Secure AVIC RFC, virtualization-reference
/// §7.6): a 2-vCPU SEV-SNP guest boots a kernel with the Secure AVIC driver, programs an IOAPIC
/// line, an MSI and its timers, moves a vector between vCPUs, and meets a hostile hypervisor; then
/// it kexecs into a kernel that knows nothing of Secure AVIC, with or without the driver's teardown.
/// Without it, the old control MSR, page registrations and ALLOWED_IRR stay in force: the new
/// kernel's device interrupts are filtered out, the old kernel's vectors stay injectable, and its
/// x2APIC accesses raise #VC it cannot handle. With it, the new kernel runs as a plain SEV-SNP guest.
/// </summary>
public static class SecureAvicKexecScenario
{
    /// <summary>The phase name of the first kernel.</summary>
    public const string FirstKernelPhase = "kernel 1";

    /// <summary>The phase name of the second kernel.</summary>
    public const string SecondKernelPhase = "kernel 2";

    /// <summary>The first kernel's IOAPIC line: pin 4, vector 0x41, first to vCPU 0, then moved to vCPU 1.</summary>
    public const int FirstKernelPin = 4;

    /// <summary>The first kernel's IOAPIC vector.</summary>
    public const byte FirstKernelPinVector = 0x41;

    /// <summary>The first kernel's MSI vector (to vCPU 1).</summary>
    public const byte FirstKernelMsiVector = 0x42;

    /// <summary>The LAPIC timer vector of both kernels (Linux LOCAL_TIMER_VECTOR).</summary>
    public const byte TimerVector = 0xEC;

    /// <summary>The vector of the first kernel's IPI (Linux CALL_FUNCTION_SINGLE_VECTOR): never allowed.</summary>
    public const byte IpiVector = 0xFB;

    /// <summary>A vector no source uses.</summary>
    public const byte UnusedVector = 0x30;

    /// <summary>The second kernel's IOAPIC line: pin 9, vector 0x51, to vCPU 0.</summary>
    public const int SecondKernelPin = 9;

    /// <summary>The second kernel's IOAPIC vector.</summary>
    public const byte SecondKernelPinVector = 0x51;

    /// <summary>The second kernel's MSI vector (to vCPU 1).</summary>
    public const byte SecondKernelMsiVector = 0x52;

    private const uint Svr = 0x80F;
    private const uint Eoi = 0x80B;
    private const uint Icr = 0x830;
    private const uint LvtTimer = 0x832;
    private const uint InitialCount = 0x838;
    private const uint CurrentCount = 0x839;
    private const uint DivideConfiguration = 0x83E;

    /// <summary>Runs the scenario, with the first kernel's teardown before kexec or without.</summary>
    public static SecureAvicKexecResult Run(bool tearDown, CostModel? costModel = null)
    {
        var mode = new SecureAvicMode(costModel);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        var deliveries = new List<SecureAvicDelivery>();
        var moves = new List<(byte, int, int, bool)>();
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);

        // Kernel 1 boots: the BSP enters x2APIC (the driver sets up Secure AVIC), starts the AP
        // (INIT and SIPI go to the hypervisor), which enters x2APIC too; both enable their LAPIC
        // and program the timer the hypervisor emulates (the driver allows its vector).
        EnterX2Apic(bsp);
        Check(bsp.WriteMsr(Icr, (1UL << 32) | ((uint)DeliveryMode.Init << 8) | InterruptCommand.LevelAssert));
        ap.Accept();
        Check(bsp.WriteMsr(Icr, (1UL << 32) | 0x08 | ((uint)DeliveryMode.StartUp << 8) | InterruptCommand.LevelAssert));
        ap.Accept();
        EnterX2Apic(ap);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            Check(vcpu.WriteMsr(DivideConfiguration, 0xB));
            Check(vcpu.WriteMsr(LvtTimer, TimerVector));
        }

        // Devices: IOAPIC pin 4 (edge, vector 0x41, physical destination vCPU 0) and an MSI
        // (vector 0x42 to vCPU 1); the driver allows each vector on its destination.
        ProgramPin(bsp, FirstKernelPin, FirstKernelPinVector, destination: 0);
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Device, mode, ap, FirstKernelMsiVector,
            () => machine.SendMsi(Msi.EncodeAddress(1, DestinationMode.Physical, false), Msi.EncodeData(FirstKernelMsiVector, DeliveryMode.Fixed, false)));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Device, mode, bsp, FirstKernelPinVector, () => Pulse(machine, FirstKernelPin));

        // The vector moves: pin 4 now goes to vCPU 1; its ALLOWED_IRR bit leaves vCPU 0.
        ProgramPin(bsp, FirstKernelPin, FirstKernelPinVector, destination: 1);
        moves.Add((FirstKernelPinVector, 0, 1, mode.GetVcpu(0).Page.IsAllowed(FirstKernelPinVector)));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Device, mode, ap, FirstKernelPinVector, () => Pulse(machine, FirstKernelPin));

        // The timer of vCPU 1 fires; a guest IPI from vCPU 0 reaches vCPU 1.
        Check(ap.WriteMsr(InitialCount, 1000));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Timer, mode, ap, TimerVector, () => machine.Advance(1000));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.GuestIpi, mode, ap, IpiVector, () => Check(bsp.WriteMsr(Icr, (1UL << 32) | IpiVector)));

        // The hypervisor tries on its own: a device vector where it is allowed, the same vector
        // on the vCPU it moved away from, an IPI vector, a vector nobody uses, and an NMI.
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Hypervisor, mode, ap, FirstKernelPinVector, () => mode.InjectFromHypervisor(ap, FirstKernelPinVector));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Hypervisor, mode, bsp, FirstKernelPinVector, () => mode.InjectFromHypervisor(bsp, FirstKernelPinVector));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Hypervisor, mode, bsp, IpiVector, () => mode.InjectFromHypervisor(bsp, IpiVector));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Hypervisor, mode, ap, UnusedVector, () => mode.InjectFromHypervisor(ap, UnusedVector));
        Observe(deliveries, FirstKernelPhase, SecureAvicSource.Hypervisor, mode, bsp, null, () => mode.InjectNmiFromHypervisor(bsp));

        SecureAvicVcpuSnapshot[] firstKernel = Snapshot(mode, machine);

        // kexec: disable_local_APIC on every CPU (the driver's teardown, if asked), then a kernel
        // that knows nothing of Secure AVIC.
        mode.Kexec(tearDown, SecureAvicGuestKernel.Unaware);
        long unhandledBefore = mode.Counters.UnhandledVcExceptions;

        // Kernel 2 boots: it enables its LAPICs natively, programs its own devices and its timer,
        // and reads the timer back.
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            vcpu.WriteMsr(Svr, 0x1FF);
            vcpu.WriteMsr(DivideConfiguration, 0xB);
            vcpu.WriteMsr(LvtTimer, TimerVector);
        }

        ProgramPin(bsp, SecondKernelPin, SecondKernelPinVector, destination: 0);
        Observe(deliveries, SecondKernelPhase, SecureAvicSource.Device, mode, bsp, SecondKernelPinVector, () => Pulse(machine, SecondKernelPin));
        Observe(deliveries, SecondKernelPhase, SecureAvicSource.Device, mode, ap, SecondKernelMsiVector,
            () => machine.SendMsi(Msi.EncodeAddress(1, DestinationMode.Physical, false), Msi.EncodeData(SecondKernelMsiVector, DeliveryMode.Fixed, false)));
        ap.ReadMsr(CurrentCount, out _);

        // The hypervisor tries again: the first kernel's device vector, and a vector nobody uses.
        Observe(deliveries, SecondKernelPhase, SecureAvicSource.Hypervisor, mode, ap, FirstKernelPinVector, () => mode.InjectFromHypervisor(ap, FirstKernelPinVector));
        Observe(deliveries, SecondKernelPhase, SecureAvicSource.Hypervisor, mode, bsp, UnusedVector, () => mode.InjectFromHypervisor(bsp, UnusedVector));

        return new SecureAvicKexecResult(
            tearDown,
            firstKernel,
            Snapshot(mode, machine),
            deliveries,
            mode.Counters.UnhandledVcExceptions - unhandledBefore,
            moves);
    }

    private static SecureAvicVcpuSnapshot[] Snapshot(SecureAvicMode mode, VirtualMachine machine)
    {
        var snapshots = new SecureAvicVcpuSnapshot[machine.VcpuCount];
        for (int i = 0; i < snapshots.Length; i++)
        {
            snapshots[i] = SecureAvicVcpuSnapshot.Of(mode.GetVcpu(i));
        }

        return snapshots;
    }

    /// <summary>
    /// Runs <paramref name="send"/> and records whether the interrupt reached <paramref name="target"/>
    /// (a fixed vector in IRR, or a pending NMI); then the guest takes and completes it, so that
    /// every observation starts from a quiet vCPU.
    /// </summary>
    private static void Observe(List<SecureAvicDelivery> deliveries, string phase, SecureAvicSource source, SecureAvicMode mode, Vcpu target, byte? vector, Action send)
    {
        LocalApic apic = target.Apic;
        bool before = vector is byte b ? apic.Irr.Get(b) : (apic.PendingEvents & ApicEvents.Nmi) != 0;
        send();
        bool after = vector is byte a ? apic.Irr.Get(a) : (apic.PendingEvents & ApicEvents.Nmi) != 0;

        // Read after the send: the driver allows an MSI's vector when the device is programmed,
        // which the model first sees as the MSI itself, just before the hypervisor requests it.
        SecureAvicVcpu state = mode.GetVcpu(target.Index);
        bool? allowed = source == SecureAvicSource.GuestIpi || !state.Enabled
            ? null
            : vector is byte v ? state.Page.IsAllowed(v) : state.NmiAllowed;
        deliveries.Add(new SecureAvicDelivery(phase, source, target.Index, vector, allowed, after && !before));
        if (after)
        {
            CpuEvent taken = target.Accept();
            if (taken.Kind == CpuEventKind.Fixed)
            {
                target.WriteMsr(Eoi, 0);
            }
        }
    }

    private static void EnterX2Apic(Vcpu vcpu)
    {
        Check(vcpu.WriteMsr(ApicBaseMsr.Msr, vcpu.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable));
        Check(vcpu.WriteMsr(Svr, 0x1FF));
    }

    private static void ProgramPin(Vcpu vcpu, int pin, byte vector, uint destination)
    {
        ulong ioApic = IoApic.DefaultBase;
        ulong entry = vector | ((ulong)destination << RedirectionEntry.DestinationShift);
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(IoApicRegisters.RedirectionTableIndex + (2 * pin) + 1)));
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)(entry >> 32)));
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(IoApicRegisters.RedirectionTableIndex + (2 * pin))));
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)entry));
    }

    private static void Pulse(VirtualMachine machine, int pin)
    {
        machine.SetIrq(pin, true);
        machine.SetIrq(pin, false);
    }

    private static void Check(ApicAccessResult result)
    {
        if (result != ApicAccessResult.Ok)
        {
            throw new InvalidOperationException($"the scenario's guest access failed: {result}");
        }
    }
}
