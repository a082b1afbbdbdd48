using Vapic.Machine;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>
/// Vapic's documented additions to the version-1 machine line: <c>tsc-offset=N</c> (a signed 64-bit
/// offset) and <c>vendor=intel|amd</c> (docs/trace-format.md, "Additions to version 1").
/// </summary>
public sealed class MachineExtensionTests
{
    [Fact]
    public void Defaults_AreOffsetZeroAndIntel()
    {
        MachineDirective machine = ParseValid("machine vcpus=1").Machine;

        Assert.Equal(0, machine.TscOffset);
        Assert.Equal(CpuVendor.Intel, machine.Vendor);
        MachineOptions options = machine.ToMachineOptions();
        Assert.Equal(0, options.TscOffset);
        Assert.Equal(CpuVendor.Intel, options.CpuVendor);
    }

    [Theory]
    [InlineData("tsc-offset=1000", 1000L)]
    [InlineData("tsc-offset=0x10", 16L)]
    [InlineData("tsc-offset=1_000_000", 1_000_000L)]
    [InlineData("tsc-offset=-1000", -1000L)]
    [InlineData("tsc-offset=-0x10", -16L)]
    [InlineData("tsc-offset=-0", 0L)]
    [InlineData("tsc-offset = -5", -5L)]
    [InlineData("tsc-offset=0x7fffffffffffffff", long.MaxValue)]
    [InlineData("tsc-offset=-0x8000000000000000", long.MinValue)]
    [InlineData("tsc-offset=-9223372036854775808", long.MinValue)]
    public void TscOffset_IsASigned64BitNumber(string option, long expected)
    {
        MachineDirective machine = ParseValid($"machine vcpus=2 {option}").Machine;

        Assert.Equal(expected, machine.TscOffset);
        Assert.Equal(expected, machine.ToMachineOptions().TscOffset);
    }

    [Theory]
    [InlineData("vendor=intel", CpuVendor.Intel)]
    [InlineData("vendor=amd", CpuVendor.Amd)]
    [InlineData("vendor = amd", CpuVendor.Amd)]
    public void Vendor_IsIntelOrAmd(string option, CpuVendor expected)
    {
        MachineDirective machine = ParseValid($"machine vcpus=1 {option}").Machine;

        Assert.Equal(expected, machine.Vendor);
        Assert.Equal(expected, machine.ToMachineOptions().CpuVendor);
    }

    [Fact]
    public void AllOptionsTogether_InAnyOrder()
    {
        MachineDirective machine = ParseValid("machine vendor=amd tsc-offset=-7 force-x2apic vcpus=2 ids=3,4 ioapic-version=0x11").Machine;

        Assert.Equal(CpuVendor.Amd, machine.Vendor);
        Assert.Equal(-7, machine.TscOffset);
        Assert.True(machine.ForceX2Apic);
        Assert.Equal([3u, 4u], machine.ApicIds);
        Assert.Equal(0x11, machine.IoApicVersion);
    }

    [Fact]
    public void Equality_ComparesTheNewOptions()
    {
        MachineDirective a = ParseValid("machine vcpus=1 tsc-offset=5 vendor=amd").Machine;
        MachineDirective b = ParseValid("machine vcpus=1 tsc-offset=5 vendor=amd").Machine;
        MachineDirective otherOffset = ParseValid("machine vcpus=1 tsc-offset=6 vendor=amd").Machine;
        MachineDirective otherVendor = ParseValid("machine vcpus=1 tsc-offset=5 vendor=intel").Machine;

        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, otherOffset);
        Assert.NotEqual(a, otherVendor);
    }

    [Theory]
    [InlineData("machine vcpus=1 tsc-offset=1 tsc-offset=2", TraceErrorKind.DuplicateOption, 30, "'tsc-offset' is given twice")]
    [InlineData("machine vcpus=1 vendor=amd vendor=amd", TraceErrorKind.DuplicateOption, 28, "'vendor' is given twice")]
    [InlineData("machine vcpus=1 tsc-offset=", TraceErrorKind.MissingOperand, 28, "'tsc-offset' needs the TSC offset N (a signed 64-bit number), found the end of the line")]
    [InlineData("machine vcpus=1 tsc-offset 5", TraceErrorKind.MissingOperand, 28, "expected '=' after 'tsc-offset', found '5'")]
    [InlineData("machine vcpus=1 tsc-offset=five", TraceErrorKind.InvalidNumber, 28, "the TSC offset must be a decimal or 0x hexadecimal number, optionally after '-', not 'five'")]
    [InlineData("machine vcpus=1 tsc-offset=-", TraceErrorKind.InvalidNumber, 28, "the TSC offset must be a decimal or 0x hexadecimal number, optionally after '-', not '-'")]
    [InlineData("machine vcpus=1 tsc-offset=--5", TraceErrorKind.InvalidNumber, 28, "the TSC offset must be a decimal or 0x hexadecimal number, optionally after '-', not '--5'")]
    [InlineData("machine vcpus=1 tsc-offset=+5", TraceErrorKind.InvalidNumber, 28, "the TSC offset must be a decimal or 0x hexadecimal number, optionally after '-', not '+5'")]
    [InlineData("machine vcpus=1 tsc-offset=0x10000000000000000", TraceErrorKind.NumberTooLarge, 28, "the TSC offset '0x10000000000000000' does not fit in 64 bits")]
    [InlineData("machine vcpus=1 tsc-offset=0x8000000000000000", TraceErrorKind.ValueOutOfRange, 28, "the TSC offset '0x8000000000000000' must be between -0x8000000000000000 and 0x7fffffffffffffff (a signed 64-bit number; write a negative offset with '-')")]
    [InlineData("machine vcpus=1 tsc-offset=-0x8000000000000001", TraceErrorKind.ValueOutOfRange, 28, "the TSC offset '-0x8000000000000001' must be between -0x8000000000000000 and 0x7fffffffffffffff (a signed 64-bit number; write a negative offset with '-')")]
    [InlineData("machine vcpus=1 vendor=", TraceErrorKind.MissingOperand, 24, "'vendor' needs 'intel' or 'amd', found the end of the line")]
    [InlineData("machine vcpus=1 vendor=AMD", TraceErrorKind.UnknownKeyword, 24, "unknown CPU vendor 'AMD'; keywords are lower case: did you mean 'amd'?")]
    [InlineData("machine vcpus=1 vendor=intl", TraceErrorKind.UnknownKeyword, 24, "unknown CPU vendor 'intl'; did you mean 'intel'?")]
    [InlineData("machine vcpus=1 vendor=via", TraceErrorKind.UnknownKeyword, 24, "unknown CPU vendor 'via'; expected 'intel' or 'amd'")]
    [InlineData("machine vcpus=1 vendor=1", TraceErrorKind.UnknownKeyword, 24, "unknown CPU vendor '1'; expected 'intel' or 'amd'")]
    public void Errors_NameTheTokenAndWhatIsWrong(string line, TraceErrorKind kind, int column, string message)
    {
        TraceParseError error = AssertError(line, kind, 1, column);

        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void MisspelledOption_SuggestsTheNewOnes()
    {
        Assert.Equal("unknown machine option 'vendr'; did you mean 'vendor'?", ParseInvalid("machine vcpus=1 vendr=amd").Message);
        Assert.Equal("unknown machine option 'tsc-ofset'; did you mean 'tsc-offset'?", ParseInvalid("machine vcpus=1 tsc-ofset=1").Message);
    }

    [Fact]
    public void Replay_ReadsTheOffsetAndTheVendor()
    {
        var session = new ReplaySession(TextWriter.Null, quiet: true);
        FileReplayResult result = session.RunText(
            FileName,
            """
            machine vcpus=1 tsc-offset=-1000 vendor=amd
            0 rdmsr 0x10 = 0xfffffffffffffc18
            0 rdmsr 0x10a !gp
            0 rdmsr 0xbd !gp
            time +1500
            0 rdmsr 0x10 = 500
            """,
            [ReplayMode.Emulated]);

        Assert.True(result.Outcome == ReplayOutcome.Passed, string.Join(Environment.NewLine, result.Messages));
    }
}

public class MachineExtensionFormatTests
{
    [Theory]
    [InlineData("machine vcpus=2 tsc-offset=-1000 vendor=amd")]
    [InlineData("machine vcpus=1 tsc-offset=5")]
    [InlineData("machine vcpus=1 vendor=amd")]
    public void TscOffsetAndVendorSurviveTheCanonicalForm(string line)
    {
        var parsed = Vapic.Trace.Syntax.TraceParser.Parse("m.trace", line + "\n");
        Xunit.Assert.True(parsed.Succeeded);
        string formatted = Vapic.Trace.Syntax.TraceFormatter.Format(parsed.Document.Machine);
        var again = Vapic.Trace.Syntax.TraceParser.Parse("m.trace", formatted + "\n");
        Xunit.Assert.True(again.Succeeded);
        Xunit.Assert.Equal(parsed.Document.Machine with { Location = default }, again.Document.Machine with { Location = default });
        Xunit.Assert.Equal(line, formatted);
    }
}
