using Vapic.Trace.Syntax;
using Vapic.Virtualization;

namespace Vapic.Trace.Replay;

/// <summary>How a replay ended; the values are the exit codes of <c>vapic replay</c>.</summary>
public enum ReplayOutcome
{
    /// <summary>Every expectation held.</summary>
    Passed = 0,

    /// <summary>An expectation failed, or modes disagreed.</summary>
    Failed = 1,

    /// <summary>The trace is malformed or names something the machine does not have.</summary>
    Malformed = 2,
}

/// <summary>The first expectation that did not hold.</summary>
/// <param name="Command">The command, with its location.</param>
/// <param name="Expected">What the trace expected (as trace text).</param>
/// <param name="Observed">What the guest saw.</param>
public sealed record ReplayFailure(TraceCommand Command, string Expected, Observation Observed)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Command.Location}: '{TraceFormatter.Format(Command)}' expected {Expected}, observed {Observed}";
}

/// <summary>The work one replay did, for <c>--stats</c>.</summary>
public sealed record ReplayStats
{
    public long Commands { get; init; }
    public long Expectations { get; init; }
    public long MmioAccesses { get; init; }
    public long MsrAccesses { get; init; }
    public long GeneralProtections { get; init; }
    public long EventsAccepted { get; init; }
    public long FixedAccepted { get; init; }
    public long IpisSent { get; init; }
    public long IoApicMessages { get; init; }
    public long Msis { get; init; }
    public long TimerExpiries { get; init; }
    public long EoiBroadcasts { get; init; }
    public long InterruptsMerged { get; init; }
    public long InterruptsDropped { get; init; }
    public long VirtualNanoseconds { get; init; }
}

/// <summary>The result of replaying one trace in one mode.</summary>
/// <param name="Mode">The mode.</param>
/// <param name="Failure">The first failed expectation, or null.</param>
/// <param name="Observations">What the guest saw, one entry per command (for mode equivalence).</param>
/// <param name="Stats">Work counters.</param>
/// <param name="Ledger">The exits and costed events the mode accounted.</param>
public sealed record ModeRun(string Mode, ReplayFailure? Failure, Observation[] Observations, ReplayStats Stats, ExitLedger Ledger)
{
    /// <summary>The mode's own counters at the end of the replay (see <see cref="VirtualizationMode.ModeCounters"/>).</summary>
    public IReadOnlyList<KeyValuePair<string, long>> ModeCounters { get; init; } = [];

    /// <summary>True when every expectation held.</summary>
    public bool Passed => Failure is null;
}
