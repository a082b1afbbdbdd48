using System.CommandLine;
using Spectre.Console;
using Vapic.Trace.Replay;
using Vapic.Virtualization;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic replay FILE... [--mode M|all] [--stats] [--quiet] [--host-cpus N] [--pinning A,B,...]
/// [--intercept-thermal] [--intercept-icr-read]</c>: runs trace files (the last four describe the
/// host of the passthrough mode and need it among the modes) and exits
/// 0 when every expectation held, 1 when one failed (or modes disagreed), 2 when a trace is
/// malformed or names something the machine does not have (trace-format.md "Running").
/// </summary>
public static class ReplayCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var files = new Argument<string[]>("files")
        {
            Description = "Trace files to replay (trace format version 1).",
            Arity = ArgumentArity.OneOrMore,
        };
        var mode = new Option<string>("--mode")
        {
            Description = "Virtualization mode to replay in: " + string.Join(", ", ReplayMode.Known) + ", or 'all'.",
            DefaultValueFactory = _ => ReplayMode.Emulated,
        };
        var stats = new Option<bool>("--stats") { Description = "Print, per mode, the work each mode did." };
        var quiet = new Option<bool>("--quiet") { Description = "Print only failures and errors." };
        var command = new Command("replay", "Replay trace files against the virtual machine and check every expectation.")
        {
            files,
            mode,
            stats,
            quiet,
        };
        var host = new PassthroughHostOptions();
        host.AddTo(command);
        command.SetAction(parseResult =>
        {
            PassthroughOptions? passthroughHost = null;
            if (host.AnyGiven(parseResult))
            {
                string modeName = parseResult.GetValue(mode) ?? ReplayMode.Emulated;
                if (modeName is not ("all" or "passthrough"))
                {
                    return CliErrors.Usage(Console.Error, "vapic replay",
                        $"--host-cpus, --pinning and --intercept-* describe the host of mode 'passthrough', but the mode is '{modeName}'");
                }

                if (!host.TryRead(parseResult, out PassthroughOptions read, out string? problem))
                {
                    return CliErrors.Usage(Console.Error, "vapic replay", problem!);
                }

                passthroughHost = read;
            }

            return Run(
                parseResult.GetValue(files) ?? [],
                parseResult.GetValue(mode) ?? ReplayMode.Emulated,
                parseResult.GetValue(stats),
                parseResult.GetValue(quiet),
                passthroughHost);
        });
        return command;
    }

    private static int Run(string[] files, string mode, bool stats, bool quiet, PassthroughOptions? passthroughHost)
    {
        TextWriter output = Console.Out;
        TextWriter error = Console.Error;
        IReadOnlyList<string> modes;
        if (mode == "all")
        {
            modes = ReplayMode.Available;
            var missing = ReplayMode.Known.Where(m => !ReplayMode.IsAvailable(m)).ToArray();
            if (missing.Length > 0)
            {
                error.WriteLine($"note: --mode all runs {string.Join(", ", modes)}: {string.Join(", ", missing)} are not implemented in this build");
            }
        }
        else if (ReplayMode.IsAvailable(mode))
        {
            modes = [mode];
        }
        else if (ReplayMode.Known.Contains(mode))
        {
            error.WriteLine($"vapic replay: mode '{mode}' is not implemented in this build (available: {string.Join(", ", ReplayMode.Available)})");
            return (int)ReplayOutcome.Malformed;
        }
        else
        {
            error.WriteLine($"vapic replay: unknown mode '{mode}' (modes: {string.Join(", ", ReplayMode.Known)}, all)");
            return (int)ReplayOutcome.Malformed;
        }

        var session = new ReplaySession(output, quiet, passthroughHost);
        var outcome = ReplayOutcome.Passed;
        var results = new List<FileReplayResult>(files.Length);
        int passed = 0;
        foreach (string file in files)
        {
            FileReplayResult result = session.RunFile(file, modes);
            results.Add(result);
            foreach (string message in result.Messages)
            {
                error.WriteLine(message);
            }

            if (!quiet)
            {
                // A mode that cannot apply (x2APIC-only savic on an xAPIC trace) is not a failure.
                foreach (ModeSkip skip in result.Skipped)
                {
                    output.WriteLine(skip.ToString());
                }
            }

            if (result.Outcome == ReplayOutcome.Passed)
            {
                passed++;
                if (!quiet)
                {
                    string[] ran = [.. modes.Where(m => !result.IsSkipped(m))];
                    string skippedModes = result.Skipped.Count == 0 ? "" : $"; skipped: {string.Join(", ", result.Skipped.Select(s => s.Mode))}";
                    if (ran.Length == 0)
                    {
                        output.WriteLine($"SKIP {file} (modes: {string.Join(", ", modes)} cannot apply)");
                    }
                    else
                    {
                        int first = 0;
                        while (result.IsSkipped(modes[first]))
                        {
                            first++;
                        }

                        var run = result.Runs[first];
                        output.WriteLine($"PASS {file} ({run.Stats.Commands} commands, {run.Stats.Expectations} expectations; modes: {string.Join(", ", ran)}{skippedModes})");
                    }
                }
            }
            else
            {
                error.WriteLine($"{(result.Outcome == ReplayOutcome.Malformed ? "ERROR" : "FAIL")} {file}");
            }

            if (result.Outcome > outcome)
            {
                outcome = result.Outcome;
            }
        }

        if (stats)
        {
            PrintStats(results, modes);
        }

        if (!quiet || outcome != ReplayOutcome.Passed)
        {
            output.WriteLine($"{passed} of {files.Length} trace file(s) passed");
        }

        return (int)outcome;
    }

    private static void PrintStats(List<FileReplayResult> results, IReadOnlyList<string> modes)
    {
        var table = new Table().Title("replay work by mode");
        table.AddColumn("counter");
        foreach (string m in modes)
        {
            table.AddColumn(new TableColumn(m).RightAligned());
        }

        (string Name, Func<ReplayStats, long> Get)[] rows =
        [
            ("commands", s => s.Commands),
            ("expectations checked", s => s.Expectations),
            ("MMIO accesses", s => s.MmioAccesses),
            ("MSR accesses", s => s.MsrAccesses),
            ("#GP injected", s => s.GeneralProtections),
            ("events accepted", s => s.EventsAccepted),
            ("fixed interrupts accepted", s => s.FixedAccepted),
            ("IPIs sent", s => s.IpisSent),
            ("IOAPIC messages", s => s.IoApicMessages),
            ("MSIs", s => s.Msis),
            ("timer expiries", s => s.TimerExpiries),
            ("EOI broadcasts", s => s.EoiBroadcasts),
            ("interrupts merged", s => s.InterruptsMerged),
            ("interrupts dropped (architectural)", s => s.InterruptsDropped),
            ("virtual time (ns)", s => s.VirtualNanoseconds),
        ];
        foreach (var (name, get) in rows)
        {
            AddRow(table, results, modes, name, get);
        }

        AddRow(table, results, modes, "exits (total)", null, run => run.Ledger.TotalExits);
        foreach (ExitReason reason in ExitLedger.Reasons)
        {
            if (results.Any(r => r.Runs.Any(run => run.Ledger.ExitsOf(reason) != 0)))
            {
                AddRow(table, results, modes, "  exit: " + reason, null, run => run.Ledger.ExitsOf(reason));
            }
        }

        foreach (CostEvent costEvent in ExitLedger.Events)
        {
            if (results.Any(r => r.Runs.Any(run => run.Ledger.EventsOf(costEvent) != 0)))
            {
                AddRow(table, results, modes, "  event: " + costEvent, null, run => run.Ledger.EventsOf(costEvent));
            }
        }

        AddRow(table, results, modes, "estimated cycles", null, run => run.Ledger.TotalCycles(CostModel.Default));
        var counterNames = new List<string>();
        foreach (FileReplayResult r in results)
        {
            foreach (ModeRun run in r.Runs)
            {
                foreach (KeyValuePair<string, long> row in run.ModeCounters)
                {
                    if (!counterNames.Contains(run.Mode + ": " + row.Key))
                    {
                        counterNames.Add(run.Mode + ": " + row.Key);
                    }
                }
            }
        }

        foreach (string name in counterNames)
        {
            AddRow(table, results, modes, "  " + name, null, run =>
            {
                long total = 0;
                foreach (KeyValuePair<string, long> row in run.ModeCounters)
                {
                    if (run.Mode + ": " + row.Key == name)
                    {
                        total += row.Value;
                    }
                }

                return total;
            });
        }
        AnsiConsole.Write(table);
    }

    private static void AddRow(Table table, List<FileReplayResult> results, IReadOnlyList<string> modes, string name, Func<ReplayStats, long>? get, Func<ModeRun, long>? getRun = null)
    {
        var cells = new List<string> { name };
        for (int m = 0; m < modes.Count; m++)
        {
            long total = 0;
            foreach (FileReplayResult r in results)
            {
                // A skipped mode stopped early: its partial work is not counted.
                if (m < r.Runs.Count && !r.IsSkipped(modes[m]))
                {
                    total += get is not null ? get(r.Runs[m].Stats) : getRun!(r.Runs[m]);
                }
            }

            cells.Add(total.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        table.AddRow(cells.ToArray());
    }
}
