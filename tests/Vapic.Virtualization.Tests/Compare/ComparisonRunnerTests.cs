using System.Text.Json;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.Compare;
using Xunit;

namespace Vapic.Virtualization.Tests.Compare;

/// <summary>The comparison runner: its failure check, its JSON, trace comparison.</summary>
public class ComparisonRunnerTests
{
    private static readonly CompareWorkloadOptions s_ipiStorm = new() { Workload = CompareWorkloadKind.IpiStorm, Rounds = 10 };

    /// <summary>A broken mode: it loses every third fixed interrupt.</summary>
    private sealed class LosingMode(CostModel cost) : VirtualizationMode(cost, ApicvInhibitMask.None)
    {
        private int _count;

        public override string Name => "losing";

        public override bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message) =>
            ++_count % 3 != 0 && base.DeliverFixed(target, vector, levelTriggered, in message);
    }

    /// <summary>A broken mode: the guest gets everything but its ledger does not count deliveries.</summary>
    private sealed class UncountingMode(CostModel cost) : VirtualizationMode(cost, ApicvInhibitMask.None)
    {
        public override string Name => "uncounting";

        public override void OnEventTaken(Vcpu vcpu, CpuEvent taken)
        {
        }
    }

    private static VirtualizationMode CreateWithBroken(string name, CostModel cost) => name switch
    {
        "losing" => new LosingMode(cost),
        "uncounting" => new UncountingMode(cost),
        _ => ModeRegistry.Create(name, cost),
    };

    [Fact]
    public void RunsEveryAvailableModeByDefault()
    {
        ComparisonResult result = ComparisonRunner.Run(s_ipiStorm);
        Assert.True(result.Passed);
        Assert.Equal(ModeRegistry.Available, result.Modes.Select(m => m.Mode));
        Assert.Equal("ipi-storm", result.Workload);
        Assert.Equal(8, result.VcpuCount);
        Assert.Same(CostModel.Default, result.CostModel);
    }

    [Fact]
    public void AModeThatLosesInterruptsFailsTheComparison()
    {
        ComparisonResult result = ComparisonRunner.Run(s_ipiStorm, modes: ["emulated", "losing"], createMode: CreateWithBroken);
        Assert.False(result.Passed);
        Assert.Equal(80, result.Modes[0].InterruptsDelivered);
        Assert.True(result.Modes[1].InterruptsDelivered < 80);
        Assert.Contains(result.Failures, f => f.StartsWith("interrupts delivered differ between modes: emulated 80, losing ", StringComparison.Ordinal));
        Assert.Contains(result.Failures, f => f.StartsWith("mode losing delivered ", StringComparison.Ordinal) && f.EndsWith("the workload sends 80", StringComparison.Ordinal));
        Assert.Contains(result.Failures, f => f.StartsWith("mode losing: ", StringComparison.Ordinal) && f.Contains("not taken", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Failures, f => f.StartsWith("mode emulated", StringComparison.Ordinal));
    }

    [Fact]
    public void ALedgerThatMiscountsDeliveriesIsAProblem()
    {
        ComparisonResult result = ComparisonRunner.Run(s_ipiStorm, modes: ["emulated", "uncounting"], createMode: CreateWithBroken);
        Assert.False(result.Passed);
        Assert.Contains("mode uncounting: the guest took 80 interrupts but the mode's ledger counted 0", result.Failures);
    }

    [Fact]
    public void SameComparisonGivesTheSameJson()
    {
        foreach (string workload in CompareWorkloads.Names)
        {
            Assert.True(CompareWorkloads.TryParse(workload, out CompareWorkloadKind kind));
            var options = new CompareWorkloadOptions { Workload = kind, Rounds = 5, HaltIdle = kind == CompareWorkloadKind.Mixed };
            string first = ComparisonJson.Serialize(ComparisonRunner.Run(options));
            string second = ComparisonJson.Serialize(ComparisonRunner.Run(options));
            Assert.Equal(first, second);
        }
    }

    [Fact]
    public void JsonHasTheDocumentedShape()
    {
        var cost = CostModel.Default.WithOverrides("ExitRoundTrip=1000", out _)!;
        ComparisonResult result = ComparisonRunner.Run(s_ipiStorm with { UseX2Apic = false }, cost);
        using JsonDocument json = JsonDocument.Parse(ComparisonJson.Serialize(result));
        JsonElement root = json.RootElement;
        Assert.Equal(
            ["workload", "vcpus", "apic", "haltIdle", "rounds", "durationNs", "expectedInterrupts", "modes"],
            root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("ipi-storm", root.GetProperty("workload").GetString());
        Assert.Equal(8, root.GetProperty("vcpus").GetInt32());
        Assert.Equal("xapic", root.GetProperty("apic").GetString());
        Assert.False(root.GetProperty("haltIdle").GetBoolean());
        Assert.Equal(10, root.GetProperty("rounds").GetInt32());
        Assert.Equal(100_000, root.GetProperty("durationNs").GetInt64());
        Assert.Equal(80, root.GetProperty("expectedInterrupts").GetInt64());

        JsonElement[] modes = [.. root.GetProperty("modes").EnumerateArray()];
        // An xAPIC guest: the x2APIC-only savic is skipped, every other mode is listed.
        Assert.Equal(ModeRegistry.Available.Where(m => m != "savic"), modes.Select(m => m.GetProperty("mode").GetString()));
        string[] reasonNames = Enum.GetNames<ExitReason>();
        foreach (JsonElement mode in modes)
        {
            Assert.Equal(
                ["mode", "exitsTotal", "exits", "events", "interruptsDelivered", "cycles", "cyclesPerInterrupt", "exitsPerInterrupt"],
                mode.EnumerateObject().Select(p => p.Name));
            long sum = 0;
            foreach (JsonProperty exit in mode.GetProperty("exits").EnumerateObject())
            {
                Assert.Contains(exit.Name, reasonNames);
                Assert.True(exit.Value.GetInt64() > 0);
                sum += exit.Value.GetInt64();
            }

            Assert.Equal(mode.GetProperty("exitsTotal").GetInt64(), sum);
            Assert.Equal(80, mode.GetProperty("interruptsDelivered").GetInt64());
            Assert.Equal(mode.GetProperty("cycles").GetInt64() / 80.0, mode.GetProperty("cyclesPerInterrupt").GetDouble());
        }

        // Emulated xAPIC ipi-storm: ICR high, ICR low and EOI MMIO exits (1000 + 800 each) and a kick (1000).
        JsonElement emulated = modes[0];
        Assert.Equal(240, emulated.GetProperty("exits").GetProperty("ApicMmio").GetInt64());
        Assert.Equal(80, emulated.GetProperty("exits").GetProperty("ExternalInterrupt").GetInt64());
        Assert.Equal(80, emulated.GetProperty("events").GetProperty("Injection").GetInt64());
        Assert.Equal(6400.0, emulated.GetProperty("cyclesPerInterrupt").GetDouble());
        Assert.Equal(4.0, emulated.GetProperty("exitsPerInterrupt").GetDouble());
    }

    [Fact]
    public void NothingDeliveredGivesNullPerInterruptFigures()
    {
        ComparisonResult result = ComparisonRunner.Compare("empty", 1, _ => new ModeMeasurement(LedgerCounts.Empty, []));
        Assert.True(result.Passed);
        ModeComparison mode = result.Modes[0];
        Assert.Null(mode.CyclesPerInterrupt);
        Assert.Null(mode.ExitsPerInterrupt);
        using JsonDocument json = JsonDocument.Parse(ComparisonJson.Serialize(result));
        Assert.Equal(["workload", "vcpus", "modes"], json.RootElement.EnumerateObject().Select(p => p.Name));
        JsonElement first = json.RootElement.GetProperty("modes")[0];
        Assert.Equal(JsonValueKind.Null, first.GetProperty("cyclesPerInterrupt").ValueKind);
        Assert.Empty(first.GetProperty("exits").EnumerateObject());
    }

    public static TheoryData<string> TraceFiles() => [.. TraceSuite.Files().Select(f => Path.GetRelativePath(TraceSuite.Root, f))];

    // Replaying a trace under every available mode: the guest takes the same events in each, so
    // the ledgers must count the same deliveries (the whole replay is measured).
    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void TraceReplaysDeliverTheSameInterruptsInEveryMode(string file)
    {
        TraceParseResult parsed = TraceParser.ParseFile(Path.Combine(TraceSuite.Root, file));
        Assert.True(parsed.Succeeded);
        TraceDocument document = parsed.Document;
        long taken = -1;
        ComparisonResult result = ComparisonRunner.Compare(file, document.Machine.VcpuCount, mode =>
        {
            ModeRun run = TraceReplayer.Run(document, mode);
            if (mode.InapplicableReason is not null)
            {
                return new ModeMeasurement(LedgerCounts.Capture(run.Ledger), []);
            }

            Assert.True(run.Passed, run.Failure?.ToString());
            long events = run.Stats.EventsAccepted;
            Assert.True(taken < 0 || taken == events);
            taken = events;
            return new ModeMeasurement(LedgerCounts.Capture(run.Ledger), []);
        });

        Assert.Empty(result.Failures);
        Assert.All(result.Modes, m => Assert.Equal(taken, m.InterruptsDelivered));
    }
}
