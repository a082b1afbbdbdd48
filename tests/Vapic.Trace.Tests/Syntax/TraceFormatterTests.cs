using CsCheck;
using Vapic.Machine;
using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>The canonical form, and parse → format → parse round trips.</summary>
public sealed class TraceFormatterTests
{
    private const string WideMachine = "machine vcpus=4096";

    [Theory]
    [InlineData("0   read  0xFEE0_0020", "0 read 0xfee00020")]
    [InlineData("2 read 0xfee00020 =0x0200_0000", "2 read 0xfee00020 = 0x2000000")]
    [InlineData("1 read 4276092976 = unmapped", "1 read 0xfee00030 = unmapped")]
    [InlineData("0 write 0xfee000f0 511", "0 write 0xfee000f0 0x1ff")]
    [InlineData("0 rdmsr 27 = 0xfee00900", "0 rdmsr 0x1b = 0xfee00900")]
    [InlineData("0 rdmsr 0xbd   !gp", "0 rdmsr 0xbd !gp")]
    [InlineData("3 wrmsr 0x80b 0", "3 wrmsr 0x80b 0x0")]
    [InlineData("3 wrmsr 0x1b 0xfee00800 !gp", "3 wrmsr 0x1b 0xfee00800 !gp")]
    [InlineData("0 rdcr8", "0 rdcr8")]
    [InlineData("0 rdcr8 = 15", "0 rdcr8 = 0xf")]
    [InlineData("0 wrcr8 0x10", "0 wrcr8 0x10")]
    [InlineData("0 accept", "0 accept")]
    [InlineData("0 accept = none", "0 accept = none")]
    [InlineData("0 accept = smi", "0 accept = smi")]
    [InlineData("0 accept = init", "0 accept = init")]
    [InlineData("0 accept = nmi", "0 accept = nmi")]
    [InlineData("0 accept = extint", "0 accept = extint")]
    [InlineData("1 accept = sipi 16", "1 accept = sipi 0x10")]
    [InlineData("1 accept = 49", "1 accept = 0x31")]
    [InlineData("1 accept = 0x5", "1 accept = 0x05")]
    [InlineData("1 state", "1 state")]
    [InlineData("1 state = running", "1 state = running")]
    [InlineData("1 state = wait-for-sipi", "1 state = wait-for-sipi")]
    [InlineData("ioapic write 16 0x8031", "ioapic write 0x10 0x8031")]
    [InlineData("ioapic read 0x01 = 0x00170020", "ioapic read 0x1 = 0x170020")]
    [InlineData("ioapic read 0x01", "ioapic read 0x1")]
    [InlineData("irq 0x17 high", "irq 23 high")]
    [InlineData("irq 0 low", "irq 0 low")]
    [InlineData("irq 4 pulse", "irq 4 pulse")]
    [InlineData("msi 0xFEE01000 0x4041", "msi 0xfee01000 0x4041")]
    [InlineData("4095 lint 0x1 pulse", "4095 lint 1 pulse")]
    [InlineData("time +0x10", "time +16")]
    [InlineData("time +1_000_000", "time +1000000")]
    public void Format_GivesTheCanonicalForm(string line, string canonical)
    {
        TraceCommand command = ParseSingle(line, WideMachine);

        Assert.Equal(canonical, TraceFormatter.Format(command));
        Assert.Equal(canonical, command.ToString());
    }

    [Theory]
    [InlineData("0 read 0xfee00020 = 0x0")]
    [InlineData("0 read 0xfee00030 = unmapped")]
    [InlineData("0 rdmsr 0xffffffff = 0xffffffffffffffff")]
    [InlineData("0 wrmsr 0x6e0 0xffffffffffffffff !gp")]
    [InlineData("4095 wrcr8 0xffffffffffffffff")]
    [InlineData("0 accept = sipi 0xff")]
    [InlineData("0 accept = 0x00")]
    [InlineData("msi 0xfeefffff 0xffffffff")]
    [InlineData("time +18446744073709551615")]
    public void CanonicalForm_ParsesBackToTheSameCommand(string canonical)
    {
        TraceCommand first = ParseSingle(canonical, WideMachine);
        TraceCommand second = ParseSingle(TraceFormatter.Format(first), WideMachine);

        Assert.Equal(canonical, TraceFormatter.Format(first));
        AssertSameOperation(first, second);
    }

    [Fact]
    public void TryFormat_TooShortDestination_ReturnsFalse()
    {
        TraceCommand command = ParseSingle("0 rdmsr 0x1b = 0xfee00900");
        Span<char> small = stackalloc char[10];
        Span<char> exact = stackalloc char[25];

        Assert.False(TraceFormatter.TryFormat(command, small, out int none));
        Assert.Equal(0, none);
        Assert.True(TraceFormatter.TryFormat(command, exact, out int written));
        Assert.Equal("0 rdmsr 0x1b = 0xfee00900", exact[..written].ToString());
    }

    [Theory]
    [InlineData("machine vcpus=4", "machine vcpus=4")]
    [InlineData("machine vcpus=2 ids=0,1 ioapic-version=0x20", "machine vcpus=2")]
    [InlineData("machine force-x2apic vcpus=2 ids=1,0x100", "machine vcpus=2 ids=0x1,0x100 force-x2apic")]
    [InlineData("machine vcpus=1 ioapic-version=17", "machine vcpus=1 ioapic-version=0x11")]
    public void Format_Machine_GivesTheCanonicalForm(string line, string canonical)
    {
        Assert.Equal(canonical, TraceFormatter.Format(ParseValid(line).Machine));
    }

    [Theory]
    [InlineData(CpuEventKind.None, 0, "none")]
    [InlineData(CpuEventKind.StartUp, 0x9F, "sipi 0x9f")]
    [InlineData(CpuEventKind.Fixed, 0x31, "0x31")]
    public void Format_Event_MatchesTheAcceptSyntax(CpuEventKind kind, byte vector, string text)
    {
        Assert.Equal(text, TraceFormatter.Format(new CpuEvent(kind, vector)));
    }

    [Fact]
    public void Format_Expectation_IsWhatFollowsTheOperands()
    {
        Assert.Equal(string.Empty, TraceFormatter.Format(Expectation.None));
        Assert.Equal("= 0xfee00900", TraceFormatter.Format(Expectation.OfValue(0xFEE0_0900)));
        Assert.Equal("= unmapped", Expectation.Unmapped.ToString());
        Assert.Equal("!gp", Expectation.GeneralProtection.ToString());
        Assert.Equal("= wait-for-sipi", Expectation.OfRunState(VcpuRunState.WaitForSipi).ToString());
        Assert.Equal("= sipi 0x10", Expectation.OfEvent(new CpuEvent(CpuEventKind.StartUp, 0x10)).ToString());
    }

    [Fact]
    public void Document_RoundTripsThroughTheFormatter()
    {
        const string Text = """
            # Bring up the AP and route a level-triggered IOAPIC interrupt to it.
            machine vcpus=2 ids=0,0x10 ioapic-version=0x20
            0 write 0xfee000f0 0x1ff           # SVR: software-enable
            0 write 0xfee00310 0x10000000      # ICR high: APIC 0x10
            0 write 0xfee00300 0x4500          # INIT
            1 accept = init
            0 write 0xfee00300 0x4610          # SIPI, vector 0x10
            1 accept = sipi 0x10
            1 state = running
            1 wrmsr 0x1b 0xfee00c00
            1 wrmsr 0x80f 0x1ff
            ioapic write 0x10 0x8031
            ioapic write 0x11 0x10000000      # destination APIC 0x10
            irq 0 pulse
            1 accept = 0x31
            1 rdmsr 0x80b !gp
            1 wrmsr 0x80b 0
            ioapic read 0x10 = 0x8031
            time +1_000
            """;
        TraceDocument original = ParseValid(Text);

        string canonical = TraceFormatter.Format(original);
        TraceDocument reparsed = ParseValid(canonical);

        Assert.Equal(canonical, TraceFormatter.Format(reparsed));
        Assert.Equal(original.Machine.ApicIds, reparsed.Machine.ApicIds);
        Assert.Equal(original.Machine.IoApicVersion, reparsed.Machine.IoApicVersion);
        Assert.Equal(original.Commands.Length, reparsed.Commands.Length);
        for (int i = 0; i < original.Commands.Length; i++)
        {
            AssertSameOperation(original.Commands[i], reparsed.Commands[i]);
            Assert.Equal(i + 2, reparsed.Commands[i].Location.Line);
        }
    }

    [Fact]
    public void AnyValidCommand_RoundTripsThroughTheFormatter()
    {
        s_validCommand.Sample(command =>
        {
            string text = TraceFormatter.Format(command);
            TraceCommand parsed = ParseSingle(text, WideMachine);
            AssertSameOperation(command, parsed);
            Assert.Equal(text, TraceFormatter.Format(parsed));
        });
    }

    [Fact]
    public void AnyText_ParsesOrReportsAnErrorWithoutThrowing()
    {
        Gen<string> lines = Gen.OneOf(
            Gen.String,
            Gen.Char["0123456789abcdefx_ =,#+!\t\r\n"].Array[0, 40].Select(chars => new string(chars)),
            s_validCommand.Select(c => TraceFormatter.Format(c)));
        lines.Array[0, 8].Sample(body =>
        {
            TraceParseResult result = TraceParser.Parse(FileName, "machine vcpus=2\n" + string.Join('\n', body));
            Assert.Equal(result.Succeeded, result.Errors.IsEmpty);
            if (!result.Succeeded)
            {
                TraceParseError error = result.Errors[0];
                Assert.InRange(error.Location.Line, 1, int.MaxValue);
                Assert.InRange(error.Location.Column, 1, int.MaxValue);
            }
        });
    }

    private static void AssertSameOperation(TraceCommand expected, TraceCommand actual)
    {
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.Equal(expected.Cpu, actual.Cpu);
        Assert.Equal(expected.A, actual.A);
        Assert.Equal(expected.B, actual.B);
        Assert.Equal(expected.Expectation, actual.Expectation);
    }

    /// <summary>Well-formed commands built directly, with operands anywhere in their legal ranges.</summary>
    private static readonly Gen<TraceCommand> s_validCommand =
        Gen.Select(Gen.Int[0, 13], Gen.Int[0, 4095], Gen.ULong, Gen.ULong, Gen.ULong, Gen.Int[0, 7])
            .Select(t => BuildCommand((TraceCommandKind)t.Item1, t.Item2, t.Item3, t.Item4, t.Item5, t.Item6));

    private static TraceCommand BuildCommand(TraceCommandKind kind, int cpu, ulong a, ulong b, ulong value, int choice)
    {
        const uint MaxUInt = uint.MaxValue;
        (int commandCpu, ulong commandA, ulong commandB, Expectation expectation) = kind switch
        {
            TraceCommandKind.MmioRead => (cpu, a & ~3UL, 0UL, (choice % 3) switch
            {
                0 => Expectation.None,
                1 => Expectation.Unmapped,
                _ => Expectation.OfValue(value & MaxUInt),
            }),
            TraceCommandKind.MmioWrite => (cpu, a & ~3UL, b & MaxUInt, Expectation.None),
            TraceCommandKind.MsrRead => (cpu, a & MaxUInt, 0UL, (choice % 3) switch
            {
                0 => Expectation.None,
                1 => Expectation.GeneralProtection,
                _ => Expectation.OfValue(value),
            }),
            TraceCommandKind.MsrWrite => (cpu, a & MaxUInt, b, choice % 2 == 0 ? Expectation.None : Expectation.GeneralProtection),
            TraceCommandKind.Cr8Read => (cpu, 0UL, 0UL, choice % 2 == 0 ? Expectation.None : Expectation.OfValue(value)),
            TraceCommandKind.Cr8Write => (cpu, a, 0UL, Expectation.None),
            TraceCommandKind.Accept => (cpu, 0UL, 0UL, choice == 7
                ? Expectation.None
                : Expectation.OfEvent(new CpuEvent((CpuEventKind)choice, choice is 5 or 6 ? (byte)value : (byte)0))),
            TraceCommandKind.State => (cpu, 0UL, 0UL, (choice % 3) switch
            {
                0 => Expectation.None,
                1 => Expectation.OfRunState(VcpuRunState.Running),
                _ => Expectation.OfRunState(VcpuRunState.WaitForSipi),
            }),
            TraceCommandKind.IoApicWrite => (TraceCommand.NoCpu, a & 0xFF, b & MaxUInt, Expectation.None),
            TraceCommandKind.IoApicRead => (TraceCommand.NoCpu, a & 0xFF, 0UL, choice % 2 == 0 ? Expectation.None : Expectation.OfValue(value & MaxUInt)),
            TraceCommandKind.Irq => (TraceCommand.NoCpu, a % 24, (ulong)(choice % 3), Expectation.None),
            TraceCommandKind.Msi => (TraceCommand.NoCpu, 0xFEE0_0000UL | (a & 0xF_FFFF), b & MaxUInt, Expectation.None),
            TraceCommandKind.Lint => (cpu, a & 1, (ulong)(choice % 3), Expectation.None),
            _ => (TraceCommand.NoCpu, a, 0UL, Expectation.None),
        };
        return new TraceCommand(kind, commandCpu, commandA, commandB, expectation);
    }
}
