using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Xunit;

namespace Vapic.Virtualization.Tests.Compare;

/// <summary>The built-in workloads: schedules, exact emulated counts, agreement across every available mode.</summary>
public class CompareWorkloadTests
{
    private const int Vcpus = 8;
    private const int Rounds = 7;

    public static TheoryData<string, bool, bool> AllVariants()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (string workload in CompareWorkloads.Names)
        {
            foreach (bool x2Apic in new[] { true, false })
            {
                foreach (bool haltIdle in new[] { false, true })
                {
                    data.Add(workload, x2Apic, haltIdle);
                }
            }
        }

        return data;
    }

    private static CompareWorkloadOptions Options(string workload, bool x2Apic = true, bool haltIdle = false, int rounds = Rounds, int vcpus = Vcpus)
    {
        Assert.True(CompareWorkloads.TryParse(workload, out CompareWorkloadKind kind));
        return new CompareWorkloadOptions { Workload = kind, VcpuCount = vcpus, UseX2Apic = x2Apic, HaltIdle = haltIdle, Rounds = rounds };
    }

    [Theory]
    [MemberData(nameof(AllVariants))]
    public void EveryAvailableModeDeliversExactlyWhatTheScheduleSends(string workload, bool x2Apic, bool haltIdle)
    {
        CompareWorkloadOptions options = Options(workload, x2Apic, haltIdle);
        ComparisonResult result = ComparisonRunner.Run(options);

        Assert.Empty(result.Failures);
        Assert.Equal(
            ModeRegistry.Available.Where(m => !result.Skipped.Any(s => s.StartsWith(m + ":", StringComparison.Ordinal))),
            result.Modes.Select(m => m.Mode));
        Assert.True(x2Apic || result.Skipped.All(s => s.StartsWith("savic:", StringComparison.Ordinal)));
        long expected = CompareWorkload.ExpectedInterrupts(options);
        Assert.Equal(expected, result.ExpectedInterrupts);
        foreach (ModeComparison mode in result.Modes)
        {
            Assert.Equal(expected, mode.InterruptsDelivered);
        }
    }

    [Theory]
    [InlineData("ipi-storm", 8, 8L)]
    [InlineData("broadcast", 8, 56L)]
    [InlineData("timer", 8, 8L)]
    [InlineData("device", 8, 8L)]
    [InlineData("mixed", 8, 32L)]
    [InlineData("ipi-storm", 2, 2L)]
    [InlineData("broadcast", 3, 6L)]
    [InlineData("mixed", 2, 8L)]
    [InlineData("idle", 8, 0L)]
    public void InterruptsPerRoundFollowTheSchedule(string workload, int vcpus, long perRound)
    {
        Assert.True(CompareWorkloads.TryParse(workload, out CompareWorkloadKind kind));
        Assert.Equal(perRound, CompareWorkload.InterruptsPerRound(kind, vcpus));
        Assert.Equal(perRound * 5, CompareWorkload.ExpectedInterrupts(Options(workload, rounds: 5, vcpus: vcpus)));
    }

    [Fact]
    public void IpiTargetsAreOthersAndEveryVcpuReceivesOnePerRound()
    {
        for (int round = 1; round <= 2 * (Vcpus - 1); round++)
        {
            var received = new int[Vcpus];
            for (int sender = 0; sender < Vcpus; sender++)
            {
                int target = CompareWorkload.IpiTarget(sender, round, Vcpus);
                Assert.NotEqual(sender, target);
                received[target]++;
            }

            Assert.All(received, n => Assert.Equal(1, n));
        }

        // Over n-1 rounds every sender reaches every other vCPU once.
        for (int sender = 0; sender < Vcpus; sender++)
        {
            var targets = Enumerable.Range(1, Vcpus - 1).Select(r => CompareWorkload.IpiTarget(sender, r, Vcpus)).ToHashSet();
            Assert.Equal(Vcpus - 1, targets.Count);
        }
    }

    // Emulation (virtualization-reference §1.3 column EMU): every LAPIC access exits (x2APIC: one
    // WRMSR exit; xAPIC: one MMIO exit per 32-bit access, so a unicast ICR send is two: ICR high and
    // ICR low), and an interrupt for another vCPU kicks it if it runs (external-interrupt exit) or
    // wakes it if it halted. Per round with n vCPUs:
    //   ipi-storm: ICR n (xAPIC 2n) + EOI n; n notifications
    //   broadcast: ICR n (ICR low only) + EOI n(n-1); n(n-1) notifications
    //   timer, device: EOI n; n notifications
    //   mixed: timer + ipi-storm + one broadcast + device + level (1 EOI, 1 notification)
    [Theory]
    [MemberData(nameof(AllVariants))]
    public void EmulatedExitsAreExactlyThoseOfTheSchedule(string workload, bool x2Apic, bool haltIdle)
    {
        const long n = Vcpus;
        (long accesses, long notifications) = workload switch
        {
            "ipi-storm" => ((x2Apic ? 2 : 3) * n, n),
            "broadcast" => (n + (n * (n - 1)), n * (n - 1)),
            "timer" or "device" => (n, n),
            "mixed" => (n + ((x2Apic ? 2 : 3) * n) + 1 + (n - 1) + n + 1, n + n + (n - 1) + n + 1),
            "idle" => (0, 0),
            _ => throw new ArgumentException(workload),
        };

        ComparisonResult result = ComparisonRunner.Run(Options(workload, x2Apic, haltIdle), modes: ["emulated"]);
        Assert.Empty(result.Failures);
        LedgerCounts c = Assert.Single(result.Modes).Counts;
        long delivered = n * Rounds * (workload switch { "broadcast" => n - 1, "mixed" => 4, "idle" => 0, _ => 1 });

        Assert.Equal(x2Apic ? accesses * Rounds : 0, c.ExitsOf(ExitReason.MsrWrite));
        Assert.Equal(x2Apic ? 0 : accesses * Rounds, c.ExitsOf(ExitReason.ApicMmio));
        Assert.Equal(haltIdle ? 0 : notifications * Rounds, c.ExitsOf(ExitReason.ExternalInterrupt));
        Assert.Equal(haltIdle ? notifications * Rounds : 0, c.EventsOf(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(0, c.ExitsOf(ExitReason.InterruptWindow));
        Assert.Equal((accesses + (haltIdle ? 0 : notifications)) * Rounds, c.TotalExits);
        Assert.Equal(delivered, c.InterruptsDelivered);
        Assert.Equal(delivered, c.EventsOf(CostEvent.Injection));
    }

    [Fact]
    public void EmulatedIpiStormCostsAreTheCostModelsSums()
    {
        // x2APIC, running targets: per interrupt an ICR WRMSR exit, a kick and an EOI WRMSR exit,
        // each ExitRoundTrip; injection costs Injection.
        var cost = CostModel.Default with { ExitRoundTrip = 1000, Injection = 7 };
        ComparisonResult result = ComparisonRunner.Run(Options("ipi-storm"), cost, ["emulated"]);
        ModeComparison emulated = Assert.Single(result.Modes);
        Assert.Equal(Vcpus * Rounds * 3007L, emulated.Cycles);
        Assert.Equal(3007.0, emulated.CyclesPerInterrupt);
        Assert.Equal(3.0, emulated.ExitsPerInterrupt);
    }

    [Fact]
    public void MeasuredCountsLeaveOutBootAndSetup()
    {
        var mode = new EmulatedMode();
        CompareWorkloadRun run = new CompareWorkload(Options("timer", rounds: 3)).Run(mode);
        Assert.Empty(run.Problems);

        // Boot took 7 INITs and 7 SIPIs, which the whole ledger counts and the measured phase does not.
        Assert.Equal(Vcpus * 3L, run.Counts.InterruptsDelivered);
        Assert.Equal(run.InterruptsTaken, run.Counts.InterruptsDelivered);
        Assert.Equal(run.Counts.InterruptsDelivered + (2 * (Vcpus - 1)), mode.Ledger.InterruptsDelivered);
        Assert.Equal(Vcpus - 1, run.Machine.Counters.InitsTaken);
        Assert.Equal(Vcpus - 1, run.Machine.Counters.StartupsTaken);
        Assert.True(mode.Ledger.TotalExits > run.Counts.TotalExits);
        Assert.Equal(3 * CompareWorkloadOptions.RoundPeriodNs, run.Machine.Now);
    }

    [Fact]
    public void CyclesOfTheMeasuredPhaseAreTheDifferenceOfTheLedgersCycles()
    {
        var mode = new EmulatedMode();
        var workload = new CompareWorkload(Options("mixed", x2Apic: false, rounds: 4));
        CompareWorkloadRun run = workload.Run(mode);
        LedgerCounts whole = LedgerCounts.Capture(mode.Ledger);
        Assert.Equal(mode.Ledger.TotalCycles(CostModel.Default), whole.Cycles(CostModel.Default));
        Assert.Equal(mode.Ledger.TotalExits, whole.TotalExits);
        LedgerCounts boot = whole.Since(run.Counts);
        Assert.Equal(whole.Cycles(CostModel.Default) - run.Counts.Cycles(CostModel.Default), boot.Cycles(CostModel.Default));
    }

    [Fact]
    public void MixedSendsTheLevelLineAndItsEoiReachesTheIoApic()
    {
        CompareWorkloadRun run = new CompareWorkload(Options("mixed", rounds: 5)).Run(new EmulatedMode());
        Assert.Empty(run.Problems);
        Assert.Equal(5, run.Machine.Counters.EoiBroadcasts);
        Assert.Equal(5, run.Machine.Counters.IoApicMessagesRouted);
        Assert.Equal(5L * Vcpus, run.Machine.Counters.TimerExpiries);
        Assert.Equal(5L * Vcpus, run.Machine.Counters.MsisRouted);
        Assert.False(run.Machine.IoApic.GetLine(CompareWorkload.LevelGsi));
    }

    [Fact]
    public void HaltIdleLeavesEveryVcpuHaltedAndWakesEveryTarget()
    {
        CompareWorkloadRun run = new CompareWorkload(Options("device", haltIdle: true, rounds: 2)).Run(new EmulatedMode());
        Assert.Empty(run.Problems);
        foreach (Vcpu vcpu in run.Machine.Vcpus)
        {
            Assert.Equal(VcpuHostState.Halted, vcpu.HostState);
        }

        Assert.Equal(2L * Vcpus, run.Counts.EventsOf(CostEvent.WakeupBlockedVcpu));
    }

    [Fact]
    public void DurationGivesOneRoundPerPeriod()
    {
        var options = new CompareWorkloadOptions { DurationNs = 25_000 };
        Assert.Equal(2, options.RoundCount);
        Assert.Equal(25_000, options.EffectiveDurationNs);
        Assert.Equal(100, new CompareWorkloadOptions().RoundCount);
        Assert.Equal(30_000, (options with { Rounds = 3 }).EffectiveDurationNs);

        CompareWorkloadRun run = new CompareWorkload(options with { Workload = CompareWorkloadKind.Timer }).Run(new EmulatedMode());
        Assert.Equal(25_000, run.Machine.Now);
        Assert.Equal(2L * Vcpus, run.InterruptsTaken);
    }

    [Theory]
    [InlineData(1, null, 1_000_000L)]
    [InlineData(256, null, 1_000_000L)]
    [InlineData(8, null, 9_999L)]
    [InlineData(8, null, 1_000_000_001L)]
    [InlineData(8, 0, 1_000_000L)]
    [InlineData(8, 100_001, 1_000_000L)]
    public void InvalidOptionsAreRefused(int vcpus, int? rounds, long duration)
    {
        var options = new CompareWorkloadOptions { VcpuCount = vcpus, Rounds = rounds, DurationNs = duration };
        Assert.NotNull(options.Validate());
        Assert.Throws<ArgumentException>(() => new CompareWorkload(options));
        Assert.Throws<ArgumentException>(() => ComparisonRunner.Run(options));
    }

    [Fact]
    public void WorkloadNamesRoundTrip()
    {
        Assert.Equal(["ipi-storm", "broadcast", "timer", "device", "mixed", "idle"], CompareWorkloads.Names);
        foreach (CompareWorkloadKind kind in Enum.GetValues<CompareWorkloadKind>())
        {
            Assert.True(CompareWorkloads.TryParse(CompareWorkloads.NameOf(kind), out CompareWorkloadKind parsed));
            Assert.Equal(kind, parsed);
        }

        Assert.False(CompareWorkloads.TryParse("IPI-STORM", out _));
        Assert.False(CompareWorkloads.TryParse("storm", out _));
    }

    [Fact]
    public void AWorkloadRunsOnce()
    {
        var workload = new CompareWorkload(Options("timer", rounds: 1));
        workload.Run(new EmulatedMode());
        Assert.Throws<InvalidOperationException>(() => workload.Run(new EmulatedMode()));
    }
}

public class CompareWorkloadMachineTests
{
    [Fact]
    public void WorkloadRunsOnTheGivenMachineWithItsApicIds()
    {
        var machine = new Vapic.Machine.MachineOptions { VcpuCount = 4, ApicIds = [0, 1, 0x100, 0x7FF0], ForceX2Apic = true };
        var options = new CompareWorkloadOptions { Workload = CompareWorkloadKind.Mixed, VcpuCount = 4, Rounds = 5, Machine = machine };
        Assert.Null(options.Validate());
        CompareWorkloadRun run = new CompareWorkload(options).Run(new EmulatedMode());
        Assert.Empty(run.Problems);
        Assert.Equal(CompareWorkload.ExpectedInterrupts(options), run.InterruptsTaken);
        Assert.Equal(0x100u, run.Machine.GetVcpu(2).Apic.Id);
        Assert.Equal(0x7FF0u, run.Machine.GetVcpu(3).Apic.Id);
    }

    [Fact]
    public void MachineThatDoesNotFitTheWorkloadIsRejected()
    {
        var machine = new Vapic.Machine.MachineOptions { VcpuCount = 4, ApicIds = [0, 1, 2, 0x300] };
        Assert.NotNull(new CompareWorkloadOptions { VcpuCount = 8, Machine = machine }.Validate());
        Assert.NotNull(new CompareWorkloadOptions { VcpuCount = 4, UseX2Apic = false, Machine = machine }.Validate());
    }
}
