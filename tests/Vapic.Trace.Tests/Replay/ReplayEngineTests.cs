using Vapic.Trace.Replay;
using Xunit;

namespace Vapic.Trace.Tests.Replay;

public class ReplayEngineTests
{
    private static FileReplayResult Replay(string text, bool quiet = true, TextWriter? output = null) =>
        new ReplaySession(output ?? TextWriter.Null, quiet).RunText("t.trace", text, ReplayMode.Available);

    [Fact]
    public void PassingTraceReturnsPassed()
    {
        var r = Replay("""
            machine vcpus=1
            0 read 0xfee00030 = 0x01050014
            0 rdmsr 0x1b = 0xfee00900
            """);
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
        Assert.Equal(2, r.Runs[0].Stats.Expectations);
    }

    [Fact]
    public void FailedExpectationNamesLineCommandExpectedAndObserved()
    {
        var r = Replay("""
            machine vcpus=1
            # comment
            0 read 0xfee00030 = 0x12345678
            """);
        Assert.Equal(ReplayOutcome.Failed, r.Outcome);
        string message = r.Messages[0];
        Assert.Equal(ReplayMode.Available.Count - r.Skipped.Count, r.Messages.Count);
        Assert.Contains("t.trace:3:", message);
        Assert.Contains("0x12345678", message);
        Assert.Contains("0x1050014", message);
    }

    [Fact]
    public void MalformedTraceReturnsMalformedWithLocation()
    {
        var r = Replay("machine vcpus=1\n0 frobnicate 1\n");
        Assert.Equal(ReplayOutcome.Malformed, r.Outcome);
        Assert.Contains("t.trace:2:", Assert.Single(r.Messages));
    }

    [Fact]
    public void UnexpectedFaultOnWriteFails()
    {
        var r = Replay("machine vcpus=1\n0 wrmsr 0x808 0\n");
        Assert.Equal(ReplayOutcome.Failed, r.Outcome);
        Assert.All(r.Messages, m => Assert.Contains("#GP", m));
    }

    [Fact]
    public void ExpectedFaultPasses()
    {
        var r = Replay("machine vcpus=1\n0 wrmsr 0x808 0 !gp\n0 rdmsr 0x802 !gp\n");
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
    }

    [Fact]
    public void ObservationsWithoutExpectationArePrinted()
    {
        var output = new StringWriter();
        var r = Replay("machine vcpus=1\n0 read 0xfee00020\n0 accept\n", quiet: false, output);
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
        string text = output.ToString();
        Assert.Contains("t.trace:2:1: 0 read 0xfee00020 -> 0x0", text);
        Assert.Contains("-> none", text);
    }

    [Fact]
    public void TimeSaturatesInsteadOfOverflowing()
    {
        var r = Replay("machine vcpus=1\ntime +0x7ffffffffffffff0\ntime +0x20\n0 rdmsr 0x10 = 0x7fffffffffffffff\n");
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
    }

    [Fact]
    public void IoApicCommandsGoThroughIoRegSelAndIoWin()
    {
        var r = Replay("""
            machine vcpus=1
            ioapic write 0x10 0x31
            0 read 0xfec00000 = 0x10
            0 read 0xfec00010 = 0x31
            ioapic read 1 = 0x00170020
            """);
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
    }
}

public class Cr8FaultTests
{
    [Fact]
    public void WrCr8WithReservedBitsFaultsAndChangesNothing()
    {
        var r = new ReplaySession(TextWriter.Null, quiet: true).RunText("cr8.trace", """
            machine vcpus=1
            0 wrcr8 5
            0 wrcr8 0x10 !gp
            0 rdcr8 = 5
            0 read 0xfee00080 = 0x50
            """, ReplayMode.Available);
        Assert.Equal(ReplayOutcome.Passed, r.Outcome);
    }

    [Fact]
    public void WrCr8FaultWithoutExpectationFailsTheReplay()
    {
        var r = new ReplaySession(TextWriter.Null, quiet: true).RunText("cr8.trace", "machine vcpus=1\n0 wrcr8 0x10\n", ReplayMode.Available);
        Assert.Equal(ReplayOutcome.Failed, r.Outcome);
    }
}
