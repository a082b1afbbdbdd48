using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.Apicv;
using Xunit;

namespace Vapic.Virtualization.Tests.Apicv;

/// <summary>
/// Every conformance trace passes under APICv (all features, without IPIv, and with the TPR
/// shadow alone) and the guest observes exactly what it observes under plain emulation.
/// </summary>
public sealed class ApicvEquivalenceTests
{
    private static readonly Dictionary<string, ApicvFeatures> s_featureSets = new()
    {
        ["ipiv"] = ApicvFeatures.Default,
        ["vid"] = ApicvFeatures.WithoutIpiVirtualization,
        ["tpr-shadow"] = ApicvFeatures.TprShadowOnly,
    };

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string file in TraceSuite.Files())
        {
            string name = Path.GetRelativePath(TraceSuite.Root, file);
            foreach (string features in s_featureSets.Keys)
            {
                data.Add(name, features);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TracePassesAndMatchesEmulation(string trace, string features)
    {
        TraceParseResult parsed = TraceParser.ParseFile(Path.Combine(TraceSuite.Root, trace));
        Assert.True(parsed.Succeeded, string.Join("; ", parsed.Errors));

        ModeRun emulated = TraceReplayer.Run(parsed.Document, new EmulatedMode());
        ModeRun apicv = TraceReplayer.Run(parsed.Document, new ApicvMode(s_featureSets[features]));

        Assert.True(emulated.Passed, emulated.Failure?.ToString());
        Assert.True(apicv.Passed, apicv.Failure?.ToString());
        Assert.Equal(emulated.Observations, apicv.Observations);
        Assert.Equal(emulated.Ledger.InterruptsDelivered, apicv.Ledger.InterruptsDelivered);
    }
}
