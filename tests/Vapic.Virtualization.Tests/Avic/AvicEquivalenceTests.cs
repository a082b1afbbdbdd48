using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>
/// Every scenario of tests/traces passes under AVIC (x2AVIC, hybrid AVIC, and without
/// <c>enable_ipiv</c>) and the guest sees exactly what it sees under plain emulation.
/// </summary>
public class AvicEquivalenceTests
{
    public static TheoryData<string> TraceFiles()
    {
        var data = new TheoryData<string>();
        foreach (string path in TraceSuite.Files())
        {
            data.Add(Path.GetRelativePath(TraceSuite.Root, path));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void TracePassesAndMatchesEmulation(string relativePath)
    {
        TraceParseResult parsed = TraceParser.ParseFile(Path.Combine(TraceSuite.Root, relativePath));
        Assert.True(parsed.Succeeded, string.Join(Environment.NewLine, parsed.Errors));
        TraceDocument document = parsed.Document!;

        ModeRun emulated = TraceReplayer.Run(document, new EmulatedMode());
        Assert.True(emulated.Passed, emulated.Failure?.ToString());

        foreach (AvicFeatures features in new[]
        {
            AvicFeatures.Default,
            new AvicFeatures { X2Avic = false },
            new AvicFeatures { ExposeIsRunning = false },
        })
        {
            ModeRun avic = TraceReplayer.Run(document, new AvicMode(features));
            Assert.True(avic.Passed, $"{features}: {avic.Failure}");
            Assert.Equal(emulated.Observations, avic.Observations);
            Assert.Equal(emulated.Stats, avic.Stats);
        }
    }
}
