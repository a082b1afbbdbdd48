using CsCheck;
using Vapic.Machine;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// The trace commands for hypervisor-originated injections (<c>hv inject &lt;cpu&gt; VECTOR</c>,
/// <c>hv nmi &lt;cpu&gt;</c>, docs/trace-format.md "Hypervisor injections"), how every mode runs them,
/// the savic-only scenarios, and how a replay skips a mode that cannot apply.
/// </summary>
public class HypervisorInjectionTraceTests
{
    private static readonly string ScenarioRoot = Path.Combine(TraceSuite.Root, "..", "Vapic.Virtualization.Tests", "SecureAvic", "Scenarios");

    [Fact]
    public void HvCommandsParseAndFormatCanonically()
    {
        TraceDocument d = ParseOk("machine vcpus=2\nhv inject 1 0x41\nhv   nmi 0 # a comment\nhv inject 0 255\n");

        TraceCommand inject = d.Commands[0];
        Assert.Equal(TraceCommandKind.HypervisorInject, inject.Kind);
        Assert.Equal(1, inject.Cpu);
        Assert.Equal(0x41UL, inject.A);
        Assert.Equal("hv inject 1 0x41", TraceFormatter.Format(inject));

        TraceCommand nmi = d.Commands[1];
        Assert.Equal(TraceCommandKind.HypervisorNmi, nmi.Kind);
        Assert.Equal(0, nmi.Cpu);
        Assert.Equal("hv nmi 0", TraceFormatter.Format(nmi));
        Assert.Equal("hv inject 0 0xff", TraceFormatter.Format(d.Commands[2]));
    }

    [Theory]
    [InlineData("hv inject 2 0x41", TraceErrorKind.CpuOutOfRange, 11)]
    [InlineData("hv nmi 7", TraceErrorKind.CpuOutOfRange, 8)]
    [InlineData("hv inject 0 0x100", TraceErrorKind.ValueOutOfRange, 13)]
    [InlineData("hv inject 0", TraceErrorKind.MissingOperand, 12)]
    [InlineData("hv nmi", TraceErrorKind.MissingOperand, 7)]
    [InlineData("hv", TraceErrorKind.MissingOperand, 3)]
    [InlineData("hv injct 0 0x41", TraceErrorKind.UnknownKeyword, 4)]
    [InlineData("hv inject 0 0x41 = 0x41", TraceErrorKind.ExpectationNotAllowed, 18)]
    [InlineData("hv nmi 0 !gp", TraceErrorKind.GeneralProtectionNotAllowed, 10)]
    [InlineData("hv nmi 0 1", TraceErrorKind.UnexpectedToken, 10)]
    [InlineData("0 hv inject 0 0x41", TraceErrorKind.CpuNotAllowed, 3)]
    public void MalformedHvCommandsAreRejectedWithTheirPlace(string line, TraceErrorKind kind, int column)
    {
        TraceParseResult parsed = TraceParser.Parse("hv.trace", "machine vcpus=2\n" + line + "\n");
        Assert.False(parsed.Succeeded);
        TraceParseError error = Assert.Single(parsed.Errors);
        Assert.Equal(kind, error.Kind);
        Assert.Equal(2, error.Location.Line);
        Assert.Equal(column, error.Location.Column);
    }

    [Fact]
    public void AMistypedOperationGetsAHint()
    {
        TraceParseResult parsed = TraceParser.Parse("hv.trace", "machine vcpus=1\nhv injet 0 1\n");
        Assert.Contains("'inject'", parsed.Errors[0].Message);
    }

    [Fact]
    public void RandomHvCommandsRoundTripThroughTheFormatter() =>
        Gen.Select(Gen.Bool, Gen.Int[0, 4095], Gen.Byte).Sample((inject, cpu, vector) =>
        {
            var command = new TraceCommand(inject ? TraceCommandKind.HypervisorInject : TraceCommandKind.HypervisorNmi, cpu, inject ? vector : 0UL, 0, Expectation.None);
            string text = TraceFormatter.Format(command);
            TraceCommand parsed = ParseOk($"machine vcpus=4096\n{text}\n").Commands[0];
            Assert.True(parsed.IsSameOperation(command), text);
        });

    // In every mode but savic the hypervisor's injection is delivered like a device interrupt: a
    // fixed edge vector to that vCPU alone, or an NMI; vectors 0-15 are refused as from any device.
    [Fact]
    public void OutsideSecureAvicHvInjectDeliversLikeADeviceInterruptToThatVcpuAlone()
    {
        const string Text = """
            machine vcpus=2 force-x2apic
            0 wrmsr 0x80f 0x1ff
            0 wrmsr 0x830 0x0000000100004500
            1 accept = init
            0 wrmsr 0x830 0x0000000100004608
            1 accept = sipi 0x08
            1 wrmsr 0x80f 0x1ff
            hv inject 1 0x41
            0 accept = none
            1 accept = 0x41
            1 wrmsr 0x80b 0
            hv nmi 0
            1 accept = none
            0 accept = nmi
            hv inject 0 0x05
            0 accept = none
            0 wrmsr 0x828 0
            0 rdmsr 0x828 = 0x40
            """;
        TraceDocument document = ParseOk(Text);
        foreach (string name in ModeRegistry.Available.Where(m => m != "savic"))
        {
            ModeRun run = TraceReplayer.Run(document, ModeRegistry.Create(name));
            Assert.True(run.Passed, $"{name}: {run.Failure}");
        }
    }

    [Fact]
    public void TheSavicOnlyScenariosHoldUnderSecureAvicAndNotUnderEmulation()
    {
        string[] files = [.. Directory.EnumerateFiles(ScenarioRoot, "*.trace").Order(StringComparer.Ordinal)];
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            TraceParseResult parsed = TraceParser.ParseFile(file);
            Assert.True(parsed.Succeeded, string.Join(Environment.NewLine, parsed.Errors));
            var mode = new SecureAvicMode();
            ModeRun savic = TraceReplayer.Run(parsed.Document!, mode);
            Assert.True(savic.Passed, savic.Failure?.ToString());
            Assert.Null(mode.InapplicableReason);
            Assert.True(mode.Counters.HypervisorInjectionsBlocked > 0);

            // The hypervisor's injections are what tells the modes apart.
            Assert.False(TraceReplayer.Run(parsed.Document!, new EmulatedMode()).Passed);
        }
    }

    [Fact]
    public void AReplayReportsSavicAsSkippedOnAnXApicTraceAndPassesTheFile()
    {
        const string Text = "machine vcpus=1\n0 write 0xfee000f0 0x1ff\n0 read 0xfee00080 = 0\n";
        FileReplayResult result = new ReplaySession(TextWriter.Null, quiet: true).RunText("x.trace", Text, ReplayMode.Available);

        Assert.Equal(ReplayOutcome.Passed, result.Outcome);
        ModeSkip skip = Assert.Single(result.Skipped);
        Assert.Equal("savic", skip.Mode);
        Assert.Equal(2, skip.Location.Line);
        Assert.StartsWith("x2APIC only", skip.Reason);
        Assert.Equal("x.trace:2:1: skipped (savic: " + skip.Reason + ")", skip.ToString());
        Assert.True(result.IsSkipped("savic"));
        Assert.False(result.IsSkipped("emulated"));
        Assert.Empty(result.Messages);
    }

    [Fact]
    public void ASkipIsNotAFailureEvenWhenTheModeRunsAlone()
    {
        const string Text = "machine vcpus=1\n0 read 0xfee00030 = 0x12345678\n";
        FileReplayResult savicOnly = new ReplaySession(TextWriter.Null, quiet: true).RunText("x.trace", Text, ["savic"]);
        Assert.Equal(ReplayOutcome.Passed, savicOnly.Outcome);
        Assert.Single(savicOnly.Skipped);

        // The other modes still fail the wrong expectation.
        FileReplayResult all = new ReplaySession(TextWriter.Null, quiet: true).RunText("x.trace", Text, ReplayMode.Available);
        Assert.Equal(ReplayOutcome.Failed, all.Outcome);
        Assert.Equal(ReplayMode.Available.Count - 1, all.Messages.Count);
    }

    [Fact]
    public void ModesThatDisagreeAfterAHostileInjectionAreReportedByReplayAll()
    {
        // savic drops the injection, emulation delivers it: --mode all names the difference.
        const string Text = "machine vcpus=1 force-x2apic\n0 wrmsr 0x80f 0x1ff\nhv inject 0 0x41\n0 accept\n";
        FileReplayResult result = new ReplaySession(TextWriter.Null, quiet: true).RunText("h.trace", Text, ["emulated", "savic"]);
        Assert.Equal(ReplayOutcome.Failed, result.Outcome);
        Assert.Contains("differs between modes", Assert.Single(result.Messages));
    }

    private static TraceDocument ParseOk(string text)
    {
        TraceParseResult parsed = TraceParser.Parse("hv.trace", text);
        Assert.True(parsed.Succeeded, string.Join(Environment.NewLine, parsed.Errors));
        return parsed.Document!;
    }
}
