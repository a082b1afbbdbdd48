namespace Vapic.Machine;

/// <summary>
/// One deadline queue for every timer source of the machine (each vCPU's LAPIC timer and the
/// IOAPIC's deferred re-delivery). An indexed binary min-heap: each source has at most one
/// entry, so arming, re-arming and cancelling are O(log n) and never allocate after construction.
/// Ties expire in source order (vCPU order, then the IOAPIC), as the trace format requires.
/// </summary>
public sealed class TimerQueue
{
    private readonly long[] _deadline;   // by source; long.MaxValue = not queued
    private readonly int[] _heap;        // source ids, heap-ordered by (deadline, source)
    private readonly int[] _position;    // by source: index in _heap, or -1
    private int _count;

    /// <summary>Creates a queue for <paramref name="sourceCount"/> sources numbered 0..sourceCount-1.</summary>
    public TimerQueue(int sourceCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sourceCount);
        _deadline = new long[sourceCount];
        _heap = new int[sourceCount];
        _position = new int[sourceCount];
        Array.Fill(_deadline, long.MaxValue);
        Array.Fill(_position, -1);
    }

    /// <summary>The number of armed sources.</summary>
    public int Count => _count;

    /// <summary>The earliest deadline, or <see cref="long.MaxValue"/> when nothing is armed.</summary>
    public long NextDeadline => _count == 0 ? long.MaxValue : _deadline[_heap[0]];

    /// <summary>The source with the earliest deadline (ties: lowest source id), or -1.</summary>
    public int NextSource => _count == 0 ? -1 : _heap[0];

    /// <summary>The deadline of <paramref name="source"/>, or <see cref="long.MaxValue"/>.</summary>
    public long DeadlineOf(int source) => _deadline[source];

    /// <summary>Arms, re-arms or (with <see cref="long.MaxValue"/>) cancels <paramref name="source"/>.</summary>
    public void Set(int source, long deadline)
    {
        int pos = _position[source];
        if (deadline == long.MaxValue)
        {
            if (pos >= 0)
            {
                RemoveAt(pos);
                _deadline[source] = long.MaxValue;
            }

            return;
        }

        long old = _deadline[source];
        _deadline[source] = deadline;
        if (pos < 0)
        {
            pos = _count++;
            _heap[pos] = source;
            _position[source] = pos;
            SiftUp(pos);
        }
        else if (Less(deadline, source, old, source))
        {
            SiftUp(pos);
        }
        else
        {
            SiftDown(pos);
        }
    }

    private void RemoveAt(int pos)
    {
        int source = _heap[pos];
        _position[source] = -1;
        int last = --_count;
        if (pos == last)
        {
            return;
        }

        int moved = _heap[last];
        _heap[pos] = moved;
        _position[moved] = pos;
        SiftUp(pos);
        SiftDown(_position[moved]);
    }

    private static bool Less(long d1, int s1, long d2, int s2) => d1 < d2 || (d1 == d2 && s1 < s2);

    private bool Less(int a, int b) => Less(_deadline[a], a, _deadline[b], b);

    private void SiftUp(int pos)
    {
        int item = _heap[pos];
        while (pos > 0)
        {
            int parent = (pos - 1) >> 1;
            int p = _heap[parent];
            if (!Less(item, p))
            {
                break;
            }

            _heap[pos] = p;
            _position[p] = pos;
            pos = parent;
        }

        _heap[pos] = item;
        _position[item] = pos;
    }

    private void SiftDown(int pos)
    {
        int item = _heap[pos];
        while (true)
        {
            int child = (pos << 1) + 1;
            if (child >= _count)
            {
                break;
            }

            int c = _heap[child];
            if (child + 1 < _count && Less(_heap[child + 1], c))
            {
                child++;
                c = _heap[child];
            }

            if (!Less(c, item))
            {
                break;
            }

            _heap[pos] = c;
            _position[c] = pos;
            pos = child;
        }

        _heap[pos] = item;
        _position[item] = pos;
    }
}
