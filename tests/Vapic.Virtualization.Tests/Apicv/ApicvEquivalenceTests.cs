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
        TraceDocument document = TraceSuite.Parse(trace);
        ModeRun emulated = TraceSuite.Emulated(document);
        TraceSuite.AssertMatchesEmulation(document, emulated, new ApicvMode(s_featureSets[features]), features);
    }
}
