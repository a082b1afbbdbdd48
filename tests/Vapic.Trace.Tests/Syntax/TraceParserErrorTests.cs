using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>
/// Every class of malformed command is rejected with the right kind, at the exact line and column
/// of the offending token. Each case is the second line of a two-CPU machine.
/// </summary>
public sealed class TraceParserErrorTests
{
    private const string Machine = "machine vcpus=2\n";

    [Theory]
    // Unknown commands, including likely typos.
    [InlineData("foo", TraceErrorKind.UnknownCommand, 1)]
    [InlineData("0 raed 0xfee00020", TraceErrorKind.UnknownCommand, 3)]
    [InlineData("0 READ 0xfee00020", TraceErrorKind.UnknownCommand, 3)]
    [InlineData("= 5", TraceErrorKind.UnknownCommand, 1)]
    [InlineData("  iqr 3 high", TraceErrorKind.UnknownCommand, 3)]
    // CPU index.
    [InlineData("2 state", TraceErrorKind.CpuOutOfRange, 1)]
    [InlineData("   7 accept", TraceErrorKind.CpuOutOfRange, 4)]
    [InlineData("0x 0 state", TraceErrorKind.InvalidNumber, 1)]
    [InlineData("read 0xfee00020", TraceErrorKind.MissingCpu, 1)]
    [InlineData("0 irq 3 high", TraceErrorKind.CpuNotAllowed, 3)]
    [InlineData("1 time +5", TraceErrorKind.CpuNotAllowed, 3)]
    [InlineData("machine vcpus=2", TraceErrorKind.DuplicateMachine, 1)]
    // Missing operands point just past the last token (or at the comment).
    [InlineData("0", TraceErrorKind.MissingOperand, 2)]
    [InlineData("0 read", TraceErrorKind.MissingOperand, 7)]
    [InlineData("0 read   # no address", TraceErrorKind.MissingOperand, 10)]
    [InlineData("0 write 0xfee000b0", TraceErrorKind.MissingOperand, 19)]
    [InlineData("0 wrmsr 0x80b = 0", TraceErrorKind.MissingOperand, 15)]
    [InlineData("irq 3", TraceErrorKind.MissingOperand, 6)]
    [InlineData("ioapic", TraceErrorKind.MissingOperand, 7)]
    [InlineData("time", TraceErrorKind.MissingOperand, 5)]
    [InlineData("0 accept =", TraceErrorKind.MissingOperand, 11)]
    [InlineData("0 accept = sipi", TraceErrorKind.MissingOperand, 16)]
    // Alignment and ranges.
    [InlineData("0 read 0xfee00022", TraceErrorKind.MisalignedAddress, 8)]
    [InlineData("1 write 0xfee000b1 0", TraceErrorKind.MisalignedAddress, 9)]
    [InlineData("0 write 0xfee000b0 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 20)]
    [InlineData("0 read 0xfee00020 = 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 21)]
    [InlineData("0 rdmsr 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 9)]
    [InlineData("0 wrmsr 0x1_0000_0000 0", TraceErrorKind.ValueOutOfRange, 9)]
    [InlineData("ioapic write 0x100 0", TraceErrorKind.ValueOutOfRange, 14)]
    [InlineData("ioapic write 0x10 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 19)]
    [InlineData("ioapic read 0x10 = 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 20)]
    [InlineData("irq 24 high", TraceErrorKind.ValueOutOfRange, 5)]
    [InlineData("0 lint 2 high", TraceErrorKind.ValueOutOfRange, 8)]
    [InlineData("0 accept = 0x100", TraceErrorKind.ValueOutOfRange, 12)]
    [InlineData("0 accept = sipi 0x100", TraceErrorKind.ValueOutOfRange, 17)]
    [InlineData("msi 0xfec00000 0x31", TraceErrorKind.ValueOutOfRange, 5)]
    [InlineData("msi 0x1_fee0_0000 0x31", TraceErrorKind.ValueOutOfRange, 5)]
    [InlineData("msi 0xfee00000 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 16)]
    [InlineData("0 read 18446744073709551616", TraceErrorKind.NumberTooLarge, 8)]
    [InlineData("time +0x1_0000_0000_0000_0000", TraceErrorKind.NumberTooLarge, 6)]
    // Keywords.
    [InlineData("irq 3 hgih", TraceErrorKind.UnknownKeyword, 7)]
    [InlineData("0 lint 0 HIGH", TraceErrorKind.UnknownKeyword, 10)]
    [InlineData("ioapic rd 0x10", TraceErrorKind.UnknownKeyword, 8)]
    [InlineData("0 accept = nmii", TraceErrorKind.UnknownKeyword, 12)]
    [InlineData("0 state = halted", TraceErrorKind.UnknownKeyword, 11)]
    [InlineData("0 read 0xfee00020 = unmaped", TraceErrorKind.UnknownKeyword, 21)]
    [InlineData("0 rdmsr 0x10 !pg", TraceErrorKind.UnknownKeyword, 14)]
    // Numbers where keywords do not belong and vice versa.
    [InlineData("0 read 0xfee00020 = 0xzz", TraceErrorKind.InvalidNumber, 21)]
    [InlineData("ioapic read 0x10 = unmapped", TraceErrorKind.InvalidNumber, 20)]
    [InlineData("0 rdcr8 = unmapped", TraceErrorKind.InvalidNumber, 11)]
    [InlineData("0 lint high 0", TraceErrorKind.InvalidNumber, 8)]
    [InlineData("time 100", TraceErrorKind.InvalidNumber, 6)]
    [InlineData("time + 100", TraceErrorKind.InvalidNumber, 6)]
    [InlineData("time +1x", TraceErrorKind.InvalidNumber, 6)]
    // Expectations and !gp where the command does not take them.
    [InlineData("0 write 0xfee000b0 0 = 0", TraceErrorKind.ExpectationNotAllowed, 22)]
    [InlineData("0 wrmsr 0x80b 0 = 0", TraceErrorKind.ExpectationNotAllowed, 17)]
    [InlineData("0 wrcr8 5 = 5", TraceErrorKind.ExpectationNotAllowed, 11)]
    [InlineData("irq 3 high = 1", TraceErrorKind.ExpectationNotAllowed, 12)]
    [InlineData("0 wrmsr 0x80b 0 !gp = 0", TraceErrorKind.ExpectationNotAllowed, 21)]
    [InlineData("0 write 0xfee000b0 0 !gp", TraceErrorKind.GeneralProtectionNotAllowed, 22)]
    [InlineData("0 read 0xfee00020 !gp", TraceErrorKind.GeneralProtectionNotAllowed, 19)]
    [InlineData("0 rdcr8 !gp", TraceErrorKind.GeneralProtectionNotAllowed, 9)]
    [InlineData("ioapic read 0x10 !gp", TraceErrorKind.GeneralProtectionNotAllowed, 18)]
    // Trailing garbage.
    [InlineData("0 accept = 0x31 extra", TraceErrorKind.UnexpectedToken, 17)]
    [InlineData("time +10 +20", TraceErrorKind.UnexpectedToken, 10)]
    [InlineData("0 read 0xfee00020 0x5", TraceErrorKind.UnexpectedToken, 19)]
    [InlineData("0 write 0xfee000b0 0 5", TraceErrorKind.UnexpectedToken, 22)]
    [InlineData("0 state = running,", TraceErrorKind.UnexpectedToken, 18)]
    [InlineData("0 rdmsr 0x10 = 5 !gp", TraceErrorKind.UnexpectedToken, 18)]
    [InlineData("0 rdmsr 0x10 !gp = 5", TraceErrorKind.UnexpectedToken, 18)]
    [InlineData("0 accept = nmi 5", TraceErrorKind.UnexpectedToken, 16)]
    public void MalformedCommand_IsRejectedAtTheOffendingToken(string line, TraceErrorKind kind, int column)
    {
        AssertError(Machine + line + "\n0 accept\n", kind, 2, column);
    }

    [Theory]
    [InlineData("0 raed 0xfee00020", "did you mean 'read'?")]
    [InlineData("0 wrmrs 0x10 0", "did you mean 'wrmsr'?")]
    [InlineData("0 READ 0xfee00020", "keywords are lower case: did you mean 'read'?")]
    [InlineData("iqr 3 high", "did you mean 'irq'?")]
    [InlineData("irq 3 hgih", "did you mean 'high'?")]
    [InlineData("0 accept = nmii", "did you mean 'nmi'?")]
    [InlineData("0 state = wait-for-sip", "did you mean 'wait-for-sipi'?")]
    [InlineData("0 read 0xfee00020 = unmaped", "did you mean 'unmapped'?")]
    [InlineData("0 rdmsr 0x10 !pg", "did you mean '!gp'?")]
    [InlineData("ioapic wirte 0x10 0", "did you mean 'write'?")]
    public void LikelyTypo_NamesTheNearestKeyword(string line, string suggestion)
    {
        TraceParseError error = ParseInvalid(Machine + line);

        Assert.EndsWith(suggestion, error.Message);
    }

    [Fact]
    public void UnrelatedWord_ListsTheKeywordsInsteadOfGuessing()
    {
        TraceParseError error = ParseInvalid(Machine + "irq 3 sideways");

        Assert.Equal("unknown line action 'sideways'; expected 'high', 'low' or 'pulse'", error.Message);
    }

    [Fact]
    public void UnknownEvent_ListsTheEventsAndVectors()
    {
        TraceParseError error = ParseInvalid(Machine + "0 accept = irq");

        Assert.Equal("unknown event 'irq'; expected 'none', 'smi', 'init', 'nmi', 'extint', 'sipi' or a vector", error.Message);
    }

    [Fact]
    public void CpuOutOfRange_SaysWhichCpusExist()
    {
        TraceParseError error = ParseInvalid(Machine + "5 accept");

        Assert.Equal("CPU 5 does not exist: the machine has CPUs 0 to 1", error.Message);
    }

    [Fact]
    public void Error_ToString_IsFileLineColumnAndMessage()
    {
        TraceParseError error = ParseInvalid(Machine + "0 read 0xfee00022");

        Assert.Equal("test.trace:2:8: ADDR '0xfee00022' is not 4-byte aligned (MMIO accesses are 32-bit and aligned)", error.ToString());
    }

    [Fact]
    public void GeneralProtectionOnMmioWrite_ExplainsWhereItIsAllowed()
    {
        TraceParseError error = ParseInvalid(Machine + "0 write 0xfee00080 0x10 !gp");

        Assert.Equal("'!gp' is only allowed on rdmsr, wrmsr and wrcr8, not on 'write'", error.Message);
    }

    [Fact]
    public void VirtualTimePastTwoToTheSixtyFour_IsRejectedAtTheSecondTime()
    {
        AssertError(Machine + "time +0xffff_ffff_ffff_ffff\n# later\ntime +1\n", TraceErrorKind.ValueOutOfRange, 4, 6);
    }

    [Fact]
    public void OnlyTheFirstError_IsReported()
    {
        TraceParseResult result = TraceParser.Parse(FileName, Machine + "0 raed 0\n9 accept\n");

        TraceParseError error = Assert.Single(result.Errors);
        Assert.Equal(2, error.Location.Line);
    }
}
