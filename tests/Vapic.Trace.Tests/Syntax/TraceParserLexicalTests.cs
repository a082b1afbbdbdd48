using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>The lexical rules: comments, blank lines, separators, numbers, locations.</summary>
public sealed class TraceParserLexicalTests
{
    [Fact]
    public void CommentsAndBlankLines_AreIgnored()
    {
        TraceDocument document = ParseValid(
            "# A comment before the machine line.\n"
            + "\n"
            + "machine vcpus=2   # trailing comment\n"
            + "    # indented comment\n"
            + "\t   \n"
            + "0 accept# comment right after a token\n"
            + "#0 accept\n");

        TraceCommand command = Assert.Single(document.Commands);
        Assert.Equal(TraceCommandKind.Accept, command.Kind);
        Assert.Equal(6, command.Location.Line);
    }

    [Fact]
    public void TabsAndRepeatedSpaces_SeparateTokens()
    {
        TraceCommand command = ParseSingle("\t0\t\twrite  0xfee00080 \t 0x20\t");

        Assert.Equal(TraceCommandKind.MmioWrite, command.Kind);
        Assert.Equal(0xFEE0_0080UL, command.A);
        Assert.Equal(0x20UL, command.B);
    }

    [Theory]
    [InlineData("0 read 0xfee00020 = 0x0")]
    [InlineData("0 read 0xfee00020 =0x0")]
    [InlineData("0 read 0xfee00020=0x0")]
    [InlineData("0 read 0xfee00020=  0x0")]
    public void EqualsSign_IsATokenOfItsOwn(string line)
    {
        Assert.Equal(Expectation.OfValue(0), ParseSingle(line).Expectation);
    }

    [Theory]
    [InlineData("42", 42UL)]
    [InlineData("0x2a", 0x2AUL)]
    [InlineData("0x2A", 0x2AUL)]
    [InlineData("1_000_000", 1_000_000UL)]
    [InlineData("0xfee0_0000", 0xFEE0_0000UL)]
    [InlineData("007", 7UL)]
    [InlineData("0x0000000000000000001", 1UL)]
    [InlineData("18446744073709551615", ulong.MaxValue)]
    [InlineData("0xffff_ffff_ffff_ffff", ulong.MaxValue)]
    [InlineData("0xFFFFFFFFFFFFFFFF", ulong.MaxValue)]
    public void Numbers_DecimalHexAndSeparators(string number, ulong value)
    {
        Assert.Equal(value, ParseSingle("0 wrmsr 0x10 " + number).B);
    }

    [Theory]
    [InlineData("18446744073709551616")]
    [InlineData("99999999999999999999")]
    [InlineData("0x1_0000_0000_0000_0000")]
    [InlineData("0x10000000000000000")]
    public void Numbers_AboveSixtyFourBits_AreRejectedAtTheNumber(string number)
    {
        TraceParseError error = AssertError("machine vcpus=1\n0 wrmsr 0x10 " + number, TraceErrorKind.NumberTooLarge, 2, 14);

        Assert.Contains("64 bits", error.Message);
    }

    [Theory]
    [InlineData("1__0")]
    [InlineData("_1")]
    [InlineData("1_")]
    [InlineData("0x")]
    [InlineData("0x_1")]
    [InlineData("0X10")]
    [InlineData("12ab")]
    [InlineData("0xfg")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData("1.5")]
    [InlineData("0b101")]
    public void Numbers_Malformed_AreRejectedAtTheNumber(string number)
    {
        AssertError("machine vcpus=1\n0 wrmsr 0x10 " + number, TraceErrorKind.InvalidNumber, 2, 14);
    }

    [Fact]
    public void Location_IsTheFirstTokenOfTheCommand()
    {
        TraceDocument document = ParseValid("machine vcpus=2\n\n   1 accept\n\tirq 4 high\n");

        Assert.Equal(new SourceLocation(FileName, 3, 4), document.Commands[0].Location);
        Assert.Equal(new SourceLocation(FileName, 4, 2), document.Commands[1].Location);
        Assert.Equal("test.trace:3:4", document.Commands[0].Location.ToString());
    }

    [Fact]
    public void SourceLine_IsTheLineAsWritten_WithoutItsTerminator()
    {
        TraceDocument document = ParseValid("machine vcpus=1\r\n  0 rdcr8 = 0  # tpr\r\ntime +5");

        Assert.Equal("  0 rdcr8 = 0  # tpr", document.Commands[0].SourceLine.ToString());
        Assert.Equal("time +5", document.Commands[1].SourceLine.ToString());
    }

    [Fact]
    public void Equality_IncludesTheLocation_SameOperationDoesNot()
    {
        TraceDocument document = ParseValid("machine vcpus=1\n0 accept = 0x31\n0 accept = 0x31\n");
        TraceCommand built = new(TraceCommandKind.Accept, 0, 0, 0, Expectation.OfEvent(new Machine.CpuEvent(Machine.CpuEventKind.Fixed, 0x31)));

        Assert.NotEqual(document.Commands[0], document.Commands[1]);
        Assert.True(document.Commands[0].IsSameOperation(document.Commands[1]));
        Assert.True(built.IsSameOperation(document.Commands[0]));
        Assert.Equal(default, built.Location);
        Assert.True(built.SourceLine.IsEmpty);
    }

    [Fact]
    public void CrLfLineEndings_AreAccepted()
    {
        TraceDocument document = ParseValid("machine vcpus=1\r\n0 read 0xfee00020 = 0\r\n\r\ntime +1\r\n");

        Assert.Equal(2, document.Commands.Length);
        Assert.Equal(4, document.Commands[1].Location.Line);
    }

    [Fact]
    public void StrayCarriageReturns_SeparateTokens()
    {
        TraceDocument document = ParseValid("machine vcpus=1\r\r\n0\raccept\r\r\n\r\n");

        TraceCommand command = Assert.Single(document.Commands);
        Assert.Equal(TraceCommandKind.Accept, command.Kind);
        Assert.Equal("0\raccept\r", command.SourceLine.ToString());
    }

    [Fact]
    public void ByteOrderMark_AtTheStart_IsSkipped()
    {
        TraceDocument document = ParseValid("\uFEFFmachine vcpus=1\n");

        Assert.Equal(new SourceLocation(FileName, 1, 1), document.Machine.Location);
    }

    [Fact]
    public void MachineOnly_GivesAnEmptyCommandList()
    {
        TraceDocument document = ParseValid("machine vcpus=1");

        Assert.Empty(document.Commands);
        Assert.Equal(FileName, document.FileName);
    }

    [Fact]
    public void ErrorAfterCommentsAndBlankLines_NamesItsOwnLine()
    {
        const string Text = "# header\nmachine vcpus=2\n\n# setup\n0 write 0xfee000f0 0x1ff\n\n\t1 raed 0xfee00020\n0 accept\n";

        AssertError(Text, TraceErrorKind.UnknownCommand, 7, 4);
    }

    [Fact]
    public void Parse_LargeTrace_AllocatesOnlyTheCommandArray()
    {
        // The replay target is millions of lines per second: no allocation per line or token.
        const int Lines = 20_000;
        var builder = new System.Text.StringBuilder("machine vcpus=4\n");
        for (int i = 0; i < Lines; i++)
        {
            builder.Append(i % 4).Append(" read 0xfee00020 = 0x0  # id\n");
        }

        string text = builder.ToString();
        ParseValid(text);

        long before = GC.GetAllocatedBytesForCurrentThread();
        TraceParseResult result = TraceParser.Parse(FileName, text);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(result.Succeeded);
        int commandSize = System.Runtime.CompilerServices.Unsafe.SizeOf<TraceCommand>();

        // The exactly sized command array and a few small objects: nothing per line, no trimming copy.
        Assert.InRange(allocated, Lines * commandSize, (Lines * commandSize) + 4096);
    }
}
