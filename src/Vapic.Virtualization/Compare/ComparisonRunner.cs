namespace Vapic.Virtualization.Compare;

/// <summary>Creates a mode by name with a cost model (<see cref="ModeRegistry.Create"/> by default).</summary>
public delegate VirtualizationMode ModeFactory(string name, CostModel costModel);

/// <summary>What a measurement under one mode produced: the counts of its measured phase and its problems.</summary>
/// <param name="Counts">Exits, events and delivered interrupts of the measured phase.</param>
/// <param name="Problems">What went wrong that the guest could see, one line each.</param>
public readonly record struct ModeMeasurement(LedgerCounts Counts, IReadOnlyList<string> Problems);

/// <summary>
/// Runs a workload (or any measurement) once under each mode on a fresh machine and collects, per
/// mode, exits by reason, delivered interrupts and estimated cycles.
/// </summary>
public static class ComparisonRunner
{
    /// <summary>
    /// Runs the built-in workload of <paramref name="options"/> under each of <paramref name="modes"/>
    /// (default: every mode of <see cref="ModeRegistry.Available"/>). <paramref name="onRun"/>, when
    /// given, sees each mode's whole run (its device sources, say) as the mode's name and the run.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid or a mode is not available.</exception>
    public static ComparisonResult Run(
        CompareWorkloadOptions options,
        CostModel? costModel = null,
        IReadOnlyList<string>? modes = null,
        ModeFactory? createMode = null,
        Action<string, CompareWorkloadRun>? onRun = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }

        CostModel cost = costModel ?? CostModel.Default;
        var skipped = new List<string>();
        List<ModeComparison> results = Measure(modes, cost, createMode, skipped, mode =>
        {
            CompareWorkloadRun run = new CompareWorkload(options).Run(mode);
            onRun?.Invoke(mode.Name, run);
            return new ModeMeasurement(run.Counts, run.Problems);
        });
        return new ComparisonResult(options.WorkloadName, options.VcpuCount, cost, results, options, CompareWorkload.ExpectedInterrupts(options))
        {
            Skipped = skipped,
        };
    }

    /// <summary>
    /// Runs <paramref name="measure"/> once under each of <paramref name="modes"/> (default: every
    /// mode of <see cref="ModeRegistry.Available"/>), each time with a new mode instance that is not
    /// attached to a machine yet (a trace replay, say).
    /// </summary>
    public static ComparisonResult Compare(
        string workload,
        int vcpuCount,
        Func<VirtualizationMode, ModeMeasurement> measure,
        CostModel? costModel = null,
        IReadOnlyList<string>? modes = null,
        ModeFactory? createMode = null)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(measure);
        CostModel cost = costModel ?? CostModel.Default;
        var skipped = new List<string>();
        return new ComparisonResult(workload, vcpuCount, cost, Measure(modes, cost, createMode, skipped, measure)) { Skipped = skipped };
    }

    private static List<ModeComparison> Measure(
        IReadOnlyList<string>? modes,
        CostModel cost,
        ModeFactory? createMode,
        List<string> skipped,
        Func<VirtualizationMode, ModeMeasurement> measure)
    {
        modes ??= ModeRegistry.Available;
        createMode ??= ModeRegistry.Create;
        var results = new List<ModeComparison>(modes.Count);
        foreach (string name in modes)
        {
            VirtualizationMode mode = createMode(name, cost);
            ModeMeasurement measured = measure(mode);
            if (mode.InapplicableReason is string reason)
            {
                // A mode that cannot run this guest (savic and an xAPIC guest, say) is reported
                // as skipped, as `vapic replay --mode all` does, not compared.
                skipped.Add($"{name}: {reason}");
                continue;
            }

            results.Add(new ModeComparison(name, measured.Counts, measured.Counts.Cycles(cost), measured.Problems));
        }

        return results;
    }
}
