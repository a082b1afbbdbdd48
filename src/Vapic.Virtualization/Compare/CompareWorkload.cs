using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Compare;

/// <summary>What one run of a <see cref="CompareWorkload"/> under one mode produced.</summary>
/// <param name="Counts">The mode's ledger over the measured phase (boot and setup excluded).</param>
/// <param name="InterruptsTaken">Interrupts (fixed and NMI) the guest took in the measured phase, as the guest counted them.</param>
/// <param name="Problems">Lost, stray or late interrupts, faulting accesses, ledger miscounts; empty when the run was clean.</param>
/// <param name="Machine">The machine after the run.</param>
public sealed record CompareWorkloadRun(LedgerCounts Counts, long InterruptsTaken, IReadOnlyList<string> Problems, VirtualMachine Machine)
{
    /// <summary>What each device source of <see cref="CompareWorkloadOptions.Devices"/> did, in the same order.</summary>
    public IReadOnlyList<DeviceSourceRun> Devices { get; init; } = [];
}

/// <summary>What one device source did in a run.</summary>
/// <param name="Source">The source.</param>
/// <param name="Firings">Times it fired in the measured phase; each firing sends one interrupt.</param>
/// <param name="InterruptsTaken">Interrupts of its firings its target took in the firing's step.</param>
public sealed record DeviceSourceRun(DeviceSource Source, long Firings, long InterruptsTaken);

/// <summary>
/// A deterministic guest program for comparing modes. It boots the machine, programs what the
/// workload needs, then runs rounds of traffic and measures what the mode accounted.
/// </summary>
/// <remarks>
/// <para>
/// Boot and setup (excluded from the measured counts: the ledger is copied at the end of setup and
/// the result is the difference): at virtual time 0 the BSP switches to x2APIC (x2APIC guest) and
/// software-enables its LAPIC (SVR = 0x1FF), then brings each AP up with an INIT IPI and a start-up
/// IPI (vector 0x08) through its ICR (SDM "MP Initialization Protocol"); each AP takes both, then
/// switches to x2APIC and enables its LAPIC. For timer and mixed, every vCPU programs LVT Timer
/// (periodic, vector 0xEC), DCR = divide by 1 and TMICT = <see cref="CompareWorkloadOptions.RoundPeriodNs"/>
/// / the APIC bus cycle (<see cref="MachineOptions.ApicBusCycleNs"/>; 10,000 ticks at the default
/// 1 GHz, 250 at 25 MHz), so every timer expires at each multiple of the round period. For mixed,
/// the BSP programs IOAPIC pin <see cref="LevelGsi"/> (level, active high, vector 0x3A, physical
/// destination the last vCPU). The BSP then programs the pin of every IOAPIC device source (its
/// vector and delivery mode, physical destination its target's APIC ID, polarity bit 13, trigger
/// bit 15, unmasked). With <see cref="CompareWorkloadOptions.HaltIdle"/> every vCPU then halts.
/// </para>
/// <para>
/// Round k (k = 1..R) happens at k × the round period. It is a sequence of steps; in each step one
/// source acts and then every running vCPU, in vCPU order, takes what is pending and handles it: the
/// handler EOIs through the EOI register (WRMSR 0x80B or an MMIO write at 0xB0); the handler of the
/// level line first quiets the device (the line goes low) so the EOI broadcast clears Remote IRR
/// and nothing is re-sent (SDM "EOI Register"). With HaltIdle every vCPU then halts again, so every
/// interrupt of the next step finds its target halted; without it every vCPU stays running.
/// Steps per round, in this order:
/// </para>
/// <list type="bullet">
/// <item>timer, mixed: the clock reaches the round instant and every LAPIC timer fires (one step).</item>
/// <item>ipi-storm, mixed: for i = 0..n-1, vCPU i sends fixed vector 0xFB, physical destination
/// the APIC ID of vCPU (i + 1 + (k-1) mod (n-1)) mod n (never itself; every vCPU receives exactly one
/// per round; over n-1 rounds every pair occurs). xAPIC: ICR high then ICR low; x2APIC: one WRMSR 0x830.</item>
/// <item>broadcast: for i = 0..n-1, vCPU i sends fixed vector 0xFD with shorthand all-excluding-self
/// (xAPIC: ICR low only, the destination field is ignored). mixed: only vCPU (k-1) mod n broadcasts.</item>
/// <item>device, mixed: for t = 0..n-1, a device writes an edge MSI with vector 0x41, physical destination vCPU t.</item>
/// <item>mixed: the device asserts IOAPIC pin <see cref="LevelGsi"/> (level, to the last vCPU).</item>
/// </list>
/// <para>
/// Interrupts per round: ipi-storm n, broadcast n(n-1), timer n, device n, mixed 4n, idle 0.
/// </para>
/// <para>
/// Device sources (<see cref="CompareWorkloadOptions.Devices"/>): every firing is a step of its own.
/// A firing between round instants happens at its exact time (the clock advances to it, so no LAPIC
/// timer is skipped or reordered); a firing at a round instant happens after that round's built-in
/// steps; firings at the same instant happen in device order. An MSI source writes its MSI (edge,
/// physical destination, delivery mode fixed, lowest priority or NMI); an edge IOAPIC source pulses
/// its line (asserted, then deasserted); a level IOAPIC source asserts its line and its handler
/// deasserts it before the EOI, as for <see cref="LevelGsi"/>. The line values are the asserted
/// state whatever the pin's polarity (lapic-reference A23: the polarity bit is stored, and the
/// value given to the IOAPIC already means asserted). A source fires at start, start + period, ...
/// up to its count, within (0, duration]: <see cref="DeviceSource.FiringsWithin"/>.
/// </para>
/// <para>
/// No vector is ever pending twice, so nothing merges and the guest takes exactly what the schedule
/// sends; the workload checks that every interrupt sent in a step is taken in that step by the right
/// vCPU (an NMI as an NMI event, which its handler ends without an EOI), and that the mode's ledger
/// counted each taken interrupt once.
/// </para>
/// <para>
/// A vCPU that acts (sends an IPI) while halted enters the guest through the mode's
/// <see cref="IInterruptVirtualization.OnGuestEntry"/>; what woke it stands for guest work and is not
/// charged. Only interrupts that reach a halted vCPU take the wake-up path.
/// </para>
/// </remarks>
public sealed class CompareWorkload
{
    /// <summary>The LAPIC timer vector.</summary>
    public const byte TimerVector = 0xEC;

    /// <summary>The vector of the unicast IPIs.</summary>
    public const byte IpiVector = 0xFB;

    /// <summary>The vector of the broadcast IPIs.</summary>
    public const byte BroadcastVector = 0xFD;

    /// <summary>The MSI vector.</summary>
    public const byte MsiVector = 0x41;

    /// <summary>The vector of the level-triggered IOAPIC line.</summary>
    public const byte LevelVector = 0x3A;

    /// <summary>The level-triggered IOAPIC input (mixed).</summary>
    public const int LevelGsi = 10;

    /// <summary>The start-up vector: APs begin at 0x8000.</summary>
    public const byte StartupVector = 0x08;

    /// <summary>SVR as every vCPU writes it: software-enabled, spurious vector 0xFF.</summary>
    public const uint SpuriousVectorValue = 0x1FF;

    private const int MaxProblems = 20;

    // Outstanding interrupts are counted per vCPU and vector, with one more slot for NMIs.
    private const int SlotsPerVcpu = 257;
    private const int NmiSlot = 256;

    private readonly CompareWorkloadOptions _options;
    private readonly int _n;
    private readonly int[] _outstanding;
    private readonly int[] _late;
    private readonly DeviceSource[] _devices;
    private readonly string[] _deviceSteps;
    private readonly long[] _deviceNext;
    private readonly long[] _deviceLeft;
    private readonly long[] _deviceFirings;
    private readonly long[] _deviceTaken;
    private readonly int[] _levelPinOfVector;
    private int _stepDevice = -1;
    private readonly List<string> _problems = [];
    private VirtualMachine? _machine;
    private long _outstandingTotal;
    private long _lateTotal;
    private long _taken;
    private long _problemCount;
    private bool _measuring;

    /// <summary>Creates the workload.</summary>
    /// <exception cref="ArgumentException"><paramref name="options"/> are invalid.</exception>
    public CompareWorkload(CompareWorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }

        _options = options;
        _n = options.VcpuCount;
        _outstanding = new int[_n * SlotsPerVcpu];
        _late = new int[_n * SlotsPerVcpu];
        _devices = [.. options.Devices];
        _deviceSteps = new string[_devices.Length];
        _deviceNext = new long[_devices.Length];
        _deviceLeft = new long[_devices.Length];
        _deviceFirings = new long[_devices.Length];
        _deviceTaken = new long[_devices.Length];
        _levelPinOfVector = new int[256];
        Array.Fill(_levelPinOfVector, -1);
        if (options.Workload == CompareWorkloadKind.Mixed)
        {
            _levelPinOfVector[LevelVector] = LevelGsi;
        }

        for (int d = 0; d < _devices.Length; d++)
        {
            DeviceSource device = _devices[d];
            _deviceSteps[d] = $"device '{device.Name}'";
            _deviceNext[d] = device.FirstFiringNs;
            _deviceLeft[d] = device.Count ?? long.MaxValue;
            if (device.Kind == DeviceSourceKind.IoApic && device.LevelTriggered && !device.IsNmi)
            {
                _levelPinOfVector[device.Vector] = device.Pin;
            }
        }
    }

    /// <summary>The options of this workload.</summary>
    public CompareWorkloadOptions Options => _options;

    /// <summary>The vCPU the level-triggered IOAPIC line is routed to (mixed): the last one.</summary>
    public static int LevelTargetCpu(int vcpuCount) => vcpuCount - 1;

    /// <summary>The target of vCPU <paramref name="sender"/>'s unicast IPI in round <paramref name="round"/> (1-based, at least 2 vCPUs).</summary>
    public static int IpiTarget(int sender, int round, int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vcpuCount, CompareWorkloadOptions.MinVcpus);
        ArgumentOutOfRangeException.ThrowIfLessThan(round, 1);
        return (sender + 1 + ((round - 1) % (vcpuCount - 1))) % vcpuCount;
    }

    /// <summary>Interrupts the schedule of <paramref name="kind"/> sends per round on <paramref name="vcpuCount"/> vCPUs.</summary>
    public static long InterruptsPerRound(CompareWorkloadKind kind, int vcpuCount)
    {
        long n = vcpuCount;
        return kind switch
        {
            CompareWorkloadKind.IpiStorm => n,
            CompareWorkloadKind.Broadcast => n * (n - 1),
            CompareWorkloadKind.Timer => n,
            CompareWorkloadKind.Device => n,
            CompareWorkloadKind.Mixed => n + n + (n - 1) + n + 1,
            CompareWorkloadKind.Idle => 0,
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
        };
    }

    /// <summary>
    /// Interrupts the whole measured phase of <paramref name="options"/> sends (and the guest must
    /// take): the built-in schedule's rounds plus one per device firing in (0, duration].
    /// </summary>
    public static long ExpectedInterrupts(CompareWorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        long expected = InterruptsPerRound(options.Workload, options.VcpuCount) * options.RoundCount;
        foreach (DeviceSource device in options.Devices)
        {
            expected += device.FiringsWithin(options.EffectiveDurationNs);
        }

        return expected;
    }

    /// <summary>
    /// Runs the workload on a new machine under <paramref name="mode"/> (which must not be attached
    /// yet). Each instance runs once.
    /// </summary>
    public CompareWorkloadRun Run(VirtualizationMode mode)
    {
        ArgumentNullException.ThrowIfNull(mode);
        if (_machine is not null)
        {
            throw new InvalidOperationException("A CompareWorkload runs once; create a new one.");
        }

        VirtualMachine machine = new(_options.Machine ?? new MachineOptions { VcpuCount = _n }, mode);
        _machine = machine;
        Boot();
        SetUp();
        HaltIdleVcpus();

        LedgerCounts atStart = LedgerCounts.Capture(mode.Ledger);
        _measuring = true;
        int rounds = _options.RoundCount;
        for (int round = 1; round <= rounds; round++)
        {
            long instant = round * CompareWorkloadOptions.RoundPeriodNs;
            FireDevices(instant, atLimit: false);
            RunRound(round);
            FireDevices(instant, atLimit: true);
        }

        FireDevices(_options.EffectiveDurationNs, atLimit: true);
        machine.AdvanceTo(_options.EffectiveDurationNs);
        _measuring = false;

        LedgerCounts counts = LedgerCounts.Capture(mode.Ledger).Since(atStart);
        if (_lateTotal != 0)
        {
            Problem($"{_lateTotal} interrupt(s) sent were never taken");
        }

        if (counts.InterruptsDelivered != _taken)
        {
            Problem($"the guest took {_taken} interrupts but the mode's ledger counted {counts.InterruptsDelivered}");
        }

        if (_problemCount > MaxProblems)
        {
            _problems.Add($"... and {_problemCount - MaxProblems} more problem(s)");
        }

        var devices = new DeviceSourceRun[_devices.Length];
        for (int d = 0; d < devices.Length; d++)
        {
            devices[d] = new DeviceSourceRun(_devices[d], _deviceFirings[d], _deviceTaken[d]);
        }

        return new CompareWorkloadRun(counts, _taken, _problems, machine) { Devices = devices };
    }

    private VirtualMachine Machine => _machine!;

    private void Boot()
    {
        Vcpu bsp = Machine.GetVcpu(0);
        EnableLocalApic(bsp);
        for (int i = 1; i < _n; i++)
        {
            Vcpu ap = Machine.GetVcpu(i);
            uint destination = Machine.Options.ApicIdOf(i);
            SendIcr(bsp, destination, ((uint)DeliveryMode.Init << 8) | InterruptCommand.LevelAssert);
            ExpectBootEvent(ap, CpuEventKind.Init);
            SendIcr(bsp, destination, StartupVector | ((uint)DeliveryMode.StartUp << 8) | InterruptCommand.LevelAssert);
            ExpectBootEvent(ap, CpuEventKind.StartUp);
            EnableLocalApic(ap);
        }
    }

    private void ExpectBootEvent(Vcpu ap, CpuEventKind kind)
    {
        CpuEvent taken = ap.Accept();
        if (taken.Kind != kind)
        {
            Problem($"vCPU {ap.Index} took {taken} during boot instead of {kind}");
        }
    }

    private void EnableLocalApic(Vcpu vcpu)
    {
        if (_options.UseX2Apic && vcpu.Apic.Mode != ApicMode.X2Apic)
        {
            // xAPIC → x2APIC by setting EXTD with EN (SDM "x2APIC State Transitions").
            ulong value = vcpu.Apic.BaseMsr | ApicBaseMsr.GlobalEnable | ApicBaseMsr.X2ApicEnable;
            Check(vcpu.WriteMsr(ApicBaseMsr.Msr, value), vcpu, "WRMSR IA32_APIC_BASE");
        }

        WriteRegister(vcpu, ApicRegister.SpuriousVectorOffset, SpuriousVectorValue);
    }

    private void SetUp()
    {
        CompareWorkloadKind kind = _options.Workload;
        if (kind is CompareWorkloadKind.Timer or CompareWorkloadKind.Mixed)
        {
            // LVT Timer first (periodic, unmasked), then divide by 1, then TMICT starts the count:
            // every timer was armed at the same instant, so all expire at each multiple of the period.
            // TMICT counts bus cycles (divide by 1); Validate made the round period a whole number of them.
            uint lvt = TimerVector | ((uint)TimerMode.Periodic << LocalVectorTable.TimerModeShift);
            uint initialCount = (uint)(CompareWorkloadOptions.RoundPeriodNs / Machine.Options.ApicBusCycleNs);
            for (int i = 0; i < _n; i++)
            {
                Vcpu vcpu = Machine.GetVcpu(i);
                WriteRegister(vcpu, ApicRegister.LvtTimerOffset, lvt);
                WriteRegister(vcpu, ApicRegister.DivideConfigurationOffset, 0xB);
                WriteRegister(vcpu, ApicRegister.InitialCountOffset, initialCount);
            }
        }

        if (kind == CompareWorkloadKind.Mixed)
        {
            ulong entry = LevelVector | RedirectionEntry.TriggerModeBit | PhysicalDestination(LevelTargetCpu(_n));
            WriteRedirectionEntry(Machine.GetVcpu(0), LevelGsi, entry);
        }

        foreach (DeviceSource device in _devices)
        {
            if (device.Kind != DeviceSourceKind.IoApic)
            {
                continue;
            }

            // The vector field is ignored for NMI delivery (and must be 0 per the 82093AA datasheet).
            ulong entry = (device.IsNmi ? 0UL : device.Vector) |
                ((ulong)device.Delivery << RedirectionEntry.DeliveryModeShift) |
                PhysicalDestination(device.Target);
            if (device.ActiveLow)
            {
                entry |= RedirectionEntry.PolarityBit;
            }

            if (device.LevelTriggered)
            {
                entry |= RedirectionEntry.TriggerModeBit;
            }

            WriteRedirectionEntry(Machine.GetVcpu(0), device.Pin, entry);
        }
    }

    // Destination bits 7:0 in RTE[63:56], bits 14:8 in RTE[55:49] (the extended destination ID,
    // as Linux programs it for APIC IDs above 0xFF); destination mode physical (bit 11 clear).
    private ulong PhysicalDestination(int vcpu)
    {
        ulong destination = Machine.Options.ApicIdOf(vcpu);
        return ((destination & 0xFF) << RedirectionEntry.DestinationShift) |
            (((destination >> 8) & 0x7F) << RedirectionEntry.ExtendedDestinationShift);
    }

    // Fires, each as its own step and in time order (ties in device order), every device firing
    // due before limit, or at limit too when atLimit is set.
    private void FireDevices(long limit, bool atLimit)
    {
        while (true)
        {
            long next = long.MaxValue;
            for (int d = 0; d < _devices.Length; d++)
            {
                if (_deviceLeft[d] != 0 && _deviceNext[d] < next)
                {
                    next = _deviceNext[d];
                }
            }

            if (next > limit || (next == limit && !atLimit))
            {
                return;
            }

            Machine.AdvanceTo(next);
            for (int d = 0; d < _devices.Length; d++)
            {
                if (_deviceLeft[d] != 0 && _deviceNext[d] == next)
                {
                    Fire(d);
                    _deviceNext[d] = next + _devices[d].PeriodNs;
                    _deviceLeft[d]--;
                }
            }
        }
    }

    private void Fire(int d)
    {
        DeviceSource device = _devices[d];
        _deviceFirings[d]++;
        Sent(device.Target, device.IsNmi ? NmiSlot : device.Vector);
        _stepDevice = d;
        if (device.Kind == DeviceSourceKind.Msi)
        {
            // PCI MSI is edge-triggered: the data word has no trigger or level bits.
            ulong address = Msi.EncodeAddress(Machine.Options.ApicIdOf(device.Target), DestinationMode.Physical, redirectionHint: false);
            uint data = Msi.EncodeData(device.IsNmi ? (byte)0 : device.Vector, device.Delivery, levelTriggered: false);
            MsiDecodeResult decoded = Machine.SendMsi(address, data);
            if (decoded != MsiDecodeResult.Ok)
            {
                Problem($"the MSI of device '{device.Name}' decoded as {decoded}");
            }
        }
        else
        {
            // The line value means asserted whatever the polarity (lapic-reference A23). An edge
            // pulses the line; a level line stays asserted until the handler quiets the device.
            Machine.SetIrq(device.Pin, true);
            if (!device.LevelTriggered)
            {
                Machine.SetIrq(device.Pin, false);
            }
        }

        EndStep(_deviceSteps[d]);
        _stepDevice = -1;
    }

    private void RunRound(int round)
    {
        CompareWorkloadKind kind = _options.Workload;
        long now = round * CompareWorkloadOptions.RoundPeriodNs;
        if (kind is CompareWorkloadKind.Timer or CompareWorkloadKind.Mixed)
        {
            for (int i = 0; i < _n; i++)
            {
                Sent(i, TimerVector);
            }

            Machine.AdvanceTo(now);
            EndStep("timer expiry");
        }
        else
        {
            Machine.AdvanceTo(now);
        }

        if (kind is CompareWorkloadKind.IpiStorm or CompareWorkloadKind.Mixed)
        {
            for (int i = 0; i < _n; i++)
            {
                int target = IpiTarget(i, round, _n);
                Sent(target, IpiVector);
                SendIcr(Machine.GetVcpu(i), Machine.Options.ApicIdOf(target), IpiVector);
                EndStep("unicast IPI");
            }
        }

        if (kind == CompareWorkloadKind.Broadcast)
        {
            for (int i = 0; i < _n; i++)
            {
                Broadcast(i);
            }
        }
        else if (kind == CompareWorkloadKind.Mixed)
        {
            Broadcast((round - 1) % _n);
        }

        if (kind is CompareWorkloadKind.Device or CompareWorkloadKind.Mixed)
        {
            for (int t = 0; t < _n; t++)
            {
                Sent(t, MsiVector);
                ulong address = Msi.EncodeAddress(Machine.Options.ApicIdOf(t), DestinationMode.Physical, redirectionHint: false);
                MsiDecodeResult decoded = Machine.SendMsi(address, Msi.EncodeData(MsiVector, DeliveryMode.Fixed, levelTriggered: false));
                if (decoded != MsiDecodeResult.Ok)
                {
                    Problem($"the MSI to vCPU {t} decoded as {decoded}");
                }

                EndStep("MSI");
            }
        }

        if (kind == CompareWorkloadKind.Mixed)
        {
            Sent(LevelTargetCpu(_n), LevelVector);
            Machine.SetIrq(LevelGsi, true);
            EndStep("level IOAPIC line");
        }
    }

    private void Broadcast(int sender)
    {
        for (int t = 0; t < _n; t++)
        {
            if (t != sender)
            {
                Sent(t, BroadcastVector);
            }
        }

        uint low = BroadcastVector | ((uint)DestinationShorthand.AllExcludingSelf << InterruptCommand.ShorthandShift);
        Vcpu vcpu = Machine.GetVcpu(sender);
        if (vcpu.Apic.Mode == ApicMode.X2Apic)
        {
            Check(vcpu.WriteMsr(IcrMsr, low), vcpu, "WRMSR ICR");
        }
        else
        {
            // With a shorthand the destination field is ignored: Linux writes ICR low only.
            Check(vcpu.WriteMmio(vcpu.Apic.MmioBase + ApicRegister.InterruptCommandOffset, low), vcpu, "ICR low write");
        }

        EndStep("broadcast IPI");
    }

    private static uint IcrMsr => ApicRegister.X2ApicMsrBase + (ApicRegister.InterruptCommandOffset >> 4);

    // slot: the vector, or NmiSlot.
    private void Sent(int target, int slot)
    {
        _outstanding[(target * SlotsPerVcpu) + slot]++;
        _outstandingTotal++;
    }

    // Every running vCPU takes and handles what is pending; then, with HaltIdle, every vCPU halts.
    private void EndStep(string what)
    {
        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            if (vcpu.HostState == VcpuHostState.Running)
            {
                Drain(vcpu);
            }
        }

        if (_outstandingTotal != 0)
        {
            Problem($"at {Machine.Now} ns, {_outstandingTotal} interrupt(s) of a {what} step were not taken in that step ({Describe()})");
            ClearOutstanding();
        }

        HaltIdleVcpus();
    }

    private void Drain(Vcpu vcpu)
    {
        while (true)
        {
            CpuEvent taken = vcpu.Accept();
            if (taken.Kind == CpuEventKind.None)
            {
                return;
            }

            if (taken.Kind is not (CpuEventKind.Fixed or CpuEventKind.Nmi))
            {
                Problem($"vCPU {vcpu.Index} took {taken}, which the workload never sends");
                continue;
            }

            if (_measuring)
            {
                _taken++;
            }

            bool nmi = taken.Kind == CpuEventKind.Nmi;
            int slot = (vcpu.Index * SlotsPerVcpu) + (nmi ? NmiSlot : taken.Vector);
            if (_outstanding[slot] != 0)
            {
                _outstanding[slot]--;
                _outstandingTotal--;
                if (_stepDevice >= 0 && IsFromDevice(_devices[_stepDevice], vcpu.Index, taken))
                {
                    _deviceTaken[_stepDevice]++;
                }
            }
            else if (_late[slot] != 0)
            {
                _late[slot]--;
                _lateTotal--;
            }
            else
            {
                Problem($"vCPU {vcpu.Index} took {(nmi ? "an NMI" : $"vector 0x{taken.Vector:x2}")}, which was not sent to it");
            }

            if (nmi)
            {
                // An NMI handler ends with IRET; an NMI takes no EOI (SDM "Signaling Interrupt Servicing Completion").
                continue;
            }

            int levelPin = _levelPinOfVector[taken.Vector];
            if (levelPin >= 0)
            {
                // The handler quiets the device before the EOI, so the EOI broadcast clears Remote
                // IRR and the IOAPIC does not send again (82093AA level-triggered operation).
                Machine.SetIrq(levelPin, false);
            }

            WriteRegister(vcpu, ApicRegister.EoiOffset, 0);
        }
    }

    private static bool IsFromDevice(DeviceSource device, int vcpu, CpuEvent taken) =>
        device.Target == vcpu &&
        (device.IsNmi ? taken.Kind == CpuEventKind.Nmi : taken.Kind == CpuEventKind.Fixed && taken.Vector == device.Vector);

    private void HaltIdleVcpus()
    {
        if (!_options.HaltIdle)
        {
            return;
        }

        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            vcpu.SetHostState(VcpuHostState.Halted);
        }
    }

    private string Describe()
    {
        for (int i = 0; i < _outstanding.Length; i++)
        {
            if (_outstanding[i] != 0)
            {
                int vcpu = i / SlotsPerVcpu;
                string what = i % SlotsPerVcpu == NmiSlot ? "an NMI" : $"vector 0x{i % SlotsPerVcpu:x2}";
                return $"first: {what} for vCPU {vcpu}, host state {Machine.GetVcpu(vcpu).HostState}";
            }
        }

        return "none";
    }

    // A late interrupt is reported once, when its step ends; if it is taken later it is not stray.
    private void ClearOutstanding()
    {
        for (int i = 0; i < _outstanding.Length; i++)
        {
            _late[i] += _outstanding[i];
            _lateTotal += _outstanding[i];
            _outstanding[i] = 0;
        }

        _outstandingTotal = 0;
    }

    private void SendIcr(Vcpu sender, uint destination, uint low)
    {
        if (sender.Apic.Mode == ApicMode.X2Apic)
        {
            // x2APIC: one 64-bit WRMSR, destination in bits 63:32 (SDM "ICR Operation in x2APIC Mode").
            Check(sender.WriteMsr(IcrMsr, ((ulong)destination << 32) | low), sender, "WRMSR ICR");
            return;
        }

        // xAPIC: the destination goes to ICR high first; the write to ICR low sends the IPI.
        ulong mmio = sender.Apic.MmioBase;
        Check(sender.WriteMmio(mmio + ApicRegister.InterruptCommandHighOffset, destination << InterruptCommand.XApicDestinationShift), sender, "ICR high write");
        Check(sender.WriteMmio(mmio + ApicRegister.InterruptCommandOffset, low), sender, "ICR low write");
    }

    private void WriteRegister(Vcpu vcpu, int offset, uint value)
    {
        ApicAccessResult result = vcpu.Apic.Mode == ApicMode.X2Apic
            ? vcpu.WriteMsr(ApicRegister.X2ApicMsrBase + (uint)(offset >> 4), value)
            : vcpu.WriteMmio(vcpu.Apic.MmioBase + (ulong)offset, value);
        Check(result, vcpu, offset == ApicRegister.EoiOffset ? "EOI write" : $"APIC register 0x{offset:x3} write");
    }

    private void WriteRedirectionEntry(Vcpu vcpu, int pin, ulong entry)
    {
        // High dword first, so the entry is complete when the low dword unmasks it.
        ulong ioApic = Machine.IoApic.BaseAddress;
        byte index = (byte)(IoApicRegisters.RedirectionTableIndex + (2 * pin));
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(index + 1)), vcpu, "IOREGSEL write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)(entry >> 32)), vcpu, "IOWIN write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, index), vcpu, "IOREGSEL write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)entry), vcpu, "IOWIN write");
    }

    private void Check(ApicAccessResult result, Vcpu vcpu, string what)
    {
        if (result != ApicAccessResult.Ok)
        {
            Problem($"vCPU {vcpu.Index}: {what} returned {result}");
        }
    }

    private void Problem(string message)
    {
        _problemCount++;
        if (_problems.Count < MaxProblems)
        {
            _problems.Add(message);
        }
    }
}
