using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Xunit;

namespace Vapic.Virtualization.Tests;

/// <summary>
/// Locates tests/traces and runs the suite-wide equivalence check every mode's tests share: the
/// trace passes under the mode and the guest sees exactly what it sees under plain emulation.
/// </summary>
public static class TraceSuite
{
    public static string Root { get; } = Find();

    public static IEnumerable<string> Files() =>
        Directory.EnumerateFiles(Root, "*.trace", SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    /// <summary>Every trace, relative to <see cref="Root"/>, as theory data.</summary>
    public static TheoryData<string> RelativeFiles()
    {
        var data = new TheoryData<string>();
        foreach (string path in Files())
        {
            data.Add(Path.GetRelativePath(Root, path));
        }

        return data;
    }

    /// <summary>Parses the trace at <paramref name="relativePath"/> below <see cref="Root"/>; it must parse.</summary>
    public static TraceDocument Parse(string relativePath)
    {
        TraceParseResult parsed = TraceParser.ParseFile(Path.Combine(Root, relativePath));
        Assert.True(parsed.Succeeded, string.Join(Environment.NewLine, parsed.Errors));
        return parsed.Document!;
    }

    /// <summary>Replays <paramref name="document"/> under plain emulation; it must pass.</summary>
    public static ModeRun Emulated(TraceDocument document)
    {
        ModeRun emulated = TraceReplayer.Run(document, new EmulatedMode());
        Assert.True(emulated.Passed, emulated.Failure?.ToString());
        return emulated;
    }

    /// <summary>
    /// Replays <paramref name="document"/> under <paramref name="mode"/> (not attached yet): it must
    /// pass, and its observations, replay statistics and delivered interrupts must equal
    /// <paramref name="emulated"/>'s. <paramref name="label"/> names the configuration in failures.
    /// </summary>
    public static ModeRun AssertMatchesEmulation(TraceDocument document, ModeRun emulated, VirtualizationMode mode, string label)
    {
        ModeRun run = TraceReplayer.Run(document, mode);
        Assert.True(run.Passed, $"{label}: {run.Failure}");
        Assert.Equal(emulated.Observations, run.Observations);
        Assert.Equal(emulated.Stats, run.Stats);
        Assert.Equal(emulated.Ledger.InterruptsDelivered, run.Ledger.InterruptsDelivered);
        return run;
    }

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "traces");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/traces not found above " + AppContext.BaseDirectory);
    }
}
