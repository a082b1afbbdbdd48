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
    public void EqualPeriodsExpireRoundRobinInSourceOrder()
    {
        // 4,096 vCPUs and the IOAPIC, every timer due at 0 with a 1 ms period: each round expires
        // the sources in id order (ties in vCPU order, then the IOAPIC), each exactly one period later.
        const int sources = MachineOptions.MaxVcpus + 1;
        const long period = 1_000_000;
        var q = new TimerQueue(sources);
        for (int s = sources - 1; s >= 0; s--)
        {
            q.Set(s, 0);
        }

        for (int k = 0; k < 3 * sources; k++)
        {
            Assert.Equal(k % sources, q.NextSource);
            Assert.Equal((k / sources) * period, q.NextDeadline);
            q.Set(q.NextSource, q.NextDeadline + period);
            Assert.Equal(sources, q.Count);
        }
    }

    [Fact]
    public void StaggeredPeriodicTimersExpireInDeadlineOrder()
    {
        // The benchmark's pattern: timer i first due at i × 1000 + period, re-armed one period later.
        const int sources = 64;
        const long period = 1_000_000;
        var q = new TimerQueue(sources);
        for (int s = 0; s < sources; s++)
        {
            q.Set(s, (s * 1000L) + period);
        }

        for (int k = 0; k < 10 * sources; k++)
        {
            int expected = k % sources;
            Assert.Equal(expected, q.NextSource);
            Assert.Equal((expected * 1000L) + ((1 + (k / sources)) * period), q.NextDeadline);
            q.Set(expected, q.NextDeadline + period);
        }
    }

    [Fact]
    public void ManyRemovalsInsideTheOrderKeepTheRestInOrder()
    {
        // Re-arming the second-latest timer past the latest, over and over, removes entries from
        // the middle of the expiry order; the others must keep their order.
        var q = new TimerQueue(3);
        q.Set(0, 1);
        q.Set(2, 2);
        q.Set(1, 3);
        long latest = 3;
        int last = 1;
        int secondLast = 2;
        for (int i = 0; i < 100; i++)
        {
            q.Set(secondLast, ++latest);
            (secondLast, last) = (last, secondLast);
            Assert.Equal(0, q.NextSource);
            Assert.Equal(1, q.NextDeadline);
        }

        q.Set(0, long.MaxValue);
        Assert.Equal(secondLast, q.NextSource);
        Assert.Equal(latest - 1, q.NextDeadline);
        q.Set(secondLast, long.MaxValue);
        Assert.Equal(last, q.NextSource);
        Assert.Equal(latest, q.NextDeadline);
        Assert.Equal(1, q.Count);
    }

    [Fact]
    public void ExtremeDeadlinesOrderCorrectly()
    {
        var q = new TimerQueue(4);
        q.Set(0, long.MaxValue - 1);
        q.Set(1, 0);
        q.Set(2, long.MaxValue - 1);
        q.Set(3, 1L << 62);
        Assert.Equal(1, q.NextSource);
        Assert.Equal(0, q.NextDeadline);
        q.Set(1, long.MaxValue);
        Assert.Equal(3, q.NextSource);
        q.Set(3, long.MaxValue);
        Assert.Equal(0, q.NextSource);
        Assert.Equal(long.MaxValue - 1, q.NextDeadline);
        q.Set(0, long.MaxValue);
        Assert.Equal(2, q.NextSource);
        Assert.Equal(long.MaxValue - 1, q.DeadlineOf(2));
        Assert.Equal(long.MaxValue, q.DeadlineOf(0));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(TimerQueue.MaxSourceCount + 1)]
    public void RejectsSourceCountsOutOfRange(int sourceCount) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new TimerQueue(sourceCount));

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
