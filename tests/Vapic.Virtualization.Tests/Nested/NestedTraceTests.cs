using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// The nested traces under tests/traces/nested. The <c>.trace</c> files belong to the suite: they
/// pass in every available mode (or the mode declares itself inapplicable) with the same
/// observations as emulation. The <c>.quirk-trace</c> files show the lossy quirk, whose results
/// depend on the mode on purpose: each passes in the modes its first line names
/// (<c># modes: ...</c>) and fails in the other modes it can run in.
/// </summary>
public sealed class NestedTraceTests
{
    private static string Folder => Path.Combine(TraceSuite.Root, "nested");

    public static TheoryData<string, string> SuiteCases()
    {
        var data = new TheoryData<string, string>();
        foreach (string file in Directory.EnumerateFiles(Folder, "*.trace").Order(StringComparer.Ordinal))
        {
            foreach (string mode in ModeRegistry.Available)
            {
                data.Add(Path.GetFileName(file), mode);
            }
        }

        return data;
    }

    public static TheoryData<string> QuirkTraces() =>
        [.. Directory.EnumerateFiles(Folder, "*.quirk-trace").Order(StringComparer.Ordinal).Select(f => Path.GetFileName(f))];

    [Fact]
    public void TheFolderHasTracesForEveryCase()
    {
        Assert.True(Directory.EnumerateFiles(Folder, "*.trace").Count() >= 8);
        Assert.True(Directory.EnumerateFiles(Folder, "*.quirk-trace").Count() >= 2);
    }

    [Theory]
    [MemberData(nameof(SuiteCases))]
    public void SuiteTrace_PassesAndMatchesEmulation(string file, string mode)
    {
        TraceDocument document = Parse(file);
        VirtualizationMode subject = ModeRegistry.Create(mode);
        ModeRun run = TraceReplayer.Run(document, subject);
        if (subject.InapplicableReason is not null)
        {
            return;
        }

        ModeRun emulated = TraceReplayer.Run(document, new EmulatedMode());
        Assert.True(emulated.Passed, emulated.Failure?.ToString());
        Assert.True(run.Passed, run.Failure?.ToString());
        Assert.Equal(emulated.Observations, run.Observations);
        Assert.Equal(emulated.Ledger.InterruptsDelivered, run.Ledger.InterruptsDelivered);
    }

    [Theory]
    [MemberData(nameof(QuirkTraces))]
    public void QuirkTrace_PassesExactlyInTheModesItNames(string file)
    {
        string first = File.ReadLines(Path.Combine(Folder, file)).First();
        Assert.StartsWith("# modes: ", first, StringComparison.Ordinal);
        string[] modes = first["# modes: ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        TraceDocument document = Parse(file);
        foreach (string mode in new[] { "emulated", "apicv", "avic", "passthrough" })
        {
            ModeRun run = TraceReplayer.Run(document, NestedRig.CreateMode(mode));
            if (modes.Contains(mode))
            {
                Assert.True(run.Passed, $"{mode}: {run.Failure}");
            }
            else
            {
                Assert.False(run.Passed, $"{file} passed in {mode}, which it does not name");
            }
        }
    }

    private static TraceDocument Parse(string file)
    {
        TraceParseResult parsed = TraceParser.ParseFile(Path.Combine(Folder, file));
        Assert.True(parsed.Succeeded, string.Join("; ", parsed.Errors));
        return parsed.Document;
    }
}
