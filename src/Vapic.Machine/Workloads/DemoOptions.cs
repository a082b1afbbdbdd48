namespace Vapic.Machine.Workloads;

/// <summary>The knobs of <see cref="DemoWorkload"/>; everything else about the scenario is fixed.</summary>
public sealed record DemoOptions
{
    /// <summary>The default virtual run time: 1 ms.</summary>
    public const long DefaultDurationNs = 1_000_000;

    /// <summary>The longest run accepted: 10 s of virtual time (a few seconds of host time).</summary>
    public const long MaxDurationNs = 10_000_000_000;

    /// <summary>Virtual nanoseconds to run, 1 to <see cref="MaxDurationNs"/>.</summary>
    public long DurationNs { get; init; } = DefaultDurationNs;

    /// <summary>
    /// Run the guest in x2APIC mode: each CPU sets IA32_APIC_BASE.EXTD once it is up and then uses
    /// the MSR interface (ICR as one 64-bit WRMSR, EOI through MSR 0x80B). The schedule is unchanged.
    /// </summary>
    public bool UseX2Apic { get; init; }

    /// <summary>Checks the options; returns null when valid, otherwise a message saying what is wrong.</summary>
    public string? Validate()
    {
        if (DurationNs < 1 || DurationNs > MaxDurationNs)
        {
            return $"duration must be between 1 and {MaxDurationNs} ns, not {DurationNs}";
        }

        return null;
    }
}
