using System.Numerics;

namespace Vapic.Machine;

/// <summary>
/// One deadline queue for every timer source of the machine (each vCPU's LAPIC timer and the
/// IOAPIC's deferred re-delivery). Each source has at most one entry; entries expire in
/// (deadline, source) order, so ties expire in source order (vCPU order, then the IOAPIC), as the
/// trace format requires. Nothing is allocated after construction, and the sequence of calls alone
/// decides the state, so the queue is deterministic.
/// </summary>
/// <remarks>
/// <para>
/// The armed sources are spread over a few <em>runs</em> and one heap. A run is a sorted list in a
/// ring buffer: entries leave it from the front (expiry) and join it at the back, both in O(1). A
/// 4-ary min-heap takes the keys that fit no run; it stores each key, not just the source, so that
/// comparisons never go through a second array. The minimum is the earliest of the runs' first
/// entries and the heap's root, cached after every change.
/// </para>
/// <para>
/// The hot pattern is a periodic LAPIC timer: the host takes the minimum, and the LAPIC re-arms the
/// same source one period later. With equal periods (every vCPU at the guest's tick rate) the new
/// deadline is later than every other armed one, so the expiry leaves the front of a run and the
/// re-arm joins the back of the same run, where a heap would sink it from the root to a leaf (12
/// levels at 4,096 vCPUs). Other patterns stay cheap too:
/// </para>
/// <list type="bullet">
/// <item><description>
/// A re-armed timer that lands before at most <see cref="MaxTailEvicted"/> entries at the back of its
/// run (a far deadline of an idle vCPU, a timer with a longer period) moves those entries to the heap
/// and stays in its run, so one far deadline does not push the whole run into the heap.
/// </description></item>
/// <item><description>
/// Any other key joins the run whose last entry is the latest one before it (best fit, as in patience
/// sorting), or an empty run. Timers with up to <see cref="RunCount"/> distinct periods thus settle
/// into one run per period.
/// </description></item>
/// <item><description>
/// Keys that fit no run (timers re-armed at arbitrary instants) go to the heap, O(log n), and move to
/// a run when a later re-arm fits one. A summary of the runs' ends decides this in two comparisons.
/// </description></item>
/// </list>
/// <para>
/// Removing a source from the middle of a run leaves a dead slot; dead slots at either end are
/// trimmed at once, and a run's ring (at least 1.5 times the source count) is compacted in place when
/// it is full, which frees at least half a source count of slots. Every operation is therefore
/// amortized O(<see cref="RunCount"/>) when it stays in the runs and O(log n) when it touches the heap.
/// </para>
/// </remarks>
public sealed class TimerQueue
{
    /// <summary>The largest source count the queue accepts (keeps every ring index within an <see cref="int"/>).</summary>
    public const int MaxSourceCount = 1 << 24;

    /// <summary>
    /// The number of runs: two period classes and room to start a new run while a blocked one drains.
    /// More runs serve more distinct periods but cost more when keys fit none (measured: 8 runs make
    /// random re-arms about 10 % slower than 4).
    /// </summary>
    private const int RunCount = 4;

    private const uint AllRuns = (1u << RunCount) - 1;

    /// <summary>How many entries at the back of its run a re-armed timer moves to the heap to stay in the run.</summary>
    private const int MaxTailEvicted = 2;

    // _location of a source without a deadline; a run slot is >= 0, heap index i is ~i (< 0).
    private const int NotQueued = int.MinValue;

    // Marks a run slot whose source was removed; such slots only exist strictly inside a run.
    private const int DeadSlot = -1;

    private readonly long[] _deadline;   // by source; long.MaxValue = not queued
    private readonly int[] _location;    // by source: NotQueued, a slot of _slots, or ~index in _heap
    private readonly Entry[] _slots;     // RunCount rings of _ringMask + 1 slots, ring r at r << _ringShift
    private readonly Run[] _runs;
    private readonly int _ringShift;
    private readonly int _ringMask;
    private readonly Entry[] _heap;      // 4-ary min-heap by (deadline, source)
    private uint _activeRuns;            // bit r set: run r is not empty
    private bool _runEndsChanged;        // a run's first or last entry changed since RefreshRunSummary
    private Entry _earliestFirst;        // the earliest first entry of the runs: the runs' minimum
    private Entry _earliestLast;         // the earliest last entry: a later key can join some run
    private int _heapCount;
    private int _count;
    private long _nextDeadline = long.MaxValue;
    private int _nextSource = -1;

    /// <summary>Creates a queue for <paramref name="sourceCount"/> sources numbered 0..sourceCount-1.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sourceCount"/> is not in 1..<see cref="MaxSourceCount"/>.</exception>
    public TimerQueue(int sourceCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sourceCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(sourceCount, MaxSourceCount);
        _deadline = new long[sourceCount];
        _location = new int[sourceCount];
        Array.Fill(_deadline, long.MaxValue);
        Array.Fill(_location, NotQueued);

        // At least 1.5 × sourceCount slots per ring: a compaction then frees at least sourceCount / 2.
        int ringSize = (int)BitOperations.RoundUpToPowerOf2((uint)(sourceCount + (sourceCount >> 1) + 1));
        _ringShift = BitOperations.Log2((uint)ringSize);
        _ringMask = ringSize - 1;
        _slots = new Entry[RunCount << _ringShift];
        _runs = new Run[RunCount];
        for (int r = 0; r < RunCount; r++)
        {
            _runs[r].Head = r << _ringShift;
        }

        _heap = new Entry[sourceCount];
        RefreshRunSummary();
    }

    /// <summary>The number of armed sources.</summary>
    public int Count => _count;

    /// <summary>The earliest deadline, or <see cref="long.MaxValue"/> when nothing is armed.</summary>
    public long NextDeadline => _nextDeadline;

    /// <summary>The source with the earliest deadline (ties: lowest source id), or -1.</summary>
    public int NextSource => _nextSource;

    /// <summary>The deadline of <paramref name="source"/>, or <see cref="long.MaxValue"/>.</summary>
    public long DeadlineOf(int source) => _deadline[source];

    /// <summary>Arms, re-arms or (with <see cref="long.MaxValue"/>) cancels <paramref name="source"/>.</summary>
    public void Set(int source, long deadline)
    {
        int location = _location[source];
        if (deadline == long.MaxValue)
        {
            if (location != NotQueued)
            {
                Detach(location);
                _location[source] = NotQueued;
                _deadline[source] = long.MaxValue;
                _count--;
                UpdateNext();
            }

            return;
        }

        var key = new Entry(deadline, source);
        if (location == NotQueued)
        {
            _count++;
            _deadline[source] = deadline;
            int r = ChooseRun(key);
            if (r >= 0)
            {
                Append(r, key);
            }
            else
            {
                SiftUp(_heapCount++, key);
            }
        }
        else if (_deadline[source] == deadline)
        {
            return;
        }
        else if (location >= 0)
        {
            _deadline[source] = deadline;
            ref Run run = ref _runs[location >> _ringShift];
            if (location == run.Head && run.Length > 1 && Entry.Precedes(run.Last, key))
            {
                // The hot path, a periodic timer: it leaves the front of its run and re-joins at the
                // back. The last slot is live, so the trim stops before it, and the run does not
                // grow, so it needs no compaction.
                _slots[location].Source = DeadSlot;
                int head = location;
                int length = run.Length;
                do
                {
                    head = Step(head, 1);
                    length--;
                }
                while (_slots[head].Source == DeadSlot);

                int slot = Step(head, length);
                _slots[slot] = key;
                _location[source] = slot;
                run.Head = head;
                run.Length = length + 1;
                run.First = _slots[head];
                run.Last = key;
                _runEndsChanged = true;
            }
            else
            {
                Detach(location);
                RearmFromRun(location >> _ringShift, key);
            }
        }
        else
        {
            _deadline[source] = deadline;
            int r = ChooseRun(key);
            if (r >= 0)
            {
                Detach(location);
                Append(r, key);
            }
            else
            {
                // Stays in the heap: move the entry in place rather than remove and re-insert it.
                int index = ~location;
                if (Entry.Precedes(key, _heap[index]))
                {
                    SiftUp(index, key);
                }
                else
                {
                    SiftDown(index, key);
                }
            }
        }

        UpdateNext();
    }

    /// <summary>
    /// Queues a timer just taken out of run <paramref name="r"/>. It stays in that run if the run is
    /// now empty, if its new key comes after the run's last entry, or if the key comes after all but
    /// at most <see cref="MaxTailEvicted"/> of the run's entries, which then move to the heap; else it
    /// goes where <see cref="ChooseRun"/> says.
    /// </summary>
    private void RearmFromRun(int r, Entry key)
    {
        ref Run run = ref _runs[r];
        if (run.Length != 0 && !Entry.Precedes(run.Last, key))
        {
            // Walk back from the last entry, counting the live entries that come after the key.
            int slot = Tail(run);
            int after = 1;
            while (true)
            {
                if (slot == run.Head || after > MaxTailEvicted)
                {
                    int other = ChooseRun(key);
                    if (other >= 0)
                    {
                        Append(other, key);
                    }
                    else
                    {
                        SiftUp(_heapCount++, key);
                    }

                    return;
                }

                slot = Step(slot, -1);
                if (_slots[slot].Source == DeadSlot)
                {
                    continue;
                }

                if (Entry.Precedes(_slots[slot], key))
                {
                    break;
                }

                after++;
            }

            // The live entries after that slot move to the heap; the run now ends at the slot.
            for (int i = Step(slot, 1), end = Step(Tail(run), 1); i != end; i = Step(i, 1))
            {
                if (_slots[i].Source != DeadSlot)
                {
                    SiftUp(_heapCount++, _slots[i]);
                }
            }

            run.Length = ((slot - run.Head) & _ringMask) + 1;
            run.Last = _slots[slot];
            _runEndsChanged = true;
        }

        Append(r, key);
    }

    /// <summary>Caches the minimum: the earliest of the runs' first entries and the heap's root.</summary>
    private void UpdateNext()
    {
        if (_runEndsChanged)
        {
            RefreshRunSummary();
        }

        Entry next = _earliestFirst;
        if (_heapCount != 0 && Entry.Precedes(_heap[0], next))
        {
            next = _heap[0];
        }

        _nextDeadline = next.Deadline;
        _nextSource = next.Source;
    }

    /// <summary>
    /// Recomputes the earliest first and last entries of the runs, so that <see cref="UpdateNext"/>
    /// and <see cref="ChooseRun"/> need not look at every run when only the heap changed. With no run
    /// active both are (long.MaxValue, -1), "nothing": every queued deadline is below long.MaxValue,
    /// so every key precedes it.
    /// </summary>
    private void RefreshRunSummary()
    {
        var earliestFirst = new Entry(long.MaxValue, -1);
        Entry earliestLast = earliestFirst;
        for (uint active = _activeRuns; active != 0; active &= active - 1)
        {
            ref Run run = ref _runs[BitOperations.TrailingZeroCount(active)];
            if (Entry.Precedes(run.First, earliestFirst))
            {
                earliestFirst = run.First;
            }

            if (Entry.Precedes(run.Last, earliestLast))
            {
                earliestLast = run.Last;
            }
        }

        _earliestFirst = earliestFirst;
        _earliestLast = earliestLast;
        _runEndsChanged = false;
    }

    /// <summary>
    /// The run that <paramref name="key"/> joins at the back, or -1 for the heap: the run whose last
    /// entry is the latest one before the key (best fit, which keeps timers of one period together),
    /// else an empty run. The key's source must be in no run.
    /// </summary>
    private int ChooseRun(Entry key)
    {
        if (_runEndsChanged)
        {
            RefreshRunSummary();
        }

        uint idle = ~_activeRuns & AllRuns;
        if (idle == 0 && !Entry.Precedes(_earliestLast, key))
        {
            // The common case for timers re-armed at arbitrary instants, decided without the runs.
            return -1;
        }

        int best = -1;
        for (uint active = _activeRuns; active != 0; active &= active - 1)
        {
            int r = BitOperations.TrailingZeroCount(active);
            if (Entry.Precedes(_runs[r].Last, key) && (best < 0 || Entry.Precedes(_runs[best].Last, _runs[r].Last)))
            {
                best = r;
            }
        }

        return best >= 0 || idle == 0 ? best : BitOperations.TrailingZeroCount(idle);
    }

    /// <summary>Puts <paramref name="key"/> at the back of run <paramref name="r"/>, whose last entry must precede it.</summary>
    private void Append(int r, Entry key)
    {
        ref Run run = ref _runs[r];
        if (run.Length == _ringMask + 1)
        {
            CompactRun(ref run);
        }

        if (run.Length == 0)
        {
            run.First = key;
            _activeRuns |= 1u << r;
        }

        int slot = Step(run.Head, run.Length);
        run.Length++;
        run.Last = key;
        _slots[slot] = key;
        _location[key.Source] = slot;
        _runEndsChanged = true;
    }

    /// <summary>Takes the entry at <paramref name="location"/> out of its run or the heap (the caller updates <c>_location</c>).</summary>
    private void Detach(int location)
    {
        if (location < 0)
        {
            int index = ~location;
            int last = --_heapCount;
            if (index != last)
            {
                Entry moved = _heap[last];
                if (Entry.Precedes(moved, _heap[index]))
                {
                    SiftUp(index, moved);
                }
                else
                {
                    SiftDown(index, moved);
                }
            }

            return;
        }

        ref Run run = ref _runs[location >> _ringShift];
        _slots[location].Source = DeadSlot;
        if (location == run.Head)
        {
            // Trim the dead slots at the front so that the first slot is live again.
            do
            {
                run.Head = Step(run.Head, 1);
                run.Length--;
            }
            while (run.Length != 0 && _slots[run.Head].Source == DeadSlot);

            if (run.Length == 0)
            {
                _activeRuns &= ~(1u << (location >> _ringShift));
            }
            else
            {
                run.First = _slots[run.Head];
            }

            _runEndsChanged = true;
        }
        else if (location == Tail(run))
        {
            // Trim at the back; the first slot is live (and not this one), so the loop stops there at the latest.
            do
            {
                run.Length--;
            }
            while (_slots[Tail(run)].Source == DeadSlot);

            run.Last = _slots[Tail(run)];
            _runEndsChanged = true;
        }
    }

    /// <summary>Moves the live entries of a full run together, in order, from its first slot on.</summary>
    private void CompactRun(ref Run run)
    {
        int read = run.Head;
        int write = run.Head;
        int live = 0;
        for (int i = 0; i < run.Length; i++)
        {
            Entry entry = _slots[read];
            if (entry.Source != DeadSlot)
            {
                _slots[write] = entry;
                _location[entry.Source] = write;
                write = Step(write, 1);
                live++;
            }

            read = Step(read, 1);
        }

        run.Length = live;
    }

    /// <summary>The slot <paramref name="steps"/> after <paramref name="slot"/> in the same ring.</summary>
    private int Step(int slot, int steps) => (slot & ~_ringMask) | ((slot + steps) & _ringMask);

    /// <summary>The last slot of a non-empty run.</summary>
    private int Tail(in Run run) => Step(run.Head, run.Length - 1);

    /// <summary>Places <paramref name="entry"/> at heap index <paramref name="index"/> or above it.</summary>
    private void SiftUp(int index, Entry entry)
    {
        Entry[] heap = _heap;
        while (index > 0)
        {
            int parent = (index - 1) >> 2;
            Entry above = heap[parent];
            if (!Entry.Precedes(entry, above))
            {
                break;
            }

            heap[index] = above;
            _location[above.Source] = ~index;
            index = parent;
        }

        heap[index] = entry;
        _location[entry.Source] = ~index;
    }

    /// <summary>Places <paramref name="entry"/> at heap index <paramref name="index"/> or below it.</summary>
    private void SiftDown(int index, Entry entry)
    {
        Entry[] heap = _heap;
        int count = _heapCount;
        while (true)
        {
            int first = (index << 2) + 1;
            if (first >= count)
            {
                break;
            }

            int best = first;
            int end = Math.Min(first + 4, count);
            for (int child = first + 1; child < end; child++)
            {
                if (Entry.Precedes(heap[child], heap[best]))
                {
                    best = child;
                }
            }

            Entry below = heap[best];
            if (!Entry.Precedes(below, entry))
            {
                break;
            }

            heap[index] = below;
            _location[below.Source] = ~index;
            index = best;
        }

        heap[index] = entry;
        _location[entry.Source] = ~index;
    }

    /// <summary>
    /// A sorted list: <see cref="Length"/> slots from <see cref="Head"/> on, wrapping in its ring.
    /// When the run is not empty both end slots are live, and their keys are kept here as well, so
    /// that the summary of the runs reads this small array rather than the rings.
    /// </summary>
    private struct Run
    {
        public int Head;
        public int Length;
        public Entry First;
        public Entry Last;
    }

    /// <summary>A queued key. In a run, <see cref="Source"/> is <see cref="DeadSlot"/> for a removed entry.</summary>
    private struct Entry(long deadline, int source)
    {
        public long Deadline = deadline;
        public int Source = source;

        /// <summary>Whether <paramref name="a"/> expires before <paramref name="b"/>: earlier deadline, or the same and a lower source.</summary>
        /// <remarks>By value, not <c>in</c>: the JIT then keeps both keys in registers rather than spilling them.</remarks>
        public static bool Precedes(Entry a, Entry b) =>
            a.Deadline < b.Deadline || (a.Deadline == b.Deadline && a.Source < b.Source);
    }
}
