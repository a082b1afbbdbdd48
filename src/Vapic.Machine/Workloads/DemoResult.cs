using Vapic.Apic;

namespace Vapic.Machine.Workloads;

/// <summary>Where an interrupt of the demo workload came from.</summary>
public enum DemoSource : byte
{
    /// <summary>The CPU's own LAPIC timer (LVT Timer, periodic).</summary>
    Timer,

    /// <summary>A fixed IPI written to another CPU's ICR.</summary>
    Ipi,

    /// <summary>An IOAPIC input line (edge or level).</summary>
    IoApic,

    /// <summary>A message-signalled interrupt written by a device.</summary>
    Msi,

    /// <summary>The INIT and start-up IPIs with which the BSP wakes an AP.</summary>
    InitSipi,
}

/// <summary>
/// What happened to the requests of one source at one CPU (or summed over CPUs). Every request
/// ends in exactly one bucket: <c>Requested = Accepted + Merged + Dropped + Pending</c>.
/// </summary>
/// <param name="Source">The interrupt source.</param>
/// <param name="Requested">Requests made: IPI sends, line assertions or pulses, MSI writes, timer expiries.</param>
/// <param name="Accepted">Requests the CPU took through <see cref="Vcpu.Accept"/>.</param>
/// <param name="Merged">
/// Requests that found the same interrupt already pending and merged with it: the vector already in
/// IRR (SDM "Interrupt Acceptance for Fixed Interrupts") or, for a level line, the line already
/// asserted with Remote IRR set.
/// </param>
/// <param name="Dropped">Requests the platform refused (for example a software-disabled target); 0 in a correct run.</param>
/// <param name="Pending">Requests still waiting in IRR (or latched) when the run ended.</param>
/// <param name="LatencyMinNs">The shortest time from request to acceptance, or null if nothing was accepted.</param>
/// <param name="LatencyMaxNs">The longest time from request to acceptance, or null if nothing was accepted.</param>
/// <param name="LatencyTotalNs">The sum of the latencies of the accepted requests.</param>
public readonly record struct DemoSourceStats(
    DemoSource Source,
    long Requested,
    long Accepted,
    long Merged,
    long Dropped,
    long Pending,
    long? LatencyMinNs,
    long? LatencyMaxNs,
    long LatencyTotalNs)
{
    /// <summary>The mean latency in virtual nanoseconds, or null if nothing was accepted.</summary>
    public double? LatencyMeanNs => Accepted == 0 ? null : (double)LatencyTotalNs / Accepted;

    /// <summary>Adds two statistics of the same source (latency extremes combine, totals add).</summary>
    public DemoSourceStats Add(in DemoSourceStats other) => new(
        Source,
        Requested + other.Requested,
        Accepted + other.Accepted,
        Merged + other.Merged,
        Dropped + other.Dropped,
        Pending + other.Pending,
        MinOf(LatencyMinNs, other.LatencyMinNs),
        MaxOf(LatencyMaxNs, other.LatencyMaxNs),
        LatencyTotalNs + other.LatencyTotalNs);

    private static long? MinOf(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    private static long? MaxOf(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);
}

/// <summary>A snapshot of the counters of one local APIC at the end of the run (see <see cref="LocalApicCounters"/>).</summary>
/// <param name="FixedAccepted">Fixed interrupts that set a clear IRR bit.</param>
/// <param name="Merged">Fixed interrupts whose vector was already in IRR.</param>
/// <param name="Acknowledged">Vectors the CPU took (IRR → ISR).</param>
/// <param name="Eois">EOIs that retired an in-service vector.</param>
/// <param name="TimerExpiries">LAPIC timer expiries.</param>
/// <param name="Dropped">Messages refused: software- or globally disabled, illegal vector or reserved mode.</param>
public readonly record struct DemoApicCounters(
    long FixedAccepted,
    long Merged,
    long Acknowledged,
    long Eois,
    long TimerExpiries,
    long Dropped)
{
    internal static DemoApicCounters From(LocalApicCounters c) => new(
        c.FixedAccepted,
        c.Merged,
        c.Acknowledged,
        c.Eois,
        c.TimerExpiries,
        c.DroppedSoftwareDisabled + c.DroppedGloballyDisabled + c.DroppedIllegalVector + c.DroppedReservedMode);
}

/// <summary>The outcome of the demo for one vCPU.</summary>
public sealed record DemoCpuResult
{
    /// <summary>The vCPU index.</summary>
    public required int Cpu { get; init; }

    /// <summary>The APIC ID at the end of the run.</summary>
    public required uint ApicId { get; init; }

    /// <summary>The APIC mode at the end of the run.</summary>
    public required ApicMode ApicMode { get; init; }

    /// <summary>The MP run state at the end of the run (every AP is <see cref="VcpuRunState.Running"/> once woken).</summary>
    public required VcpuRunState RunState { get; init; }

    /// <summary>The virtual time at which the CPU came online (the BSP at 0), or null if it never did.</summary>
    public required long? OnlineAtNs { get; init; }

    /// <summary>The period the CPU programmed into its LAPIC timer.</summary>
    public required long TimerPeriodNs { get; init; }

    /// <summary>The virtual time of the TMICT write that armed the timer, or null if it was never armed.</summary>
    public required long? TimerArmedAtNs { get; init; }

    /// <summary>Virtual time spent in handlers (and, for an AP, in its start-up code).</summary>
    public required long BusyNs { get; init; }

    /// <summary>Per-source statistics, indexed by <see cref="DemoSource"/>.</summary>
    public required IReadOnlyList<DemoSourceStats> Sources { get; init; }

    /// <summary>The CPU's local APIC counters.</summary>
    public required DemoApicCounters Apic { get; init; }

    /// <summary>The statistics of <paramref name="source"/>.</summary>
    public DemoSourceStats this[DemoSource source] => Sources[(int)source];
}

/// <summary>A snapshot of the machine-wide and IOAPIC counters at the end of the run.</summary>
public sealed record DemoMachineCounters
{
    /// <summary>IPIs routed (ICR writes).</summary>
    public required long IpisRouted { get; init; }

    /// <summary>IOAPIC messages routed.</summary>
    public required long IoApicMessagesRouted { get; init; }

    /// <summary>MSIs routed.</summary>
    public required long MsisRouted { get; init; }

    /// <summary>LAPIC timer expiries.</summary>
    public required long TimerExpiries { get; init; }

    /// <summary>EOIs broadcast to the IOAPIC (level-triggered vectors).</summary>
    public required long EoiBroadcasts { get; init; }

    /// <summary>INITs taken by CPUs.</summary>
    public required long InitsTaken { get; init; }

    /// <summary>SIPIs taken by waiting CPUs.</summary>
    public required long StartupsTaken { get; init; }

    /// <summary>SIPIs discarded because the target did not wait for one.</summary>
    public required long StartupsDiscarded { get; init; }

    /// <summary>Messages whose destination matched no LAPIC.</summary>
    public required long NoDestination { get; init; }

    /// <summary>Messages dropped for a reserved delivery mode (IPIs, MSIs and IOAPIC entries).</summary>
    public required long ReservedModeDropped { get; init; }

    /// <summary>Edges the IOAPIC did not send because the line was already asserted.</summary>
    public required long IoApicEdgesCoalesced { get; init; }

    /// <summary>Level assertions the IOAPIC did not send because Remote IRR was set.</summary>
    public required long IoApicLevelCoalesced { get; init; }

    /// <summary>Routing-table rebuilds (after APIC mode, ID, LDR, DFR or enable changes).</summary>
    public required long RoutingRebuilds { get; init; }

    internal static DemoMachineCounters From(VirtualMachine machine)
    {
        MachineCounters m = machine.Counters;
        IoApicCounters io = machine.IoApic.Counters;
        return new DemoMachineCounters
        {
            IpisRouted = m.IpisRouted,
            IoApicMessagesRouted = m.IoApicMessagesRouted,
            MsisRouted = m.MsisRouted,
            TimerExpiries = m.TimerExpiries,
            EoiBroadcasts = m.EoiBroadcasts,
            InitsTaken = m.InitsTaken,
            StartupsTaken = m.StartupsTaken,
            StartupsDiscarded = m.StartupsDiscarded,
            NoDestination = m.NoDestination,
            ReservedModeDropped = m.ReservedModeDropped + m.MsiReservedMode + io.ReservedModeDropped,
            IoApicEdgesCoalesced = io.EdgesCoalesced,
            IoApicLevelCoalesced = io.LevelCoalesced,
            RoutingRebuilds = machine.RoutingRebuilds,
        };
    }
}

/// <summary>The outcome of one run of <see cref="DemoWorkload"/>.</summary>
public sealed record DemoResult
{
    /// <summary>The virtual duration that was run.</summary>
    public required long DurationNs { get; init; }

    /// <summary>The APIC mode the guest ran its CPUs in.</summary>
    public required ApicMode GuestApicMode { get; init; }

    /// <summary>Per-vCPU outcomes in vCPU order.</summary>
    public required IReadOnlyList<DemoCpuResult> Cpus { get; init; }

    /// <summary>Per-source statistics summed over every CPU, indexed by <see cref="DemoSource"/>.</summary>
    public required IReadOnlyList<DemoSourceStats> Totals { get; init; }

    /// <summary>Machine-wide counters.</summary>
    public required DemoMachineCounters Counters { get; init; }

    /// <summary>The totals of <paramref name="source"/>.</summary>
    public DemoSourceStats this[DemoSource source] => Totals[(int)source];
}
