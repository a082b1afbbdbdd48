namespace Vapic.Virtualization;

/// <summary>Counts of exits by reason and of other costed events, for one machine under one mode.</summary>
public sealed class ExitLedger
{
    private static readonly int s_reasonCount = Enum.GetValues<ExitReason>().Length;
    private static readonly int s_eventCount = Enum.GetValues<CostEvent>().Length;

    private readonly long[] _exits = new long[s_reasonCount];
    private readonly long[] _events = new long[s_eventCount];

    /// <summary>Every exit reason, in declaration order.</summary>
    public static IReadOnlyList<ExitReason> Reasons { get; } = Enum.GetValues<ExitReason>();

    /// <summary>Every cost event, in declaration order.</summary>
    public static IReadOnlyList<CostEvent> Events { get; } = Enum.GetValues<CostEvent>();

    /// <summary>Fixed interrupts (and NMIs, INITs, SIPIs, SMIs, ExtINTs) the guest took.</summary>
    public long InterruptsDelivered { get; private set; }

    /// <summary>Records one exit.</summary>
    public void Exit(ExitReason reason) => _exits[(int)reason]++;

    /// <summary>Records one costed event.</summary>
    public void Event(CostEvent costEvent) => _events[(int)costEvent]++;

    /// <summary>Records an event the guest took.</summary>
    public void Delivered() => InterruptsDelivered++;

    /// <summary>Exits of <paramref name="reason"/>.</summary>
    public long ExitsOf(ExitReason reason) => _exits[(int)reason];

    /// <summary>Occurrences of <paramref name="costEvent"/>.</summary>
    public long EventsOf(CostEvent costEvent) => _events[(int)costEvent];

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

    /// <summary>The cycles all of this cost under <paramref name="model"/>.</summary>
    public long TotalCycles(CostModel model)
    {
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

    /// <summary>Adds <paramref name="other"/> into this ledger.</summary>
    public void Add(ExitLedger other)
    {
        for (int i = 0; i < _exits.Length; i++)
        {
            _exits[i] += other._exits[i];
        }

        for (int i = 0; i < _events.Length; i++)
        {
            _events[i] += other._events[i];
        }

        InterruptsDelivered += other.InterruptsDelivered;
    }
}
