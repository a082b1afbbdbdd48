using BenchmarkDotNet.Attributes;
using Vapic.Machine;

namespace Vapic.Benchmarks;

/// <summary>
/// LAPIC timer expiries at scale: 4,096 vCPUs, each with a periodic 1 ms timer (a HZ=1000 guest
/// tick) armed at staggered instants, and virtual time advanced by 256 periods per operation, so
/// each operation processes exactly 1,048,576 expiries (figures are per expiry). The timers are
/// unmasked: every expiry goes through LVT Timer into IRR, and since no CPU takes the vector the
/// later ones merge into it, which keeps IRR from filling up while still doing the delivery.
/// The <c>Queue*</c> cases are informational: the same number of pops and re-arms on a bare
/// <see cref="TimerQueue"/> of the machine's size, to separate the queue's share of an expiry from the
/// LAPIC's and the machine's.
/// </summary>
[MemoryDiagnoser]
public class TimerExpiryBenchmarks
{
    /// <summary>The machine size: the largest the model supports.</summary>
    public const int VcpuCount = MachineOptions.MaxVcpus;

    /// <summary>The timer period: 1 ms, the tick of a HZ=1000 guest.</summary>
    public const long PeriodNs = 1_000_000;

    /// <summary>Periods of virtual time one operation advances.</summary>
    public const int PeriodsPerOperation = 256;

    /// <summary>Expiries per operation: every timer fires once per period.</summary>
    public const int ExpiriesPerOperation = VcpuCount * PeriodsPerOperation;

    /// <summary>LVT Timer: periodic mode (bits 18:17 = 01b), unmasked, vector 0xEC (Linux LOCAL_TIMER_VECTOR).</summary>
    private const uint LvtTimerPeriodic = (1u << 17) | 0xEC;

    /// <summary>DCR 1011b: divide by 1, so one tick is one bus cycle (1 ns).</summary>
    private const uint DivideByOne = 0xB;

    private VirtualMachine _machine = null!;
    private TimerQueue _queue = null!;
    private long[] _periods = null!;

    /// <summary>Arms the 4,096 periodic timers at staggered instants and checks the expiry count of one operation.</summary>
    [GlobalSetup(Target = nameof(Expiries))]
    public void Setup()
    {
        _machine = GuestSetup.CreateMachine(VcpuCount, x2Apic: true);
        GuestSetup.BootAllVcpus(_machine);
        const long stagger = PeriodNs / VcpuCount;
        for (int i = 0; i < VcpuCount; i++)
        {
            Vcpu vcpu = _machine.GetVcpu(i);
            GuestSetup.Require(vcpu.WriteMsr(GuestSetup.MsrLvtTimer, LvtTimerPeriodic), "LVT Timer write");
            GuestSetup.Require(vcpu.WriteMsr(GuestSetup.MsrDivideConfiguration, DivideByOne), "DCR write");
            GuestSetup.Require(vcpu.WriteMsr(GuestSetup.MsrInitialCount, (ulong)PeriodNs), "TMICT write");
            _machine.Advance(stagger);
        }

        long before = _machine.Counters.TimerExpiries;
        Expiries();
        long fired = _machine.Counters.TimerExpiries - before;
        if (fired != ExpiriesPerOperation)
        {
            throw new InvalidOperationException($"{fired} timer expiries per operation, expected {ExpiriesPerOperation}");
        }
    }

    /// <summary>Advances virtual time by 256 periods.</summary>
    [Benchmark(OperationsPerInvoke = ExpiriesPerOperation)]
    public void Expiries() => _machine.Advance(PeriodNs * PeriodsPerOperation);

    /// <summary>The queue alone, as <see cref="Expiries"/> uses it: every source re-armed one equal period later.</summary>
    [GlobalSetup(Target = nameof(QueuePopRearm))]
    public void SetupQueueEqualPeriods() => SetupQueue(_ => PeriodNs);

    /// <summary>
    /// The queue alone with two periods (even vCPUs 1 ms, odd ones 4 ms, as with two guests of
    /// HZ=1000 and HZ=250): the re-arms no longer all land after every other deadline.
    /// </summary>
    [GlobalSetup(Target = nameof(QueuePopRearmMixedPeriods))]
    public void SetupQueueMixedPeriods() => SetupQueue(source => source % 2 == 0 ? PeriodNs : 4 * PeriodNs);

    /// <summary>Pops the earliest timer and re-arms it one period later, 1,048,576 times.</summary>
    [Benchmark(OperationsPerInvoke = ExpiriesPerOperation)]
    public void QueuePopRearm() => PopAndRearm();

    /// <summary>The same with the two periods.</summary>
    [Benchmark(OperationsPerInvoke = ExpiriesPerOperation)]
    public void QueuePopRearmMixedPeriods() => PopAndRearm();

    private void SetupQueue(Func<int, long> periodOf)
    {
        // One source per vCPU plus the IOAPIC's, which stays idle as in the machine benchmark.
        _queue = new TimerQueue(VcpuCount + 1);
        _periods = new long[VcpuCount];
        const long stagger = PeriodNs / VcpuCount;
        for (int i = 0; i < VcpuCount; i++)
        {
            _periods[i] = periodOf(i);
            _queue.Set(i, (i * stagger) + _periods[i]);
        }
    }

    private void PopAndRearm()
    {
        TimerQueue queue = _queue;
        long[] periods = _periods;
        for (int i = 0; i < ExpiriesPerOperation; i++)
        {
            int source = queue.NextSource;
            queue.Set(source, queue.NextDeadline + periods[source]);
        }
    }
}
