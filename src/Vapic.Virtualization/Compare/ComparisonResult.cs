using System.Globalization;

namespace Vapic.Virtualization.Compare;

/// <summary>What one mode did on one workload or trace: the measured counts and anything that went wrong.</summary>
/// <param name="Mode">The mode's name, as <see cref="ModeRegistry"/> knows it.</param>
/// <param name="Counts">Exits, costed events and delivered interrupts of the measured phase.</param>
/// <param name="Cycles">The estimated cycles of <paramref name="Counts"/> under the run's cost model.</param>
/// <param name="Problems">What the guest saw go wrong under this mode (lost or stray interrupts, a failed expectation), one line each.</param>
public sealed record ModeComparison(string Mode, LedgerCounts Counts, long Cycles, IReadOnlyList<string> Problems)
{
    /// <summary>All exits of the measured phase.</summary>
    public long ExitsTotal => Counts.TotalExits;

    /// <summary>Events the guest took in the measured phase (every mode must report the same number).</summary>
    public long InterruptsDelivered => Counts.InterruptsDelivered;

    /// <summary>Estimated cycles per delivered interrupt, or null when nothing was delivered.</summary>
    public double? CyclesPerInterrupt => InterruptsDelivered == 0 ? null : (double)Cycles / InterruptsDelivered;

    /// <summary>Exits per delivered interrupt, or null when nothing was delivered.</summary>
    public double? ExitsPerInterrupt => InterruptsDelivered == 0 ? null : (double)ExitsTotal / InterruptsDelivered;
}

/// <summary>
/// The result of running one workload or trace under several modes. It fails when a mode reported a
/// problem, when the modes disagree on the number of delivered interrupts, or when a built-in
/// workload's modes delivered a different number than its schedule sends.
/// </summary>
public sealed class ComparisonResult
{
    /// <summary>Creates the result and works out its failures.</summary>
    public ComparisonResult(
        string workload,
        int vcpuCount,
        CostModel costModel,
        IReadOnlyList<ModeComparison> modes,
        CompareWorkloadOptions? options = null,
        long? expectedInterrupts = null)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(costModel);
        ArgumentNullException.ThrowIfNull(modes);
        Workload = workload;
        VcpuCount = vcpuCount;
        CostModel = costModel;
        Modes = modes;
        Options = options;
        ExpectedInterrupts = expectedInterrupts;
        Failures = FindFailures(modes, expectedInterrupts);
    }

    /// <summary>The workload name, or the trace file as given.</summary>
    public string Workload { get; }

    /// <summary>The number of vCPUs of the machine.</summary>
    public int VcpuCount { get; }

    /// <summary>The cost model the cycles were estimated with.</summary>
    public CostModel CostModel { get; }

    /// <summary>One entry per mode, in the order they ran.</summary>
    public IReadOnlyList<ModeComparison> Modes { get; }

    /// <summary>The options of a built-in workload; null for a trace.</summary>
    public CompareWorkloadOptions? Options { get; }

    /// <summary>The number of interrupts a built-in workload's schedule sends; null for a trace.</summary>
    public long? ExpectedInterrupts { get; }

    /// <summary>Why the comparison failed, one line each; empty when it passed.</summary>
    public IReadOnlyList<string> Failures { get; }

    /// <summary>True when no mode had a problem and every mode delivered the same number of interrupts.</summary>
    public bool Passed => Failures.Count == 0;

    /// <summary>Modes that could not run this guest, as "mode: reason"; they are not compared.</summary>
    public IReadOnlyList<string> Skipped { get; init; } = [];

    private static List<string> FindFailures(IReadOnlyList<ModeComparison> modes, long? expected)
    {
        var failures = new List<string>();
        foreach (ModeComparison mode in modes)
        {
            foreach (string problem in mode.Problems)
            {
                failures.Add($"mode {mode.Mode}: {problem}");
            }
        }

        bool differ = false;
        for (int i = 1; i < modes.Count; i++)
        {
            differ |= modes[i].InterruptsDelivered != modes[0].InterruptsDelivered;
        }

        if (differ)
        {
            // The guest-visible result must be the same in every mode, so the number of events
            // the guest took must be too: a difference means some mode lost or invented one.
            failures.Add("interrupts delivered differ between modes: " + string.Join(", ", modes.Select(m => $"{m.Mode} {m.InterruptsDelivered.ToString(CultureInfo.InvariantCulture)}")));
        }

        if (expected is long sent)
        {
            foreach (ModeComparison mode in modes)
            {
                if (mode.InterruptsDelivered != sent)
                {
                    failures.Add($"mode {mode.Mode} delivered {mode.InterruptsDelivered.ToString(CultureInfo.InvariantCulture)} interrupts; the workload sends {sent.ToString(CultureInfo.InvariantCulture)}");
                }
            }
        }

        return failures;
    }
}
