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
    public static TheoryData<string> TraceFiles() => TraceSuite.RelativeFiles();

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void TracePassesAndMatchesEmulation(string relativePath)
    {
        TraceDocument document = TraceSuite.Parse(relativePath);
        ModeRun emulated = TraceSuite.Emulated(document);
        foreach (AvicFeatures features in new[]
        {
            AvicFeatures.Default,
            new AvicFeatures { X2Avic = false },
            new AvicFeatures { ExposeIsRunning = false },
        })
        {
            TraceSuite.AssertMatchesEmulation(document, emulated, new AvicMode(features), features.ToString());
        }
    }
}
