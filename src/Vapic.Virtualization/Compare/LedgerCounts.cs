namespace Vapic.Virtualization.Compare;

/// <summary>
/// An immutable copy of an <see cref="ExitLedger"/>'s counts, or the difference of two copies, so
/// that a measured phase can leave out what happened before it (boot and setup).
/// </summary>
public sealed class LedgerCounts
{
    private readonly long[] _exits;
    private readonly long[] _events;

    private LedgerCounts(long[] exits, long[] events, long interruptsDelivered)
    {
        _exits = exits;
        _events = events;
        InterruptsDelivered = interruptsDelivered;
    }

    /// <summary>No exits, no events, nothing delivered.</summary>
    public static LedgerCounts Empty { get; } = new(new long[ExitLedger.Reasons.Count], new long[ExitLedger.Events.Count], 0);

    /// <summary>Events the guest took, as the ledger counted them (<see cref="ExitLedger.InterruptsDelivered"/>).</summary>
    public long InterruptsDelivered { get; }

    /// <summary>All exits.</summary>
    public long TotalExits
    {
        get
        {
            long total = 0;
            foreach (long n in _exits)
            {
                total += n;
            }

            return total;
        }
    }

    /// <summary>Copies the current counts of <paramref name="ledger"/>.</summary>
    public static LedgerCounts Capture(ExitLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        var exits = new long[ExitLedger.Reasons.Count];
        var events = new long[ExitLedger.Events.Count];
        for (int i = 0; i < exits.Length; i++)
        {
            exits[i] = ledger.ExitsOf((ExitReason)i);
        }

        for (int i = 0; i < events.Length; i++)
        {
            events[i] = ledger.EventsOf((CostEvent)i);
        }

        return new LedgerCounts(exits, events, ledger.InterruptsDelivered);
    }

    /// <summary>What was counted after <paramref name="earlier"/> (this minus it).</summary>
    public LedgerCounts Since(LedgerCounts earlier)
    {
        ArgumentNullException.ThrowIfNull(earlier);
        var exits = new long[_exits.Length];
        var events = new long[_events.Length];
        for (int i = 0; i < exits.Length; i++)
        {
            exits[i] = _exits[i] - earlier._exits[i];
        }

        for (int i = 0; i < events.Length; i++)
        {
            events[i] = _events[i] - earlier._events[i];
        }

        return new LedgerCounts(exits, events, InterruptsDelivered - earlier.InterruptsDelivered);
    }

    /// <summary>Exits of <paramref name="reason"/>.</summary>
    public long ExitsOf(ExitReason reason) => _exits[(int)reason];

    /// <summary>Occurrences of <paramref name="costEvent"/>.</summary>
    public long EventsOf(CostEvent costEvent) => _events[(int)costEvent];

    /// <summary>
    /// The estimated cycles of these counts under <paramref name="model"/>: the same sum as
    /// <see cref="ExitLedger.TotalCycles"/> (Σ exits × cost of their reason + Σ events × cost of the
    /// event), so the cycles of a difference are the difference of the ledger's cycles.
    /// </summary>
    public long Cycles(CostModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long total = 0;
        for (int i = 0; i < _exits.Length; i++)
        {
            total += _exits[i] * model.CostOf((ExitReason)i);
        }

        for (int i = 0; i < _events.Length; i++)
        {
            total += _events[i] * model.CostOf((CostEvent)i);
        }

        return total;
    }
}
