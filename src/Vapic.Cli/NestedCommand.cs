using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Vapic.Virtualization;
using Vapic.Virtualization.Nested;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic nested SCENARIO [--quirk NAME]... [--mode MODE] [--json]</c>: runs a built-in nested
/// scenario (<see cref="NestedScenarios"/>) twice, with today's behaviour and with quirks (those
/// named, or the one the scenario is about), and shows for each run what L2 saw, the exits, the
/// inhibits and whether an interrupt was lost. <c>--json</c> prints one JSON object per run, one
/// per line. Exits 0 after running, 2 on bad input.
/// </summary>
public static class NestedCommand
{
    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var scenario = new Argument<string>("scenario")
        {
            Description = $"The scenario: {string.Join(", ", NestedScenarios.Names)}.",
            HelpName = "SCENARIO",
        };
        var quirk = new Option<string[]>("--quirk")
        {
            Description = $"A quirk for the comparison run ({string.Join(", ", NestedQuirkNames.Names)}); repeatable. Default: the quirk the scenario is about.",
            HelpName = "NAME",
            AllowMultipleArgumentsPerToken = false,
        };
        var mode = new Option<string>("--mode")
        {
            Description = $"The mode L0 runs L1 in ({string.Join(", ", ModeRegistry.Available)}).",
            HelpName = "MODE",
            DefaultValueFactory = _ => "apicv",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per run instead of text." };
        var command = new Command("nested", "Run a nested-virtualization scenario (L1 hypervisor, L2 guest) with and without the old L0 behaviours.")
        {
            scenario,
            quirk,
            mode,
            json,
        };
        command.SetAction(parseResult =>
        {
            TextWriter output = parseResult.InvocationConfiguration.Output;
            TextWriter error = parseResult.InvocationConfiguration.Error;
            string name = parseResult.GetValue(scenario) ?? "";
            if (!NestedScenarios.IsKnown(name))
            {
                return CliErrors.Usage(error, "vapic nested", $"unknown scenario '{name}' (scenarios: {string.Join(", ", NestedScenarios.Names)})");
            }

            string modeName = parseResult.GetValue(mode) ?? "apicv";
            if (!ModeRegistry.IsAvailable(modeName))
            {
                return CliErrors.Usage(error, "vapic nested", $"unknown mode '{modeName}' (modes: {string.Join(", ", ModeRegistry.Available)})");
            }

            NestedQuirks comparison = NestedQuirks.None;
            string[] quirkNames = parseResult.GetValue(quirk) ?? [];
            foreach (string quirkName in quirkNames)
            {
                if (!NestedQuirkNames.TryParse(quirkName, out NestedQuirks q))
                {
                    return CliErrors.Usage(error, "vapic nested", $"unknown quirk '{quirkName}' (quirks: {string.Join(", ", NestedQuirkNames.Names)})");
                }

                comparison |= q;
            }

            if (quirkNames.Length == 0)
            {
                comparison = NestedScenarios.ComparisonQuirks(name);
            }

            NestedScenarioResult[] runs =
            [
                NestedScenarios.Run(name, NestedQuirks.None, ModeRegistry.Create(modeName)),
                NestedScenarios.Run(name, comparison, ModeRegistry.Create(modeName)),
            ];
            foreach (NestedScenarioResult run in runs)
            {
                if (parseResult.GetValue(json))
                {
                    output.Write(NestedScenarioJson.Serialize(run));
                    output.Write('\n');
                }
                else
                {
                    Render(run, output);
                }
            }

            return CliExitCode.Success;
        });
        return command;
    }

    private static void Render(NestedScenarioResult run, TextWriter output)
    {
        IReadOnlyList<string> quirks = NestedQuirkNames.Enumerate(run.Quirks);
        output.WriteLine($"== {run.Scenario} under {run.Mode}, {(quirks.Count == 0 ? "no quirks" : "quirks: " + string.Join(", ", quirks))}");
        foreach (string line in run.Transcript)
        {
            output.WriteLine($"  {line}");
        }

        output.WriteLine($"  outcome: {run.Outcome}{(run.Error is null ? "" : $" ({run.Error})")}");
        string l1Exits = string.Join(", ", run.Counters.L1ExitCounts.Select(e => $"{L1ExitReasonNames.Keyword(e.Key)} {Number(e.Value)}"));
        output.WriteLine($"  exits to L1: {(l1Exits.Length == 0 ? "none" : l1Exits)}; MMIO exits to the VMM: {Number(run.Counters.VmmMmioExits)}; internal errors: {Number(run.Counters.InternalErrors)}");
        string l0Exits = string.Join(", ", ExitLedger.Reasons.Where(r => run.Ledger.ExitsOf(r) != 0).Select(r => $"{r} {Number(run.Ledger.ExitsOf(r))}"));
        output.WriteLine($"  exits to L0 ({run.Mode}): {(l0Exits.Length == 0 ? "none" : l0Exits)}");
        output.WriteLine($"  L2 touched L1 MMIO: {(run.L2TouchedL1Mmio ? "yes" : "no")}; inhibits: {(run.InhibitNames.Count == 0 ? "none" : string.Join(", ", run.InhibitNames))}");
        output.WriteLine($"  interrupts: {Number(run.InterruptsSent)} sent, {Number(run.InterruptsDelivered)} delivered, {Number(run.InterruptsLost)} lost");
        output.WriteLine();
    }

    private static string Number(long value) => value.ToString("N0", s_invariant);
}
