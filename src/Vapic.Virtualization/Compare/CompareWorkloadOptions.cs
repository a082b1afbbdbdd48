namespace Vapic.Virtualization.Compare;

/// <summary>
/// The parameters of one workload run: which workload, how many vCPUs, the guest's APIC mode,
/// whether idle vCPUs halt, and how long it runs (a virtual duration, or a number of rounds of
/// <see cref="RoundPeriodNs"/> each).
/// </summary>
public sealed record CompareWorkloadOptions
{
    /// <summary>The default number of vCPUs.</summary>
    public const int DefaultVcpus = 8;

    /// <summary>The fewest vCPUs a workload runs on (every workload sends to other vCPUs).</summary>
    public const int MinVcpus = 2;

    /// <summary>The most vCPUs a workload runs on: APIC IDs 0..254, addressable by an xAPIC guest too.</summary>
    public const int MaxVcpus = 255;

    /// <summary>Virtual time between rounds; also the period of the LAPIC timers (100 kHz).</summary>
    public const long RoundPeriodNs = 10_000;

    /// <summary>The default virtual duration: 1 ms, 100 rounds.</summary>
    public const long DefaultDurationNs = 1_000_000;

    /// <summary>The longest virtual duration accepted: 1 s, 100,000 rounds.</summary>
    public const long MaxDurationNs = 1_000_000_000;

    /// <summary>The most rounds accepted (<see cref="MaxDurationNs"/> / <see cref="RoundPeriodNs"/>).</summary>
    public const int MaxRounds = (int)(MaxDurationNs / RoundPeriodNs);

    /// <summary>The workload.</summary>
    public CompareWorkloadKind Workload { get; init; }

    /// <summary>The number of vCPUs, <see cref="MinVcpus"/> to <see cref="MaxVcpus"/>.</summary>
    public int VcpuCount { get; init; } = DefaultVcpus;

    /// <summary>True (the default) for an x2APIC guest (MSR interface); false for an xAPIC guest (MMIO).</summary>
    public bool UseX2Apic { get; init; } = true;

    /// <summary>Idle vCPUs halt (HLT) between steps, so that every interrupt takes the wake-up path.</summary>
    public bool HaltIdle { get; init; }

    /// <summary>
    /// The virtual duration of the measured phase in nanoseconds, <see cref="RoundPeriodNs"/> to
    /// <see cref="MaxDurationNs"/>; ignored when <see cref="Rounds"/> is set.
    /// </summary>
    public long DurationNs { get; init; } = DefaultDurationNs;

    /// <summary>A fixed number of rounds (1 to <see cref="MaxRounds"/>) instead of <see cref="DurationNs"/>.</summary>
    public int? Rounds { get; init; }

    /// <summary>The number of rounds the run has: one per <see cref="RoundPeriodNs"/> of the duration.</summary>
    public int RoundCount => Rounds ?? (int)(DurationNs / RoundPeriodNs);

    /// <summary>The virtual time the measured phase lasts.</summary>
    public long EffectiveDurationNs => Rounds is int rounds ? rounds * RoundPeriodNs : DurationNs;

    /// <summary>The workload's name.</summary>
    public string WorkloadName => CompareWorkloads.NameOf(Workload);

    /// <summary>Checks the options; returns null when valid, otherwise what is wrong.</summary>
    public string? Validate()
    {
        if (!Enum.IsDefined(Workload))
        {
            return $"unknown workload {(int)Workload}";
        }

        if (VcpuCount is < MinVcpus or > MaxVcpus)
        {
            return $"vcpus must be between {MinVcpus} and {MaxVcpus}, not {VcpuCount}";
        }

        if (Rounds is int rounds)
        {
            if (rounds is < 1 or > MaxRounds)
            {
                return $"rounds must be between 1 and {MaxRounds}, not {rounds}";
            }
        }
        else if (DurationNs is < RoundPeriodNs or > MaxDurationNs)
        {
            return $"duration must be between {RoundPeriodNs} and {MaxDurationNs} ns (one round every {RoundPeriodNs} ns), not {DurationNs}";
        }

        return null;
    }
}
