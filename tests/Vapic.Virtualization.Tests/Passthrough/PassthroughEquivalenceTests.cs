using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// Every scenario of tests/traces (x2apic-lock included) passes under passthrough, with the default
/// host and with other host shapes and interception choices, and the guest sees exactly what it
/// sees under plain emulation; after every run the security guards are still at zero.
/// </summary>
public class PassthroughEquivalenceTests
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

        int n = document.Machine.VcpuCount;
        foreach (PassthroughOptions options in new[]
        {
            PassthroughOptions.Default,
            new PassthroughOptions { InterceptThermal = true, InterceptIcrRead = true },
            new PassthroughOptions { HostCpuCount = n + 3, Pinning = [.. Enumerable.Range(0, n).Select(i => n + 2 - i)] },
        })
        {
            var mode = new PassthroughMode(options);
            ModeRun run = TraceReplayer.Run(document, mode);
            Assert.True(run.Passed, $"{options}: {run.Failure}");
            Assert.Equal(emulated.Observations, run.Observations);
            Assert.Equal(emulated.Stats, run.Stats);

            Assert.Equal(0, mode.Host.BlockedIpis);
            Assert.Equal(0, mode.Counters.PhysicalIdentityLeaks);
            Assert.Equal(0, mode.Counters.UntranslatedIcrWrites);
            if (options.InterceptIcrRead)
            {
                Assert.Equal(0, mode.Counters.PhysicalIcrReadbacks);
            }
        }
    }
}
