using System.Text;
using Vapic.Fuzz.Targets;
using Vapic.Trace.Syntax;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>The trace target's bounds: a valid but huge trace is cut, never hangs.</summary>
public sealed class TraceTargetTests
{
    [Fact]
    public void Bound_TimeBeyondTheBudget_IsClampedAcrossCommands()
    {
        TraceDocument document = Parse("machine vcpus=2\ntime +1500000\ntime +1000000000000\ntime +5\n");

        TraceDocument bounded = TraceTarget.Bound(document);

        ulong perVcpu = (ulong)(TraceTarget.VirtualTimeBudget / 2);
        Assert.Equal([perVcpu, 0UL, 0UL], bounded.Commands.Select(c => c.A));
    }

    [Fact]
    public void Bound_TooManyCommands_KeepsTheFirst()
    {
        var text = new StringBuilder("machine vcpus=1\n");
        for (int i = 0; i < TraceTarget.MaxCommands + 10; i++)
        {
            text.Append("0 rdcr8\n");
        }

        TraceDocument bounded = TraceTarget.Bound(Parse(text.ToString()));

        Assert.Equal(TraceTarget.MaxCommands, bounded.Commands.Length);
    }

    [Fact]
    public void Bound_TraceWithinBounds_IsReturnedAsIs()
    {
        TraceDocument document = Parse("machine vcpus=1\n0 wrcr8 3\ntime +1000\n0 rdcr8 = 3\n");

        Assert.Same(document, TraceTarget.Bound(document));
    }

    [Fact]
    public void Run_PeriodicTimerOfOneNanosecondForAnHour_FinishesWithinTheBudget()
    {
        // DCR divide by 1, periodic, initial count 1: a 1 ns period. An hour of virtual time would be
        // 3.6e12 expiries; the bound lets 2e6 happen.
        string trace = """
            machine vcpus=1
            0 write 0xfee000f0 0x1ff
            0 write 0xfee003e0 0xb
            0 write 0xfee00320 0x20030
            0 write 0xfee00380 1
            time +3600000000000
            0 accept = 0x30
            """;

        new TraceTarget().Run(Encoding.UTF8.GetBytes(trace));
    }

    [Fact]
    public void Seeds_AreWithinTheBoundsAndPassUnderEmulated()
    {
        foreach (FuzzInput seed in TargetData.Corpus("trace"))
        {
            TraceDocument document = Parse(Encoding.UTF8.GetString(seed.Data));
            Assert.Same(document, TraceTarget.Bound(document));
            Assert.True(Trace.Replay.TraceReplayer.Run(document, "emulated").Passed, seed.Name);
        }
    }

    private static TraceDocument Parse(string text)
    {
        TraceParseResult result = TraceParser.Parse("test.trace", text);
        Assert.True(result.Succeeded, result.Errors.IsDefaultOrEmpty ? "" : result.Errors[0].ToString());
        return result.Document;
    }
}
