using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization;
using Vapic.Virtualization.Compare;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic compare WORKLOAD|TRACE [--vcpus N] [--xapic] [--halt-idle] [--duration NS | --rounds N]
/// [--cost NAME=CYCLES,...] [--json]</c>: runs a built-in workload, or replays a trace, once under
/// every available virtualization mode and shows the exits by reason, the delivered interrupts and
/// the estimated cycles per interrupt of each. Exits 0 when the modes agree, 1 when a mode lost or
/// invented an interrupt (or a trace failed), 2 on bad input.
/// </summary>
public static class CompareCommand
{
    private const int ConsoleWidth = 100;

    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var target = new Argument<string>("workload")
        {
            Description = $"A workload ({string.Join(", ", CompareWorkloads.Names)}) or a trace file to replay under every mode.",
            HelpName = "WORKLOAD|TRACE",
        };
        var vcpus = new Option<int>("--vcpus")
        {
            Description = $"Number of vCPUs ({CompareWorkloadOptions.MinVcpus} to {CompareWorkloadOptions.MaxVcpus}, workloads only).",
            HelpName = "N",
            DefaultValueFactory = _ => CompareWorkloadOptions.DefaultVcpus,
            CustomParser = ParseVcpus,
        };
        var xapic = new Option<bool>("--xapic") { Description = "Run an xAPIC guest (MMIO) instead of x2APIC (MSRs) (workloads only)." };
        var haltIdle = new Option<bool>("--halt-idle") { Description = "Idle vCPUs halt, so every interrupt takes the wake-up path (workloads only)." };
        var duration = new Option<long>("--duration")
        {
            Description = $"Virtual time to run, in nanoseconds: one round every {CompareWorkloadOptions.RoundPeriodNs} ns ({CompareWorkloadOptions.RoundPeriodNs} to {CompareWorkloadOptions.MaxDurationNs}; workloads only).",
            HelpName = "NS",
            DefaultValueFactory = _ => CompareWorkloadOptions.DefaultDurationNs,
            CustomParser = ParseDuration,
        };
        var rounds = new Option<int>("--rounds")
        {
            Description = $"Run a fixed number of rounds instead of --duration (1 to {CompareWorkloadOptions.MaxRounds}; workloads only).",
            HelpName = "N",
            CustomParser = ParseRounds,
        };
        var cost = new Option<CostModel>("--cost")
        {
            Description = "Override cost figures, e.g. ExitRoundTrip=1500,PostedNotify=400 (figures: " + string.Join(", ", CostModel.FigureNames) + ").",
            HelpName = "NAME=CYCLES,...",
            CustomParser = ParseCost,
        };
        var json = new Option<bool>("--json") { Description = "Print the comparison as one JSON object instead of a table and chart." };
        var command = new Command("compare", "Run a workload or a trace under every virtualization mode and compare exits and estimated cycles per interrupt.")
        {
            target,
            vcpus,
            xapic,
            haltIdle,
            duration,
            rounds,
            cost,
            json,
        };
        command.SetAction(parseResult =>
        {
            TextWriter output = parseResult.InvocationConfiguration.Output;
            TextWriter error = parseResult.InvocationConfiguration.Error;
            string workload = parseResult.GetValue(target) ?? "";
            CostModel costModel = parseResult.GetValue(cost) ?? CostModel.Default;
            bool asJson = parseResult.GetValue(json);
            if (CompareWorkloads.TryParse(workload, out CompareWorkloadKind kind))
            {
                if (parseResult.GetResult(duration) is { Implicit: false } && parseResult.GetResult(rounds) is not null)
                {
                    return CliErrors.Usage(error, "vapic compare", "give --duration or --rounds, not both");
                }

                var options = new CompareWorkloadOptions
                {
                    Workload = kind,
                    VcpuCount = parseResult.GetValue(vcpus),
                    UseX2Apic = !parseResult.GetValue(xapic),
                    HaltIdle = parseResult.GetValue(haltIdle),
                    DurationNs = parseResult.GetValue(duration),
                    Rounds = parseResult.GetResult(rounds) is null ? null : parseResult.GetValue(rounds),
                };
                return Report(ComparisonRunner.Run(options, costModel), asJson, output, error);
            }

            foreach (Option workloadOnly in new Option[] { vcpus, xapic, haltIdle, duration, rounds })
            {
                if (parseResult.GetResult(workloadOnly) is { Implicit: false })
                {
                    return CliErrors.Usage(error, "vapic compare", $"{workloadOnly.Name} applies to the built-in workloads, not to a trace ('{workload}')");
                }
            }

            if (!File.Exists(workload))
            {
                return CliErrors.Usage(error, "vapic compare", $"'{workload}' is neither a workload ({string.Join(", ", CompareWorkloads.Names)}) nor a trace file");
            }

            TraceParseResult parsed = TraceParser.ParseFile(workload);
            if (!parsed.Succeeded)
            {
                TraceParseError first = parsed.Errors[0];
                error.WriteLine($"{first.Location}: error: {first.Message}");
                return CliExitCode.Usage;
            }

            return Report(CompareTrace(parsed.Document, workload, costModel), asJson, output, error);
        });
        return command;
    }

    /// <summary>
    /// Replays <paramref name="document"/> under every available mode and compares the ledgers of
    /// whole replays (a trace has no boot phase to leave out). A failed expectation, or a command
    /// whose observation differs from the first mode's, is a problem of that mode.
    /// </summary>
    public static ComparisonResult CompareTrace(TraceDocument document, string name, CostModel costModel)
    {
        ArgumentNullException.ThrowIfNull(document);
        Observation[]? reference = null;
        string? referenceMode = null;
        return ComparisonRunner.Compare(name, document.Machine.VcpuCount, mode =>
        {
            ModeRun run = TraceReplayer.Run(document, mode);
            var problems = new List<string>();
            if (run.Failure is not null)
            {
                problems.Add(run.Failure.ToString());
            }

            if (reference is null)
            {
                reference = run.Observations;
                referenceMode = run.Mode;
            }
            else
            {
                int n = Math.Min(reference.Length, run.Observations.Length);
                for (int i = 0; i < n; i++)
                {
                    if (reference[i] != run.Observations[i])
                    {
                        TraceCommand c = document.Commands[i];
                        problems.Add($"{c.Location}: '{TraceFormatter.Format(c)}' differs: {referenceMode} saw {reference[i]}, {run.Mode} saw {run.Observations[i]}");
                        break;
                    }
                }
            }

            return new ModeMeasurement(LedgerCounts.Capture(run.Ledger), problems);
        }, costModel);
    }

    private static int Report(ComparisonResult result, bool asJson, TextWriter output, TextWriter error)
    {
        foreach (string skip in result.Skipped)
        {
            error.WriteLine($"note: skipped {skip}");
        }

        if (asJson)
        {
            output.Write(ComparisonJson.Serialize(result));
            output.Write('\n');
        }
        else
        {
            Render(result, output);
            var missing = ModeRegistry.Known.Where(m => !ModeRegistry.IsAvailable(m)).ToArray();
            if (missing.Length > 0)
            {
                error.WriteLine($"note: compared {string.Join(", ", result.Modes.Select(m => m.Mode))}; {string.Join(", ", missing)} are not implemented in this build");
            }
        }

        foreach (string failure in result.Failures)
        {
            error.WriteLine($"vapic compare: {failure}");
        }

        return result.Passed ? CliExitCode.Success : CliExitCode.Failure;
    }

    private static void Render(ComparisonResult result, TextWriter output)
    {
        if (result.Options is CompareWorkloadOptions o)
        {
            output.WriteLine(
                $"vapic compare: {result.Workload}, {Number(result.VcpuCount)} vCPUs, {(o.UseX2Apic ? "x2APIC" : "xAPIC")} guest, " +
                $"{(o.HaltIdle ? "idle vCPUs halted" : "targets running")}, {Number(o.RoundCount)} rounds ({Number(o.EffectiveDurationNs)} ns); boot and setup excluded");
        }
        else
        {
            output.WriteLine($"vapic compare: trace {result.Workload}, {Number(result.VcpuCount)} vCPUs; whole replay");
        }

        Write(output, BuildTable(result));
        Write(output, BuildChart(result));
    }

    private static Table BuildTable(ComparisonResult result)
    {
        var table = new Table { Border = TableBorder.Simple };
        table.AddColumn(new TableColumn(new Text("")) { NoWrap = true });
        foreach (ModeComparison mode in result.Modes)
        {
            table.AddColumn(new TableColumn(new Text(mode.Mode)) { Alignment = Justify.Right, NoWrap = true });
        }

        foreach (ExitReason reason in ExitLedger.Reasons)
        {
            if (result.Modes.Any(m => m.Counts.ExitsOf(reason) != 0))
            {
                AddRow(table, "exit: " + reason, result.Modes, m => Number(m.Counts.ExitsOf(reason)));
            }
        }

        AddRow(table, "total exits", result.Modes, m => Number(m.ExitsTotal));
        foreach (CostEvent costEvent in ExitLedger.Events)
        {
            if (result.Modes.Any(m => m.Counts.EventsOf(costEvent) != 0))
            {
                AddRow(table, "event: " + costEvent, result.Modes, m => Number(m.Counts.EventsOf(costEvent)));
            }
        }

        AddRow(table, "interrupts delivered", result.Modes, m => Number(m.InterruptsDelivered));
        AddRow(table, "estimated cycles", result.Modes, m => Number(m.Cycles));
        AddRow(table, "exits per interrupt", result.Modes, m => Ratio(m.ExitsPerInterrupt, "F2"));
        AddRow(table, "cycles per interrupt", result.Modes, m => Ratio(m.CyclesPerInterrupt, "F1"));
        return table;
    }

    private static BarChart BuildChart(ComparisonResult result)
    {
        var chart = new BarChart()
            .Width(ConsoleWidth - 20)
            .Label("estimated cycles per delivered interrupt")
            .UseValueFormatter((value, _) => value.ToString("F1", s_invariant));
        foreach (ModeComparison mode in result.Modes)
        {
            chart.AddItem(mode.Mode, mode.CyclesPerInterrupt ?? 0, Color.Default);
        }

        return chart;
    }

    private static void AddRow(Table table, string name, IReadOnlyList<ModeComparison> modes, Func<ModeComparison, string> cell)
    {
        var cells = new IRenderable[modes.Count + 1];
        cells[0] = new Text(name);
        for (int i = 0; i < modes.Count; i++)
        {
            cells[i + 1] = new Text(cell(modes[i]));
        }

        table.AddRow(cells);
    }

    // Renders at a fixed width without colour, so the text is the same on a terminal and in a
    // pipe, and drops the padding Spectre adds at the ends of lines.
    private static void Write(TextWriter output, IRenderable renderable)
    {
        var buffer = new StringWriter(s_invariant);
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(buffer),
        });
        console.Profile.Width = ConsoleWidth;
        console.Write(renderable);
        foreach (string line in buffer.ToString().TrimEnd().Split('\n'))
        {
            output.WriteLine(line.TrimEnd());
        }

        output.WriteLine();
    }

    private static int ParseVcpus(ArgumentResult result)
    {
        string text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        if (int.TryParse(text, NumberStyles.None, s_invariant, out int value) &&
            value >= CompareWorkloadOptions.MinVcpus && value <= CompareWorkloadOptions.MaxVcpus)
        {
            return value;
        }

        result.AddError($"--vcpus must be a whole number from {CompareWorkloadOptions.MinVcpus} to {CompareWorkloadOptions.MaxVcpus}, not '{text}'");
        return 0;
    }

    private static long ParseDuration(ArgumentResult result)
    {
        string text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        if (long.TryParse(text, NumberStyles.None, s_invariant, out long value) &&
            value >= CompareWorkloadOptions.RoundPeriodNs && value <= CompareWorkloadOptions.MaxDurationNs)
        {
            return value;
        }

        result.AddError($"--duration must be a whole number of nanoseconds from {CompareWorkloadOptions.RoundPeriodNs} (one round) to {CompareWorkloadOptions.MaxDurationNs}, not '{text}'");
        return 0;
    }

    private static int ParseRounds(ArgumentResult result)
    {
        string text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        if (int.TryParse(text, NumberStyles.None, s_invariant, out int value) &&
            value >= 1 && value <= CompareWorkloadOptions.MaxRounds)
        {
            return value;
        }

        result.AddError($"--rounds must be a whole number from 1 to {CompareWorkloadOptions.MaxRounds}, not '{text}'");
        return 0;
    }

    private static CostModel? ParseCost(ArgumentResult result)
    {
        string text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        CostModel? model = CostModel.Default.WithOverrides(text, out string? error);
        if (model is null)
        {
            result.AddError($"--cost: {error}");
        }

        return model;
    }

    private static string Ratio(double? value, string format) => value is double v ? v.ToString(format, s_invariant) : "-";

    private static string Number(long value) => value.ToString(s_invariant);
}
