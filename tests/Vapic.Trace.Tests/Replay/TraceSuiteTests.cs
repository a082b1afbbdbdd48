using Vapic.Trace.Replay;
using Xunit;

namespace Vapic.Trace.Tests.Replay;

/// <summary>Runs every conformance scenario under tests/traces in every available mode.</summary>
public class TraceSuiteTests
{
    public static string TraceRoot { get; } = FindTraceRoot();

    public static TheoryData<string> TraceFiles()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.EnumerateFiles(TraceRoot, "*.trace", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(TraceRoot, path));
        }

        return data;
    }

    [Fact]
    public void SuiteHasAtLeastEightyScenarios() =>
        Assert.True(Directory.EnumerateFiles(TraceRoot, "*.trace", SearchOption.AllDirectories).Count() >= 80);

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void ScenarioPassesInEveryMode(string relativePath)
    {
        var session = new ReplaySession(TextWriter.Null, quiet: true);
        FileReplayResult result = session.RunFile(Path.Combine(TraceRoot, relativePath), ReplayMode.Available);
        Assert.True(result.Outcome == ReplayOutcome.Passed, string.Join(Environment.NewLine, result.Messages));
    }

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void ScenarioIsDeterministic(string relativePath)
    {
        var session = new ReplaySession(TextWriter.Null, quiet: true);
        string path = Path.Combine(TraceRoot, relativePath);
        FileReplayResult first = session.RunFile(path, [ReplayMode.Emulated]);
        FileReplayResult second = session.RunFile(path, [ReplayMode.Emulated]);
        Assert.Equal(first.Runs[0].Observations, second.Runs[0].Observations);
        Assert.Equal(first.Runs[0].Stats, second.Runs[0].Stats);
    }

    private static string FindTraceRoot()
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
