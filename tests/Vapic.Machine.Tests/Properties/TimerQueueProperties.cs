using CsCheck;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// Random sequences of arms, re-arms, cancels and pops on a <see cref="TimerQueue"/> of 1-300
/// sources, checked after every operation against a trivially correct reference: a sorted set of
/// (deadline, source) pairs plus the deadline of each source. The queue must expire in exactly that
/// order, ties in source order (vCPU order, then the IOAPIC, as the trace format requires).
/// </summary>
/// <remarks>
/// Deadlines are drawn so that ties are common (a handful of small values, copies of another
/// source's deadline, a shared period for the pops), and the ends of the range (0 and
/// <c>long.MaxValue - 1</c>) appear often. Re-arms past the latest deadline take entries out of the
/// middle of the expiry order; long sequences on few sources wrap and compact the queue's internal
/// rings many times.
/// </remarks>
public sealed class TimerQueueProperties
{
    private enum QueueOpKind
    {
        /// <summary>Set(source, Value).</summary>
        Arm,

        /// <summary>Set(source, the deadline of source Value), or Value itself when that source is idle.</summary>
        ArmAsAnother,

        /// <summary>Set(source, the latest queued deadline + Value), saturated below long.MaxValue.</summary>
        ArmAfterLatest,

        /// <summary>Set(source, long.MaxValue).</summary>
        Cancel,

        /// <summary>
        /// Set(NextSource, NextDeadline + its period), as a periodic LAPIC timer does: the sequence's
        /// period times 1 + (source mod the sequence's number of period classes).
        /// </summary>
        PopAndRearmPeriodic,

        /// <summary>Set(NextSource, NextDeadline + Value), saturated below long.MaxValue.</summary>
        PopAndRearm,

        /// <summary>Set(NextSource, long.MaxValue), as a one-shot timer does.</summary>
        PopAndCancel,
    }

    private readonly record struct QueueOp(QueueOpKind Kind, int Source, long Value)
    {
        private static readonly Gen<long> Deadline = Gen.Frequency(
            (6, Gen.Long[0, 24]),
            (2, Gen.Long[0, 5_000]),
            (2, Gen.Long[0, long.MaxValue - 1]),
            (1, Gen.Long[long.MaxValue - 8, long.MaxValue - 1]),
            (1, Gen.Const(long.MaxValue - 1)),
            (1, Gen.Const(0L)));

        public static readonly Gen<QueueOp> Generator = Gen.Frequency(
            (5, Gen.Select(Gen.Int[0, 299], Deadline, (s, d) => new QueueOp(QueueOpKind.Arm, s, d))),
            (2, Gen.Select(Gen.Int[0, 299], Gen.Int[0, 299], (s, other) => new QueueOp(QueueOpKind.ArmAsAnother, s, other))),
            (3, Gen.Select(Gen.Int[0, 299], Gen.Long[0, 3], (s, d) => new QueueOp(QueueOpKind.ArmAfterLatest, s, d))),
            (2, Gen.Int[0, 299].Select(s => new QueueOp(QueueOpKind.Cancel, s, 0))),
            (8, Gen.Const(new QueueOp(QueueOpKind.PopAndRearmPeriodic, 0, 0))),
            (2, Deadline.Select(d => new QueueOp(QueueOpKind.PopAndRearm, 0, d))),
            (1, Gen.Const(new QueueOp(QueueOpKind.PopAndCancel, 0, 0))));

        /// <summary>Mostly re-arms past the latest deadline, which leave holes inside the expiry order.</summary>
        public static readonly Gen<QueueOp> ReorderingGenerator = Gen.Frequency(
            (12, Gen.Select(Gen.Int[0, 299], Gen.Long[0, 3], (s, d) => new QueueOp(QueueOpKind.ArmAfterLatest, s, d))),
            (2, Gen.Select(Gen.Int[0, 299], Deadline, (s, d) => new QueueOp(QueueOpKind.Arm, s, d))),
            (1, Gen.Const(new QueueOp(QueueOpKind.PopAndRearmPeriodic, 0, 0))),
            (1, Gen.Int[0, 299].Select(s => new QueueOp(QueueOpKind.Cancel, s, 0))));

        /// <summary>Mostly periodic expiries, with far deadlines and random re-arms now and then.</summary>
        public static readonly Gen<QueueOp> PeriodicGenerator = Gen.Frequency(
            (30, Gen.Const(new QueueOp(QueueOpKind.PopAndRearmPeriodic, 0, 0))),
            (1, Gen.Select(Gen.Int[0, 299], Gen.Long[1L << 40, 1L << 50], (s, d) => new QueueOp(QueueOpKind.Arm, s, d))),
            (1, Gen.Select(Gen.Int[0, 299], Deadline, (s, d) => new QueueOp(QueueOpKind.Arm, s, d))),
            (1, Gen.Const(new QueueOp(QueueOpKind.PopAndCancel, 0, 0))),
            (1, Gen.Int[0, 299].Select(s => new QueueOp(QueueOpKind.Cancel, s, 0))));
    }

    [Fact]
    public void RandomOperations_MatchASortedReference() =>
        Gen.Select(Gen.Int[1, 300], Gen.Frequency((3, Gen.Long[0, 50]), (1, Gen.Long[0, long.MaxValue])), QueueOp.Generator.Array[1, 400])
            .Sample((sources, period, ops) => Check(sources, period, 1, ops), iter: 300);

    [Fact]
    public void LongSequencesOnFewSources_MatchASortedReference() =>
        Gen.Select(Gen.Int[1, 6], Gen.Long[0, 12], QueueOp.Generator.Array[200, 3_000])
            .Sample((sources, period, ops) => Check(sources, period, 1, ops), iter: 200);

    [Fact]
    public void ReorderingSequences_MatchASortedReference() =>
        Gen.Select(Gen.Int[2, 40], Gen.Long[0, 12], QueueOp.ReorderingGenerator.Array[100, 2_000])
            .Sample((sources, period, ops) => Check(sources, period, 1, ops), iter: 200);

    [Fact]
    public void PeriodicTimersOfSeveralPeriodsWithFarDeadlines_MatchASortedReference() =>
        Gen.Select(Gen.Int[2, 300], Gen.Long[1, 40], Gen.Int[1, 7], QueueOp.PeriodicGenerator.Array[200, 2_000])
            .Sample((sources, period, classes, ops) => Check(sources, period, classes, ops, armEverySource: true), iter: 150);

    private static void Check(int sources, long period, int periodClasses, QueueOp[] ops, bool armEverySource = false)
    {
        var queue = new TimerQueue(sources);
        var order = new SortedSet<(long Deadline, int Source)>();
        var deadlines = new long[sources];
        Array.Fill(deadlines, long.MaxValue);
        Verify(queue, order, deadlines, "initial state");
        if (armEverySource)
        {
            // Staggered first deadlines within one period of the longest class, with some ties.
            for (int source = 0; source < sources; source++)
            {
                long first = (source * 7L) % ((period * periodClasses) + 1);
                queue.Set(source, first);
                deadlines[source] = first;
                order.Add((first, source));
                Verify(queue, order, deadlines, $"arming source {source} at {first}");
            }
        }

        for (int step = 0; step < ops.Length; step++)
        {
            QueueOp op = ops[step];
            int source = op.Source % sources;
            long deadline;
            switch (op.Kind)
            {
                case QueueOpKind.Arm:
                    deadline = op.Value;
                    break;
                case QueueOpKind.ArmAsAnother:
                    long other = deadlines[(int)(op.Value % sources)];
                    deadline = other == long.MaxValue ? op.Value % 25 : other;
                    break;
                case QueueOpKind.ArmAfterLatest:
                    long latest = order.Count == 0 ? 0 : order.Max.Deadline;
                    deadline = latest > long.MaxValue - 1 - op.Value ? long.MaxValue - 1 : latest + op.Value;
                    break;
                case QueueOpKind.Cancel:
                    deadline = long.MaxValue;
                    break;
                default:
                    if (order.Count == 0)
                    {
                        // Nothing to pop: the queue must say so (checked below) and stay as it is.
                        Verify(queue, order, deadlines, $"step {step} {op} on an empty queue");
                        continue;
                    }

                    (long due, source) = order.Min;
                    long delta = op.Kind == QueueOpKind.PopAndRearmPeriodic ? period * (1 + (source % periodClasses)) : op.Value;
                    deadline = op.Kind == QueueOpKind.PopAndCancel ? long.MaxValue
                        : due > long.MaxValue - 1 - delta ? long.MaxValue - 1
                        : due + delta;
                    break;
            }

            queue.Set(source, deadline);
            if (deadlines[source] != long.MaxValue)
            {
                order.Remove((deadlines[source], source));
            }

            deadlines[source] = deadline;
            if (deadline != long.MaxValue)
            {
                order.Add((deadline, source));
            }

            Verify(queue, order, deadlines, $"step {step}: {op.Kind} Set({source}, {deadline}) with {sources} sources");
        }
    }

    private static void Verify(TimerQueue queue, SortedSet<(long Deadline, int Source)> order, long[] deadlines, string where)
    {
        (long Deadline, int Source) next = order.Count == 0 ? (long.MaxValue, -1) : order.Min;
        Assert.True(next.Deadline == queue.NextDeadline, $"{where}: NextDeadline {queue.NextDeadline}, expected {next.Deadline}");
        Assert.True(next.Source == queue.NextSource, $"{where}: NextSource {queue.NextSource}, expected {next.Source}");
        Assert.True(order.Count == queue.Count, $"{where}: Count {queue.Count}, expected {order.Count}");
        for (int s = 0; s < deadlines.Length; s++)
        {
            if (deadlines[s] != queue.DeadlineOf(s))
            {
                Assert.Fail($"{where}: DeadlineOf({s}) {queue.DeadlineOf(s)}, expected {deadlines[s]}");
            }
        }
    }
}
