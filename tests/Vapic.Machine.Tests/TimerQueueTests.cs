using CsCheck;
using Vapic.Machine;
using Xunit;

namespace Vapic.Machine.Tests;

public class TimerQueueTests
{
    [Fact]
    public void EmptyQueueHasNoDeadline()
    {
        var q = new TimerQueue(4);
        Assert.Equal(long.MaxValue, q.NextDeadline);
        Assert.Equal(-1, q.NextSource);
        Assert.Equal(0, q.Count);
    }

    [Fact]
    public void TiesExpireInSourceOrder()
    {
        var q = new TimerQueue(4);
        q.Set(3, 100);
        q.Set(1, 100);
        q.Set(2, 50);
        Assert.Equal(2, q.NextSource);
        q.Set(2, long.MaxValue);
        Assert.Equal(1, q.NextSource);
        q.Set(1, long.MaxValue);
        Assert.Equal(3, q.NextSource);
        Assert.Equal(100, q.NextDeadline);
    }

    [Fact]
    public void RearmMovesEntryBothWays()
    {
        var q = new TimerQueue(3);
        q.Set(0, 10);
        q.Set(1, 20);
        q.Set(2, 30);
        q.Set(0, 40);
        Assert.Equal(1, q.NextSource);
        q.Set(2, 5);
        Assert.Equal(2, q.NextSource);
        Assert.Equal(5, q.NextDeadline);
        Assert.Equal(3, q.Count);
    }

    [Fact]
    public void CancelOfUnarmedSourceIsNoOp()
    {
        var q = new TimerQueue(2);
        q.Set(1, long.MaxValue);
        Assert.Equal(0, q.Count);
        Assert.Equal(long.MaxValue, q.DeadlineOf(1));
    }

    [Fact]
    public void MatchesASortedReferenceUnderRandomOperations()
    {
        const int sources = 16;
        Gen.Select(Gen.Int[0, sources - 1], Gen.Long[0, 1000], Gen.Bool)
            .Array[1, 200]
            .Sample(ops =>
            {
                var q = new TimerQueue(sources);
                var reference = new long[sources];
                Array.Fill(reference, long.MaxValue);
                foreach (var (source, deadline, cancel) in ops)
                {
                    long d = cancel ? long.MaxValue : deadline;
                    q.Set(source, d);
                    reference[source] = d;

                    long best = long.MaxValue;
                    int bestSource = -1;
                    for (int s = 0; s < sources; s++)
                    {
                        if (reference[s] < best)
                        {
                            best = reference[s];
                            bestSource = s;
                        }
                    }

                    if (q.NextDeadline != best || q.NextSource != bestSource)
                    {
                        return false;
                    }
                }

                return true;
            });
    }
}
