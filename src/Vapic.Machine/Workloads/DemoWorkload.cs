using Vapic.Apic;

namespace Vapic.Machine.Workloads;

/// <summary>
/// A built-in scenario that drives a 4-vCPU <see cref="VirtualMachine"/> the way a small guest OS
/// would, and measures what every interrupt source delivered and how long each request waited.
/// </summary>
/// <remarks>
/// <para>
/// Boot (SDM "MP Initialization Protocol"): at 0 the BSP software-enables its APIC (SVR = 0x1FF),
/// programs the IOAPIC and arms its timer, then wakes the APs one at a time: INIT IPI, start-up IPI
/// with vector 0x08 (entry 0x8000) <see cref="InitToStartupNs"/> later, and the AP runs start-up code
/// for <see cref="ApStartupCodeNs"/> before it enables its APIC and arms its timer; the BSP moves on
/// to the next AP when the previous one is online. Only one SIPI is sent: the model has no lost
/// SIPIs, and a second one would reach a running CPU and be discarded.
/// </para>
/// <para>
/// Traffic, from <see cref="IpiFirstNs"/> on: every CPU runs a periodic LAPIC timer (vector 0xEC,
/// divide by 1, a distinct period per CPU); every <see cref="IpiPeriodNs"/> each CPU sends a fixed
/// IPI (vector 0xFB) to the next one in a ring; IOAPIC GSI 4 (edge, vector 0x34, physical
/// destination CPU 1) pulses in bursts of three; GSI 10 (level, vector 0x3A, CPU 3) is asserted
/// periodically and its handler de-asserts it before the EOI, so the EOI broadcast clears Remote
/// IRR (SDM "EOI Register"); a device writes an MSI (vector 0x41) to CPU 2 periodically.
/// </para>
/// <para>
/// CPUs: a CPU takes an event (<see cref="Vcpu.Accept"/>) only when idle, runs its handler with
/// interrupts disabled for a fixed time per source, then EOIs. Requests that arrive meanwhile wait
/// in IRR, and a request for a vector that is already pending merges with it. Everything happens at
/// integer virtual nanoseconds; at one instant the order is: timers fire, handlers finish, boot
/// steps, device and IPI traffic, then idle CPUs accept in vCPU order. The run is deterministic.
/// </para>
/// <para>
/// Latency: a request's time is recorded when it is made (ICR write, line assertion, MSI write,
/// timer deadline); when the CPU takes the vector, latency = now − the time of the request that set
/// the IRR bit (the earliest outstanding one; later ones merged with it).
/// </para>
/// </remarks>
public sealed class DemoWorkload
{
    /// <summary>The number of vCPUs in the scenario.</summary>
    public const int CpuCount = 4;

    /// <summary>SVR as every CPU writes it: APIC software-enabled, spurious vector 0xFF.</summary>
    public const uint SpuriousVectorValue = 0x1FF;

    /// <summary>The LAPIC timer vector.</summary>
    public const byte TimerVector = 0xEC;

    /// <summary>The vector of the IPI ring.</summary>
    public const byte IpiVector = 0xFB;

    /// <summary>The vector of the edge-triggered IOAPIC line.</summary>
    public const byte EdgeVector = 0x34;

    /// <summary>The edge-triggered IOAPIC input.</summary>
    public const int EdgeGsi = 4;

    /// <summary>The CPU the edge line is routed to (physical destination).</summary>
    public const int EdgeTargetCpu = 1;

    /// <summary>The vector of the level-triggered IOAPIC line.</summary>
    public const byte LevelVector = 0x3A;

    /// <summary>The level-triggered IOAPIC input.</summary>
    public const int LevelGsi = 10;

    /// <summary>The CPU the level line is routed to (physical destination).</summary>
    public const int LevelTargetCpu = 3;

    /// <summary>The MSI vector.</summary>
    public const byte MsiVector = 0x41;

    /// <summary>The CPU the MSI is addressed to (physical destination).</summary>
    public const int MsiTargetCpu = 2;

    /// <summary>The start-up vector: APs begin at 0x8000 (CS = 0x0800, IP = 0).</summary>
    public const byte StartupVector = 0x08;

    /// <summary>Time from the INIT IPI to the start-up IPI.</summary>
    public const long InitToStartupNs = 10_000;

    /// <summary>Time an AP runs its start-up code after the SIPI before it enables its APIC.</summary>
    public const long ApStartupCodeNs = 20_000;

    /// <summary>The first round of the IPI ring.</summary>
    public const long IpiFirstNs = 100_000;

    /// <summary>The interval between rounds of the IPI ring.</summary>
    public const long IpiPeriodNs = 40_000;

    /// <summary>The first MSI write.</summary>
    public const long MsiFirstNs = 105_000;

    /// <summary>The interval between MSI writes.</summary>
    public const long MsiPeriodNs = 30_000;

    /// <summary>The first edge burst on <see cref="EdgeGsi"/>.</summary>
    public const long EdgeBurstFirstNs = 110_000;

    /// <summary>The interval between edge bursts.</summary>
    public const long EdgeBurstPeriodNs = 100_000;

    /// <summary>Pulses per edge burst.</summary>
    public const int EdgeBurstPulses = 3;

    /// <summary>The spacing of the pulses within a burst.</summary>
    public const long EdgePulseSpacingNs = 1_000;

    /// <summary>The first assertion of <see cref="LevelGsi"/>.</summary>
    public const long LevelFirstNs = 120_000;

    /// <summary>The interval between assertions of <see cref="LevelGsi"/>.</summary>
    public const long LevelPeriodNs = 70_000;

    /// <summary>Handler time of the timer interrupt.</summary>
    public const long TimerHandlerNs = 2_000;

    /// <summary>Handler time of the IPI.</summary>
    public const long IpiHandlerNs = 1_000;

    /// <summary>Handler time of either IOAPIC line.</summary>
    public const long IoApicHandlerNs = 4_000;

    /// <summary>Handler time of the MSI.</summary>
    public const long MsiHandlerNs = 3_000;

    private const int SourceCount = (int)DemoSource.InitSipi + 1;
    private const long NotPending = -1;
    private const long Never = -1;

    private readonly VirtualMachine _machine;
    private readonly CpuState[] _cpus;
    private readonly TrafficStream[] _streams;
    private readonly ulong _msiAddress;
    private readonly uint _msiData;
    private BootStep _bootStep;
    private int _bootAp;
    private long _bootStepAt;
    private bool _ran;

    /// <summary>Creates the workload and its machine in the power-on state.</summary>
    /// <exception cref="ArgumentException"><paramref name="options"/> are invalid (see <see cref="DemoOptions.Validate"/>).</exception>
    public DemoWorkload(DemoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }

        Options = options;
        _machine = new VirtualMachine(new MachineOptions { VcpuCount = CpuCount });
        _cpus = new CpuState[CpuCount];
        for (int i = 0; i < _cpus.Length; i++)
        {
            _cpus[i] = new CpuState(_machine.GetVcpu(i));
        }

        // Streams due at the same instant run in this order.
        _streams =
        [
            new TrafficStream(TrafficKind.IpiRound, IpiFirstNs, IpiPeriodNs),
            new TrafficStream(TrafficKind.MsiWrite, MsiFirstNs, MsiPeriodNs),
            new TrafficStream(TrafficKind.EdgePulse, EdgeBurstFirstNs, EdgeBurstPeriodNs),
            new TrafficStream(TrafficKind.EdgePulse, EdgeBurstFirstNs + EdgePulseSpacingNs, EdgeBurstPeriodNs),
            new TrafficStream(TrafficKind.EdgePulse, EdgeBurstFirstNs + (2 * EdgePulseSpacingNs), EdgeBurstPeriodNs),
            new TrafficStream(TrafficKind.LevelAssert, LevelFirstNs, LevelPeriodNs),
        ];

        _msiAddress = Msi.EncodeAddress(_machine.Options.ApicIdOf(MsiTargetCpu), DestinationMode.Physical, redirectionHint: false);
        _msiData = Msi.EncodeData(MsiVector, DeliveryMode.Fixed, levelTriggered: false);
        _bootStep = BootStep.BspSetup;
        _bootStepAt = 0;
    }

    /// <summary>The options of this run.</summary>
    public DemoOptions Options { get; }

    /// <summary>The machine the guest runs on (inspect it after <see cref="Run"/>).</summary>
    public VirtualMachine Machine => _machine;

    /// <summary>The LAPIC timer period CPU <paramref name="cpu"/> programs (TMICT with divide-by-1, 1 ns ticks).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpu"/> is not 0 to 3.</exception>
    public static long TimerPeriodNs(int cpu) => cpu switch
    {
        0 => 50_000,
        1 => 60_000,
        2 => 75_000,
        3 => 100_000,
        _ => throw new ArgumentOutOfRangeException(nameof(cpu), cpu, "The demo has CPUs 0 to 3."),
    };

    /// <summary>Handler time of an interrupt from <paramref name="source"/>.</summary>
    public static long HandlerNs(DemoSource source) => source switch
    {
        DemoSource.Timer => TimerHandlerNs,
        DemoSource.Ipi => IpiHandlerNs,
        DemoSource.IoApic => IoApicHandlerNs,
        DemoSource.Msi => MsiHandlerNs,
        _ => 0,
    };

    /// <summary>Runs the scenario for <see cref="DemoOptions.DurationNs"/> of virtual time (once per instance).</summary>
    /// <exception cref="InvalidOperationException">
    /// The workload already ran, or the machine broke the architecture the guest relies on (an access
    /// faulted, or a vector was taken that nobody requested).
    /// </exception>
    public DemoResult Run()
    {
        if (_ran)
        {
            throw new InvalidOperationException("A DemoWorkload runs once; create a new one.");
        }

        _ran = true;
        long end = Options.DurationNs;
        while (true)
        {
            long now = NextEventTime();
            if (now > end)
            {
                break;
            }

            Step(now);
        }

        _machine.AdvanceTo(end);
        return BuildResult(end);
    }

    private long NextEventTime()
    {
        long next = Math.Min(_bootStepAt, _machine.NextTimerDeadline);
        foreach (TrafficStream stream in _streams)
        {
            next = Math.Min(next, stream.NextNs);
        }

        foreach (CpuState cpu in _cpus)
        {
            if (cpu.Busy)
            {
                next = Math.Min(next, cpu.BusyUntil);
            }
        }

        return next;
    }

    private void Step(long now)
    {
        FireTimers(now);

        foreach (CpuState cpu in _cpus)
        {
            if (cpu.Busy && cpu.BusyUntil == now)
            {
                FinishWork(cpu, now);
            }
        }

        while (_bootStepAt <= now)
        {
            RunBootStep(now);
        }

        foreach (TrafficStream stream in _streams)
        {
            if (stream.NextNs == now)
            {
                RunTraffic(stream.Kind, now);
                stream.NextNs += stream.PeriodNs;
            }
        }

        foreach (CpuState cpu in _cpus)
        {
            TakeEvents(cpu, now);
        }
    }

    // Advances the clock to now; every LAPIC timer whose deadline is reached fires there, and each
    // expiry is one timer request made at its deadline.
    private void FireTimers(long now)
    {
        Span<DeliveryProbe> before = stackalloc DeliveryProbe[CpuCount];
        Span<long> deadlines = stackalloc long[CpuCount];
        for (int i = 0; i < CpuCount; i++)
        {
            before[i] = Probe(_cpus[i]);
            deadlines[i] = _cpus[i].Vcpu.Apic.TimerDeadline;
        }

        _machine.AdvanceTo(now);
        for (int i = 0; i < CpuCount; i++)
        {
            CpuState cpu = _cpus[i];
            long expiries = cpu.Vcpu.Apic.Counters.TimerExpiries - before[i].TimerExpiries;
            if (expiries == 1)
            {
                RecordRequest(cpu, DemoSource.Timer, TimerVector, deadlines[i], before[i]);
            }
            else if (expiries > 1)
            {
                // Time only moves from one event to the next, so a periodic timer cannot expire twice.
                throw new InvalidOperationException($"CPU {i}: {expiries} timer expiries in one step.");
            }
        }
    }

    private void FinishWork(CpuState cpu, long now)
    {
        cpu.Busy = false;
        cpu.BusyNs += now - cpu.BusyFrom;
        if (cpu.InStartupCode)
        {
            cpu.InStartupCode = false;
            BringApOnline(cpu, now);
            return;
        }

        if (cpu.ServicingVector == LevelVector)
        {
            // The handler quiets the device first: with the line low, the EOI broadcast clears Remote
            // IRR and nothing is re-sent (SDM "EOI Register"; 82093AA level-triggered operation).
            _machine.SetIrq(LevelGsi, false);
        }

        WriteApicRegister(cpu.Vcpu, ApicRegister.EoiOffset, 0);
    }

    private void RunBootStep(long now)
    {
        switch (_bootStep)
        {
            case BootStep.BspSetup:
                SetUpBsp(now);
                _bootStep = BootStep.SendInit;
                _bootAp = 1;
                _bootStepAt = now;
                break;
            case BootStep.SendInit:
                SendStartupIpi(_cpus[_bootAp], DeliveryMode.Init, vector: 0, now);
                _bootStep = BootStep.SendStartup;
                _bootStepAt = now + InitToStartupNs;
                break;
            case BootStep.SendStartup:
                SendStartupIpi(_cpus[_bootAp], DeliveryMode.StartUp, StartupVector, now);
                _bootStep = BootStep.WaitForAp;
                _bootStepAt = long.MaxValue;
                break;
            default:
                _bootStepAt = long.MaxValue;
                break;
        }
    }

    private void SetUpBsp(long now)
    {
        CpuState bsp = _cpus[0];
        EnableLocalApic(bsp);

        // Program the IOAPIC through its MMIO window, high dword first so the entry is complete when
        // the low dword unmasks it (as Linux's ioapic_write_entry does).
        ulong edgeEntry = EdgeVector | ((ulong)_machine.Options.ApicIdOf(EdgeTargetCpu) << RedirectionEntry.DestinationShift);
        ulong levelEntry = LevelVector | RedirectionEntry.TriggerModeBit |
            ((ulong)_machine.Options.ApicIdOf(LevelTargetCpu) << RedirectionEntry.DestinationShift);
        WriteRedirectionEntry(bsp.Vcpu, EdgeGsi, edgeEntry);
        WriteRedirectionEntry(bsp.Vcpu, LevelGsi, levelEntry);

        ArmTimer(bsp, now);
        bsp.OnlineAt = now;
    }

    private void BringApOnline(CpuState ap, long now)
    {
        EnableLocalApic(ap);
        ArmTimer(ap, now);
        ap.OnlineAt = now;
        if (_bootStep == BootStep.WaitForAp && ap.Vcpu.Index == _bootAp)
        {
            if (_bootAp + 1 < CpuCount)
            {
                _bootAp++;
                _bootStep = BootStep.SendInit;
                _bootStepAt = now;
            }
            else
            {
                _bootStep = BootStep.Done;
            }
        }
    }

    private void EnableLocalApic(CpuState cpu)
    {
        Vcpu vcpu = cpu.Vcpu;
        if (Options.UseX2Apic && vcpu.Apic.Mode != ApicMode.X2Apic)
        {
            // xAPIC → x2APIC by setting EXTD with EN (SDM "x2APIC State Transitions").
            ulong value = vcpu.Apic.BaseMsr | ApicBaseMsr.GlobalEnable | ApicBaseMsr.X2ApicEnable;
            Check(vcpu.WriteMsr(ApicBaseMsr.Msr, value), vcpu, "WRMSR IA32_APIC_BASE");
        }

        WriteApicRegister(vcpu, ApicRegister.SpuriousVectorOffset, SpuriousVectorValue);
    }

    private void ArmTimer(CpuState cpu, long now)
    {
        // LVT Timer first (periodic, unmasked), then DCR = divide by 1, then TMICT starts the count.
        uint lvt = TimerVector | ((uint)TimerMode.Periodic << LocalVectorTable.TimerModeShift);
        long period = TimerPeriodNs(cpu.Vcpu.Index);
        WriteApicRegister(cpu.Vcpu, ApicRegister.LvtTimerOffset, lvt);
        WriteApicRegister(cpu.Vcpu, ApicRegister.DivideConfigurationOffset, 0xB);
        WriteApicRegister(cpu.Vcpu, ApicRegister.InitialCountOffset, (uint)period);
        cpu.TimerArmedAt = now;
    }

    private void RunTraffic(TrafficKind kind, long now)
    {
        switch (kind)
        {
            case TrafficKind.IpiRound:
                for (int i = 0; i < CpuCount; i++)
                {
                    CpuState target = _cpus[(i + 1) % CpuCount];
                    DeliveryProbe before = Probe(target);
                    uint low = IpiVector | ((uint)DeliveryMode.Fixed << 8);
                    WriteInterruptCommand(_cpus[i].Vcpu, _machine.Options.ApicIdOf(target.Vcpu.Index), low);
                    RecordRequest(target, DemoSource.Ipi, IpiVector, now, before);
                }

                break;
            case TrafficKind.MsiWrite:
                {
                    CpuState target = _cpus[MsiTargetCpu];
                    DeliveryProbe before = Probe(target);
                    MsiDecodeResult decoded = _machine.SendMsi(_msiAddress, _msiData);
                    if (decoded != MsiDecodeResult.Ok)
                    {
                        throw new InvalidOperationException($"The demo MSI decoded as {decoded}.");
                    }

                    RecordRequest(target, DemoSource.Msi, MsiVector, now, before);
                    break;
                }

            case TrafficKind.EdgePulse:
                {
                    CpuState target = _cpus[EdgeTargetCpu];
                    DeliveryProbe before = Probe(target);
                    _machine.SetIrq(EdgeGsi, true);
                    _machine.SetIrq(EdgeGsi, false);
                    RecordRequest(target, DemoSource.IoApic, EdgeVector, now, before);
                    break;
                }

            case TrafficKind.LevelAssert:
                {
                    CpuState target = _cpus[LevelTargetCpu];
                    DeliveryProbe before = Probe(target);
                    _machine.SetIrq(LevelGsi, true);
                    RecordRequest(target, DemoSource.IoApic, LevelVector, now, before);
                    break;
                }
        }
    }

    // The BSP sends INIT or SIPI to an AP through its ICR (physical destination, edge, assert).
    private void SendStartupIpi(CpuState ap, DeliveryMode mode, byte vector, long now)
    {
        ApicEvents ev = mode == DeliveryMode.Init ? ApicEvents.Init : ApicEvents.StartUp;
        bool alreadyPending = (ap.Vcpu.Apic.PendingEvents & ev) != 0;
        long latchedBefore = ap.Vcpu.Apic.Counters.EventsLatched;
        uint low = vector | ((uint)mode << 8) | InterruptCommand.LevelAssert;
        WriteInterruptCommand(_cpus[0].Vcpu, _machine.Options.ApicIdOf(ap.Vcpu.Index), low);

        ref SourceAccumulator stats = ref ap.Stats[(int)DemoSource.InitSipi];
        stats.Requested++;
        if (ap.Vcpu.Apic.Counters.EventsLatched == latchedBefore)
        {
            stats.Dropped++;
        }
        else if (alreadyPending)
        {
            stats.Merged++;
        }
        else if (mode == DeliveryMode.Init)
        {
            ap.InitRequestedAt = now;
        }
        else
        {
            ap.StartupRequestedAt = now;
        }
    }

    // Idle CPUs take what is pending: INIT and SIPI on a waiting AP, else the highest fixed vector.
    private void TakeEvents(CpuState cpu, long now)
    {
        while (!cpu.Busy)
        {
            CpuEvent ev = cpu.Vcpu.Accept();
            switch (ev.Kind)
            {
                case CpuEventKind.None:
                    return;
                case CpuEventKind.Init:
                    // The AP is back in wait-for-SIPI and stays idle.
                    AcceptRequest(cpu, DemoSource.InitSipi, ref cpu.InitRequestedAt, now);
                    break;
                case CpuEventKind.StartUp:
                    AcceptRequest(cpu, DemoSource.InitSipi, ref cpu.StartupRequestedAt, now);
                    StartWork(cpu, now, now + ApStartupCodeNs);
                    cpu.InStartupCode = true;
                    break;
                case CpuEventKind.Fixed:
                    {
                        DemoSource source = SourceOf(ev.Vector, cpu);
                        AcceptRequest(cpu, source, ref cpu.PendingSince[ev.Vector], now);
                        StartWork(cpu, now, now + HandlerNs(source));
                        cpu.ServicingVector = ev.Vector;
                        break;
                    }

                default:
                    throw new InvalidOperationException($"CPU {cpu.Vcpu.Index} took an unexpected {ev} at {now} ns.");
            }
        }
    }

    private static void StartWork(CpuState cpu, long now, long until)
    {
        cpu.Busy = true;
        cpu.BusyFrom = now;
        cpu.BusyUntil = until;
    }

    private static void AcceptRequest(CpuState cpu, DemoSource source, ref long requestedAt, long now)
    {
        if (requestedAt == NotPending)
        {
            throw new InvalidOperationException($"CPU {cpu.Vcpu.Index} took a {source} interrupt at {now} ns that nobody requested.");
        }

        ref SourceAccumulator stats = ref cpu.Stats[(int)source];
        long latency = now - requestedAt;
        requestedAt = NotPending;
        stats.Accepted++;
        stats.LatencyTotal += latency;
        stats.LatencyMin = Math.Min(stats.LatencyMin, latency);
        stats.LatencyMax = Math.Max(stats.LatencyMax, latency);
    }

    private static DemoSource SourceOf(byte vector, CpuState cpu) => vector switch
    {
        TimerVector => DemoSource.Timer,
        IpiVector => DemoSource.Ipi,
        EdgeVector or LevelVector => DemoSource.IoApic,
        MsiVector => DemoSource.Msi,
        _ => throw new InvalidOperationException($"CPU {cpu.Vcpu.Index} took vector 0x{vector:x2}, which the demo never sends."),
    };

    private DeliveryProbe Probe(CpuState cpu)
    {
        LocalApicCounters apic = cpu.Vcpu.Apic.Counters;
        IoApicCounters io = _machine.IoApic.Counters;
        return new DeliveryProbe(
            apic.FixedAccepted,
            apic.Merged,
            apic.TimerExpiries,
            io.EdgesCoalesced + io.LevelCoalesced);
    }

    // Classifies one request by what the target LAPIC (and the IOAPIC) counted while it was made:
    // a newly set IRR bit starts the latency clock, a merge joins the pending request, anything
    // else was refused somewhere on the way.
    private void RecordRequest(CpuState cpu, DemoSource source, byte vector, long requestedAt, in DeliveryProbe before)
    {
        DeliveryProbe after = Probe(cpu);
        long setIrr = after.FixedAccepted - before.FixedAccepted;
        long merged = (after.Merged - before.Merged) + (after.IoApicCoalesced - before.IoApicCoalesced);
        ref SourceAccumulator stats = ref cpu.Stats[(int)source];
        stats.Requested++;
        if (setIrr + merged > 1)
        {
            throw new InvalidOperationException($"One {source} request reached CPU {cpu.Vcpu.Index} {setIrr + merged} times.");
        }

        if (setIrr == 1)
        {
            if (cpu.PendingSince[vector] != NotPending)
            {
                throw new InvalidOperationException($"Vector 0x{vector:x2} set IRR on CPU {cpu.Vcpu.Index} while a request was still pending.");
            }

            cpu.PendingSince[vector] = requestedAt;
        }
        else if (merged == 1)
        {
            stats.Merged++;
        }
        else
        {
            stats.Dropped++;
        }
    }

    private void WriteApicRegister(Vcpu vcpu, int offset, uint value)
    {
        ApicAccessResult result = vcpu.Apic.Mode == ApicMode.X2Apic
            ? vcpu.WriteMsr(ApicRegister.X2ApicMsrBase + (uint)(offset >> 4), value)
            : vcpu.WriteMmio(vcpu.Apic.MmioBase + (ulong)offset, value);
        Check(result, vcpu, "APIC register write");
    }

    private static void WriteInterruptCommand(Vcpu vcpu, uint destination, uint low)
    {
        if (vcpu.Apic.Mode == ApicMode.X2Apic)
        {
            // x2APIC: one 64-bit WRMSR, destination in bits 63:32 (SDM "ICR Operation in x2APIC Mode").
            ulong icr = ((ulong)destination << 32) | low;
            Check(vcpu.WriteMsr(ApicRegister.X2ApicMsrBase + (ApicRegister.InterruptCommandOffset >> 4), icr), vcpu, "WRMSR ICR");
            return;
        }

        // xAPIC: the destination goes to ICR high first; the write to ICR low sends the IPI.
        ulong mmio = vcpu.Apic.MmioBase;
        Check(vcpu.WriteMmio(mmio + ApicRegister.InterruptCommandHighOffset, destination << InterruptCommand.XApicDestinationShift), vcpu, "ICR high write");
        Check(vcpu.WriteMmio(mmio + ApicRegister.InterruptCommandOffset, low), vcpu, "ICR low write");
    }

    private void WriteRedirectionEntry(Vcpu vcpu, int pin, ulong entry)
    {
        ulong ioApic = _machine.IoApic.BaseAddress;
        byte index = (byte)(IoApicRegisters.RedirectionTableIndex + (2 * pin));
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(index + 1)), vcpu, "IOREGSEL write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)(entry >> 32)), vcpu, "IOWIN write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, index), vcpu, "IOREGSEL write");
        Check(vcpu.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)entry), vcpu, "IOWIN write");
    }

    private static void Check(ApicAccessResult result, Vcpu vcpu, string what)
    {
        if (result != ApicAccessResult.Ok)
        {
            throw new InvalidOperationException($"CPU {vcpu.Index}: {what} returned {result}.");
        }
    }

    private DemoResult BuildResult(long end)
    {
        var cpus = new DemoCpuResult[CpuCount];
        var totals = new DemoSourceStats[SourceCount];
        for (int s = 0; s < SourceCount; s++)
        {
            totals[s] = new DemoSourceStats((DemoSource)s, 0, 0, 0, 0, 0, null, null, 0);
        }

        foreach (CpuState cpu in _cpus)
        {
            var pending = new long[SourceCount];
            for (int vector = 0; vector < cpu.PendingSince.Length; vector++)
            {
                if (cpu.PendingSince[vector] != NotPending)
                {
                    pending[(int)SourceOf((byte)vector, cpu)]++;
                }
            }

            pending[(int)DemoSource.InitSipi] =
                (cpu.InitRequestedAt != NotPending ? 1 : 0) + (cpu.StartupRequestedAt != NotPending ? 1 : 0);

            var sources = new DemoSourceStats[SourceCount];
            for (int s = 0; s < SourceCount; s++)
            {
                sources[s] = cpu.Stats[s].ToStats((DemoSource)s, pending[s]);
                totals[s] = totals[s].Add(sources[s]);
            }

            Vcpu vcpu = cpu.Vcpu;
            cpus[vcpu.Index] = new DemoCpuResult
            {
                Cpu = vcpu.Index,
                ApicId = vcpu.Apic.Id,
                ApicMode = vcpu.Apic.Mode,
                RunState = vcpu.RunState,
                OnlineAtNs = cpu.OnlineAt == Never ? null : cpu.OnlineAt,
                TimerPeriodNs = TimerPeriodNs(vcpu.Index),
                TimerArmedAtNs = cpu.TimerArmedAt == Never ? null : cpu.TimerArmedAt,
                BusyNs = cpu.BusyNs + (cpu.Busy ? end - cpu.BusyFrom : 0),
                Sources = sources,
                Apic = DemoApicCounters.From(vcpu.Apic.Counters),
            };
        }

        return new DemoResult
        {
            DurationNs = end,
            GuestApicMode = Options.UseX2Apic ? ApicMode.X2Apic : ApicMode.XApic,
            Cpus = cpus,
            Totals = totals,
            Counters = DemoMachineCounters.From(_machine),
        };
    }

    private enum BootStep : byte
    {
        BspSetup,
        SendInit,
        SendStartup,
        WaitForAp,
        Done,
    }

    private enum TrafficKind : byte
    {
        IpiRound,
        MsiWrite,
        EdgePulse,
        LevelAssert,
    }

    /// <summary>A periodic source of requests.</summary>
    private sealed class TrafficStream(TrafficKind kind, long firstNs, long periodNs)
    {
        public TrafficKind Kind { get; } = kind;

        public long PeriodNs { get; } = periodNs;

        public long NextNs { get; set; } = firstNs;
    }

    /// <summary>The counters a request can move, read before and after it is made.</summary>
    private readonly record struct DeliveryProbe(long FixedAccepted, long Merged, long TimerExpiries, long IoApicCoalesced);

    private struct SourceAccumulator
    {
        public long Requested;
        public long Accepted;
        public long Merged;
        public long Dropped;
        public long LatencyTotal;
        public long LatencyMin;
        public long LatencyMax;

        public readonly DemoSourceStats ToStats(DemoSource source, long pending) => new(
            source,
            Requested,
            Accepted,
            Merged,
            Dropped,
            pending,
            Accepted == 0 ? null : LatencyMin,
            Accepted == 0 ? null : LatencyMax,
            LatencyTotal);
    }

    /// <summary>What the guest knows about one CPU: whether it is busy, and which requests are outstanding.</summary>
    private sealed class CpuState
    {
        public readonly Vcpu Vcpu;
        public readonly long[] PendingSince = new long[256];
        public readonly SourceAccumulator[] Stats = new SourceAccumulator[SourceCount];
        public long InitRequestedAt = NotPending;
        public long StartupRequestedAt = NotPending;
        public bool Busy;
        public bool InStartupCode;
        public byte ServicingVector;
        public long BusyFrom;
        public long BusyUntil;
        public long BusyNs;
        public long OnlineAt = Never;
        public long TimerArmedAt = Never;

        public CpuState(Vcpu vcpu)
        {
            Vcpu = vcpu;
            Array.Fill(PendingSince, NotPending);
            for (int i = 0; i < Stats.Length; i++)
            {
                Stats[i].LatencyMin = long.MaxValue;
            }
        }
    }
}
