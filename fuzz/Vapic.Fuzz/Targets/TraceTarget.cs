using System.Collections.Immutable;
using System.Text;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>trace</c>: arbitrary text through <see cref="TraceParser.Parse"/>; what parses is formatted
/// back and re-parsed (it must read the same), then replayed with <see cref="TraceReplayer.Run(TraceDocument, string, TraceReplayer.ObservationSink?)"/>
/// under <c>emulated</c>, bounded so that a valid but huge trace cannot hang the fuzzer.
/// </summary>
public sealed class TraceTarget : FuzzTarget
{
    /// <summary>Commands replayed at most; the rest of a longer trace is dropped.</summary>
    public const int MaxCommands = 4096;

    /// <summary>Traces for bigger machines are parsed and formatted but not replayed.</summary>
    public const int MaxReplayVcpus = 64;

    /// <summary>
    /// The virtual time all <c>time</c> commands of one replay may advance, in nanoseconds × vCPUs:
    /// a periodic timer with a 1 ns period fires once per nanosecond on each vCPU, so this bounds the
    /// number of expiries a replay can take. 1 vCPU gets 2 ms (the longest seed advances 1 ms).
    /// </summary>
    public const long VirtualTimeBudget = 2_000_000;

    /// <summary>The seeds copied from <c>tests/traces/</c>: one or two per area of the architecture.</summary>
    public static IReadOnlyList<string> SeedTraces { get; } =
    [
        "004-xapic-reset-registers.trace",
        "013-xapic-reserved-writes.trace",
        "104-x2apic-self-ipi.trace",
        "110-x2apic-icr.trace",
        "204-apicbase-transition-table.trace",
        "207-apicbase-relocate.trace",
        "313-init-sipi-broadcast-boot.trace",
        "402-accept-highest-first.trace",
        "551-lint0-level-fixed.trace",
        "602-esr-lvt-error.trace",
        "659-timer-periodic.trace",
        "664-timer-dcr-change-periodic.trace",
        "669-tsc-deadline-future.trace",
        "754-ipi-logical-cluster.trace",
        "757-ipi-lowest-priority-flat.trace",
        "856-ioapic-level-eoi.trace",
        "859-ioapic-eoi-register-redeliver.trace",
        "904-msi-extended-destination.trace",
        "952-machine-sparse-ids.trace",
        "nested/010-nested-tpr-threshold-and-eoi-exit.trace",
        "x2apic-lock/011-tsc-offset-deadline.trace",
    ];

    /// <inheritdoc/>
    public override string Name => "trace";

    /// <inheritdoc/>
    public override string Description => "TraceParser.Parse of arbitrary text; format/re-parse round trip; bounded TraceReplayer.Run under emulated";

    /// <inheritdoc/>
    public override bool IsText => true;

    /// <inheritdoc/>
    public override IReadOnlyList<string> Dictionary { get; } =
    [
        "machine", "vcpus=", "ids=", "force-x2apic", "ioapic-version=", "tsc-offset=", "vendor=", "intel", "amd",
        "read", "write", "rdmsr", "wrmsr", "rdcr8", "wrcr8", "accept", "state", "lint", "vmlaunch", "l2",
        "ioapic", "irq", "msi", "time", "hv", "inject", "nmi", "nested", "high", "low", "pulse",
        "none", "smi", "init", "extint", "sipi", "running", "wait-for-sipi", "unmapped", "!gp", "= ", "+",
        "quirk", "l1-map", "ept", "l1-write", "l1-read", "vmcs12", "post", "inhibit", "ram", "mmio", "l1-apic", "hole",
        "controls", "apic-access", "virtual-apic", "pi-desc", "pi-vector", "tpr-threshold", "eoi-exit", "rvi", "svi",
        "l2-passthrough-access", "0xfee00000", "0xfee000b0", "0xfee000f0", "0xfee00300", "0xfee00320", "0xfee00380",
        "0xfec00000", "0x1b", "0x6e0", "0x80b", "0x80f", "0x830", "0x838",
    ];

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        TraceParseResult parsed = TraceParser.Parse("fuzz.trace", text);
        if (!parsed.Succeeded)
        {
            if (parsed.Errors.IsDefaultOrEmpty)
            {
                throw new FuzzInvariantException("the parser refused the trace without an error");
            }

            return;
        }

        TraceDocument document = parsed.Document;
        CheckFormatRoundTrip(document);
        if (document.Machine.VcpuCount > MaxReplayVcpus)
        {
            return;
        }

        TraceDocument bounded = Bound(document);
        ModeRun run = TraceReplayer.Run(bounded, ReplayMode.Emulated);
        if (run.Observations.Length > bounded.Commands.Length)
        {
            throw new FuzzInvariantException($"{run.Observations.Length} observations for {bounded.Commands.Length} commands");
        }
    }

    /// <summary>
    /// <paramref name="document"/> cut to <see cref="MaxCommands"/> commands, with its <c>time</c>
    /// commands clamped so that together they advance at most <see cref="VirtualTimeBudget"/> / vCPUs ns.
    /// Returns the document itself when it is within both bounds.
    /// </summary>
    public static TraceDocument Bound(TraceDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        ImmutableArray<TraceCommand> commands = document.Commands;
        int count = Math.Min(commands.Length, MaxCommands);
        ulong remaining = (ulong)(VirtualTimeBudget / Math.Max(1, document.Machine.VcpuCount));
        bool changed = count != commands.Length;
        var bounded = ImmutableArray.CreateBuilder<TraceCommand>(count);
        for (int i = 0; i < count; i++)
        {
            TraceCommand command = commands[i];
            if (command.Kind == TraceCommandKind.Time)
            {
                ulong advance = Math.Min(command.A, remaining);
                remaining -= advance;
                if (advance != command.A)
                {
                    command = new TraceCommand(command.Kind, command.Cpu, advance, command.B, command.Expectation);
                    changed = true;
                }
            }

            bounded.Add(command);
        }

        return changed ? document with { Commands = bounded.MoveToImmutable() } : document;
    }

    private static void CheckFormatRoundTrip(TraceDocument document)
    {
        string canonical = TraceFormatter.Format(document);
        TraceParseResult again = TraceParser.Parse("canonical.trace", canonical);
        if (!again.Succeeded)
        {
            throw new FuzzInvariantException($"the formatted trace does not parse: {again.Errors[0]}\n{Head(canonical)}");
        }

        TraceDocument reparsed = again.Document;
        MachineDirective a = document.Machine;
        MachineDirective b = reparsed.Machine;
        if (a.VcpuCount != b.VcpuCount || a.ForceX2Apic != b.ForceX2Apic || a.IoApicVersion != b.IoApicVersion
            || a.TscOffset != b.TscOffset || a.Vendor != b.Vendor || !a.ApicIds.AsSpan().SequenceEqual(b.ApicIds.AsSpan()))
        {
            throw new FuzzInvariantException($"the machine line does not survive formatting: '{a}' re-parses as '{b}'");
        }

        if (document.Commands.Length != reparsed.Commands.Length)
        {
            throw new FuzzInvariantException($"{document.Commands.Length} commands format into {reparsed.Commands.Length}\n{Head(canonical)}");
        }

        for (int i = 0; i < document.Commands.Length; i++)
        {
            if (!document.Commands[i].IsSameOperation(reparsed.Commands[i]))
            {
                throw new FuzzInvariantException(
                    $"command {i} does not survive formatting: '{document.Commands[i].SourceLine}' formats as '{reparsed.Commands[i].SourceLine}'");
            }
        }
    }

    private static string Head(string text) => text.Length <= 400 ? text : text[..400] + "...";

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot)
    {
        var seeds = new List<FuzzSeed>(SeedTraces.Count);
        foreach (string trace in SeedTraces)
        {
            string path = Path.Combine(repositoryRoot, "tests", "traces", trace);
            seeds.Add(new FuzzSeed(trace.Replace('/', '-'), File.ReadAllBytes(path)));
        }

        return seeds;
    }
}
