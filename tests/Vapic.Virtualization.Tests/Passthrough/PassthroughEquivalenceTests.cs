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
    public static TheoryData<string> TraceFiles() => TraceSuite.RelativeFiles();

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void TracePassesAndMatchesEmulation(string relativePath)
    {
        TraceDocument document = TraceSuite.Parse(relativePath);
        ModeRun emulated = TraceSuite.Emulated(document);
        int n = document.Machine.VcpuCount;
        foreach (PassthroughOptions options in new[]
        {
            PassthroughOptions.Default,
            new PassthroughOptions { InterceptThermal = true, InterceptIcrRead = true },
            new PassthroughOptions { HostCpuCount = n + 3, Pinning = [.. Enumerable.Range(0, n).Select(i => n + 2 - i)] },
        })
        {
            var mode = new PassthroughMode(options);
            TraceSuite.AssertMatchesEmulation(document, emulated, mode, options.ToString());

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
