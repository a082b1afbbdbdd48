using Vapic.Trace.Syntax;
using Vapic.Virtualization;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Trace.Replay;

/// <summary>The result of replaying one file in one or more modes.</summary>
/// <param name="FileName">The trace file.</param>
/// <param name="Outcome">Passed, failed or malformed.</param>
/// <param name="Runs">One run per mode (empty when the file is malformed).</param>
/// <param name="Messages">What went wrong, one line each (parse errors, failed expectations, mode differences).</param>
public sealed record FileReplayResult(string FileName, ReplayOutcome Outcome, IReadOnlyList<ModeRun> Runs, IReadOnlyList<string> Messages)
{
    /// <summary>The modes that could not apply to this trace (their runs stop where that showed and are not compared).</summary>
    public IReadOnlyList<ModeSkip> Skipped { get; init; } = [];

    /// <summary>Whether <paramref name="mode"/> was skipped for this trace.</summary>
    public bool IsSkipped(string mode)
    {
        foreach (ModeSkip skip in Skipped)
        {
            if (skip.Mode == mode)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// A mode that cannot apply to a trace (trace format "Running": x2APIC-only <c>savic</c> on a trace
/// that uses xAPIC MMIO, say). A skip is not a failure.
/// </summary>
/// <param name="Mode">The mode.</param>
/// <param name="Location">The command that showed it (default when the mode refused the machine itself).</param>
/// <param name="Reason">Why, as the mode says it (<see cref="VirtualizationMode.InapplicableReason"/>).</param>
public sealed record ModeSkip(string Mode, SourceLocation Location, string Reason)
{
    /// <inheritdoc/>
    public override string ToString() =>
        Location == default ? $"skipped ({Mode}: {Reason})" : $"{Location}: skipped ({Mode}: {Reason})";
}

/// <summary>
/// Replays trace files the way <c>vapic replay</c> does: parse, run in each requested mode,
/// compare the modes' guest-visible observations, and report. Output is deterministic.
/// </summary>
public sealed class ReplaySession
{
    private const string PassthroughModeName = "passthrough";

    private readonly TextWriter _output;
    private readonly bool _quiet;
    private readonly PassthroughOptions? _passthroughHost;

    /// <summary>
    /// Creates a session writing observations and progress to <paramref name="output"/>. The
    /// passthrough mode runs on <paramref name="passthroughHost"/> (host CPUs, pinning, extra
    /// intercepts), or on <see cref="PassthroughOptions.Default"/> when null.
    /// </summary>
    public ReplaySession(TextWriter output, bool quiet, PassthroughOptions? passthroughHost = null)
    {
        _output = output;
        _quiet = quiet;
        _passthroughHost = passthroughHost;
    }

    /// <summary>Replays the file at <paramref name="path"/> in <paramref name="modes"/>.</summary>
    public FileReplayResult RunFile(string path, IReadOnlyList<string> modes)
    {
        TraceParseResult parsed = TraceParser.ParseFile(path);
        return parsed.Succeeded
            ? Run(parsed.Document, modes)
            : new FileReplayResult(path, ReplayOutcome.Malformed, [], [.. parsed.Errors.Select(e => $"{e.Location}: error: {e.Message}")]);
    }

    /// <summary>Replays trace text (for tests and tools).</summary>
    public FileReplayResult RunText(string fileName, string text, IReadOnlyList<string> modes)
    {
        TraceParseResult parsed = TraceParser.Parse(fileName, text);
        return parsed.Succeeded
            ? Run(parsed.Document, modes)
            : new FileReplayResult(fileName, ReplayOutcome.Malformed, [], [.. parsed.Errors.Select(e => $"{e.Location}: error: {e.Message}")]);
    }

    /// <summary>Replays a parsed document in <paramref name="modes"/> and checks that they agree.</summary>
    public FileReplayResult Run(TraceDocument document, IReadOnlyList<string> modes)
    {
        var runs = new List<ModeRun>(modes.Count);
        var messages = new List<string>();
        var skipped = new List<ModeSkip>();
        TraceReplayer.ObservationSink? sink = _quiet ? null : Print;
        if (_passthroughHost is not null && modes.Contains(PassthroughModeName) &&
            _passthroughHost.Validate(document.Machine.VcpuCount) is string badHost)
        {
            // The host must fit this trace's machine (one pCPU per vCPU, pinning of the right length).
            return new FileReplayResult(document.FileName, ReplayOutcome.Malformed, [],
                [$"{document.Machine.Location}: error: passthrough host: {badHost}"]);
        }

        for (int m = 0; m < modes.Count; m++)
        {
            if (!ReplayMode.IsAvailable(modes[m]))
            {
                throw new ArgumentException($"mode '{modes[m]}' is not available", nameof(modes));
            }

            // Observations are printed once, from the first mode; the others must see the same.
            VirtualizationMode mode = modes[m] == PassthroughModeName && _passthroughHost is not null
                ? new PassthroughMode(_passthroughHost)
                : ModeRegistry.Create(modes[m]);
            ModeRun run = TraceReplayer.Run(document, mode, m == 0 ? sink : null, stopWhenInapplicable: true, out int inapplicableAt);
            runs.Add(run);
            if (mode.InapplicableReason is string reason)
            {
                skipped.Add(new ModeSkip(run.Mode, inapplicableAt >= 0 ? document.Commands[inapplicableAt].Location : default, reason));
            }
            else if (run.Failure is not null)
            {
                messages.Add($"{run.Failure} [mode {run.Mode}]");
            }
        }

        if (messages.Count == 0)
        {
            CompareModes(document, runs, skipped, messages);
        }

        ReplayOutcome outcome = messages.Count == 0 ? ReplayOutcome.Passed : ReplayOutcome.Failed;
        return new FileReplayResult(document.FileName, outcome, runs, messages) { Skipped = skipped };
    }

    private static void CompareModes(TraceDocument document, List<ModeRun> runs, List<ModeSkip> skipped, List<string> messages)
    {
        // Skipped runs stopped early and are not compared; the first mode that ran is the reference.
        var compared = new List<ModeRun>(runs.Count);
        foreach (ModeRun run in runs)
        {
            if (!skipped.Exists(s => s.Mode == run.Mode))
            {
                compared.Add(run);
            }
        }

        if (compared.Count < 2)
        {
            return;
        }

        runs = compared;
        Observation[] reference = runs[0].Observations;
        for (int r = 1; r < runs.Count; r++)
        {
            Observation[] other = runs[r].Observations;
            int n = Math.Min(reference.Length, other.Length);
            for (int i = 0; i < n; i++)
            {
                if (reference[i] != other[i])
                {
                    TraceCommand c = document.Commands[i];
                    messages.Add($"{c.Location}: '{TraceFormatter.Format(c)}' differs between modes: {runs[0].Mode} saw {reference[i]}, {runs[r].Mode} saw {other[i]}");
                    break;
                }
            }
        }
    }

    private void Print(in TraceCommand command, Observation observed) =>
        _output.WriteLine($"{command.Location}: {TraceFormatter.Format(command)} -> {observed}");
}
