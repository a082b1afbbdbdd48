using Vapic.Machine;
using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>Every command form of the trace format parses to the operands and expectation it states.</summary>
public sealed class TraceParserCommandTests
{
    [Fact]
    public void MmioRead_WithoutExpectation_HasAddressAndNoExpectation()
    {
        TraceCommand command = ParseSingle("1 read 0xfee00030");

        Assert.Equal(TraceCommandKind.MmioRead, command.Kind);
        Assert.Equal(1, command.Cpu);
        Assert.Equal(0xFEE0_0030UL, command.A);
        Assert.Equal(Expectation.None, command.Expectation);
    }

    [Fact]
    public void MmioRead_WithValue_ExpectsThatValue()
    {
        // lapic-reference test vector 1: CPU 2 of a 3-CPU machine reads its APIC ID register.
        TraceCommand command = ParseSingle("2 read 0xfee00020 = 0x0200_0000", "machine vcpus=3");

        Assert.Equal(2, command.Cpu);
        Assert.Equal(0xFEE0_0020UL, command.A);
        Assert.Equal(ExpectationKind.Value, command.Expectation.Kind);
        Assert.Equal(0x0200_0000UL, command.Expectation.Value);
    }

    [Fact]
    public void MmioRead_Unmapped_ExpectsUnmapped()
    {
        TraceCommand command = ParseSingle("0 read 0xfee00030 = unmapped", "machine vcpus=1 force-x2apic");

        Assert.Equal(Expectation.Unmapped, command.Expectation);
        Assert.Equal(ExpectationKind.Unmapped, command.Expectation.Kind);
    }

    [Fact]
    public void MmioWrite_HasAddressAndValue()
    {
        TraceCommand command = ParseSingle("0 write 0xfee000f0 0x1ff");

        Assert.Equal(TraceCommandKind.MmioWrite, command.Kind);
        Assert.Equal(0xFEE0_00F0UL, command.A);
        Assert.Equal(0x1FFUL, command.B);
        Assert.Equal(Expectation.None, command.Expectation);
    }

    [Fact]
    public void MmioAccess_AboveFourGiB_IsAccepted()
    {
        // The APIC base can be relocated anywhere below MAXPHYADDR (SDM "Relocating the Local APIC Registers").
        TraceCommand command = ParseSingle("0 read 0x1_0000_0020");

        Assert.Equal(0x1_0000_0020UL, command.A);
    }

    [Fact]
    public void MsrRead_WithValue_ExpectsSixtyFourBitValue()
    {
        // Power-on APIC base of the BSP: base 0xFEE00000, EN (bit 11), BSP (bit 8).
        TraceCommand command = ParseSingle("0 rdmsr 0x1b = 0xfee00900");

        Assert.Equal(TraceCommandKind.MsrRead, command.Kind);
        Assert.Equal(0x1BUL, command.A);
        Assert.Equal(Expectation.OfValue(0xFEE0_0900), command.Expectation);
    }

    [Fact]
    public void MsrRead_WithFullWidthValue_KeepsAllSixtyFourBits()
    {
        TraceCommand command = ParseSingle("0 rdmsr 0x830 = 0x0000_0003_0000_40fd");

        Assert.Equal(0x0000_0003_0000_40FDUL, command.Expectation.Value);
    }

    [Fact]
    public void MsrRead_GeneralProtection_ExpectsGp()
    {
        TraceCommand command = ParseSingle("0 rdmsr 0xbd !gp");

        Assert.Equal(0xBDUL, command.A);
        Assert.Equal(Expectation.GeneralProtection, command.Expectation);
    }

    [Fact]
    public void MsrWrite_HasMsrAndValue()
    {
        TraceCommand command = ParseSingle("3 wrmsr 0x80b 0");

        Assert.Equal(TraceCommandKind.MsrWrite, command.Kind);
        Assert.Equal(3, command.Cpu);
        Assert.Equal(0x80BUL, command.A);
        Assert.Equal(0UL, command.B);
        Assert.Equal(Expectation.None, command.Expectation);
    }

    [Fact]
    public void MsrWrite_GeneralProtection_ExpectsGp()
    {
        // Locked x2APIC: clearing EXTD is refused with #GP.
        TraceCommand command = ParseSingle("1 wrmsr 0x1b 0xfee00800 !gp", "machine vcpus=2 force-x2apic");

        Assert.Equal(0xFEE0_0800UL, command.B);
        Assert.Equal(Expectation.GeneralProtection, command.Expectation);
    }

    [Fact]
    public void Cr8Read_WithAndWithoutValue()
    {
        TraceCommand bare = ParseSingle("0 rdcr8");
        TraceCommand expected = ParseSingle("0 rdcr8 = 15");

        Assert.Equal(TraceCommandKind.Cr8Read, bare.Kind);
        Assert.Equal(Expectation.None, bare.Expectation);
        Assert.Equal(Expectation.OfValue(15), expected.Expectation);
    }

    [Fact]
    public void Cr8Write_WithReservedBitsSet_IsWellFormed()
    {
        // Bits 63:4 set makes MOV to CR8 fault at run time (SDM "MOV—Move to/from Control
        // Registers"); the trace itself is valid.
        TraceCommand command = ParseSingle("0 wrcr8 0x10");

        Assert.Equal(TraceCommandKind.Cr8Write, command.Kind);
        Assert.Equal(0x10UL, command.A);
    }

    [Fact]
    public void Accept_WithoutExpectation()
    {
        TraceCommand command = ParseSingle("0 accept");

        Assert.Equal(TraceCommandKind.Accept, command.Kind);
        Assert.Equal(Expectation.None, command.Expectation);
    }

    [Theory]
    [InlineData("none", CpuEventKind.None, 0)]
    [InlineData("smi", CpuEventKind.Smi, 0)]
    [InlineData("init", CpuEventKind.Init, 0)]
    [InlineData("nmi", CpuEventKind.Nmi, 0)]
    [InlineData("extint", CpuEventKind.ExtInt, 0)]
    [InlineData("sipi 0x10", CpuEventKind.StartUp, 0x10)]
    [InlineData("sipi 0", CpuEventKind.StartUp, 0)]
    [InlineData("0x31", CpuEventKind.Fixed, 0x31)]
    [InlineData("49", CpuEventKind.Fixed, 0x31)]
    [InlineData("0xff", CpuEventKind.Fixed, 0xFF)]
    public void Accept_WithEvent_ExpectsThatEvent(string eventText, CpuEventKind kind, byte vector)
    {
        TraceCommand command = ParseSingle("1 accept = " + eventText);

        Assert.Equal(ExpectationKind.Event, command.Expectation.Kind);
        Assert.Equal(new CpuEvent(kind, vector), command.Expectation.Event);
    }

    [Theory]
    [InlineData("1 state", ExpectationKind.None, VcpuRunState.Running)]
    [InlineData("1 state = running", ExpectationKind.RunState, VcpuRunState.Running)]
    [InlineData("1 state = wait-for-sipi", ExpectationKind.RunState, VcpuRunState.WaitForSipi)]
    public void State_ParsesRunState(string line, ExpectationKind kind, VcpuRunState runState)
    {
        TraceCommand command = ParseSingle(line);

        Assert.Equal(TraceCommandKind.State, command.Kind);
        Assert.Equal(kind, command.Expectation.Kind);
        Assert.Equal(runState, command.Expectation.RunState);
    }

    [Fact]
    public void IoApicWrite_IsMachineLevel_WithIndexAndValue()
    {
        // Redirection entry 0, low half (index 0x10): vector 0x31, level-triggered, unmasked.
        TraceCommand command = ParseSingle("ioapic write 0x10 0x0000_8031");

        Assert.Equal(TraceCommandKind.IoApicWrite, command.Kind);
        Assert.Equal(TraceCommand.NoCpu, command.Cpu);
        Assert.Equal(0x10UL, command.A);
        Assert.Equal(0x8031UL, command.B);
    }

    [Fact]
    public void IoApicRead_WithValue()
    {
        // IOAPIC version register: maximum redirection entry 23 (bits 23:16), version 0x20.
        TraceCommand command = ParseSingle("ioapic read 1 = 0x0017_0020");

        Assert.Equal(TraceCommandKind.IoApicRead, command.Kind);
        Assert.Equal(TraceCommand.NoCpu, command.Cpu);
        Assert.Equal(1UL, command.A);
        Assert.Equal(Expectation.OfValue(0x0017_0020), command.Expectation);
    }

    [Theory]
    [InlineData("irq 0 high", 0, LineAction.High)]
    [InlineData("irq 9 low", 9, LineAction.Low)]
    [InlineData("irq 23 pulse", 23, LineAction.Pulse)]
    [InlineData("irq 0x17 pulse", 23, LineAction.Pulse)]
    public void Irq_HasPinAndAction(string line, ulong gsi, LineAction action)
    {
        TraceCommand command = ParseSingle(line);

        Assert.Equal(TraceCommandKind.Irq, command.Kind);
        Assert.Equal(TraceCommand.NoCpu, command.Cpu);
        Assert.Equal(gsi, command.A);
        Assert.Equal(action, command.LineAction);
    }

    [Fact]
    public void Msi_HasAddressAndData()
    {
        // Physical destination APIC ID 1 (address bits 19:12), fixed, vector 0x41.
        TraceCommand command = ParseSingle("msi 0xfee01000 0x4041");

        Assert.Equal(TraceCommandKind.Msi, command.Kind);
        Assert.Equal(TraceCommand.NoCpu, command.Cpu);
        Assert.Equal(0xFEE0_1000UL, command.A);
        Assert.Equal(0x4041UL, command.B);
    }

    [Theory]
    [InlineData("2 lint 0 high", 0, LineAction.High)]
    [InlineData("2 lint 1 low", 1, LineAction.Low)]
    [InlineData("2 lint 1 pulse", 1, LineAction.Pulse)]
    public void Lint_HasPinAndAction(string line, ulong pin, LineAction action)
    {
        TraceCommand command = ParseSingle(line);

        Assert.Equal(TraceCommandKind.Lint, command.Kind);
        Assert.Equal(2, command.Cpu);
        Assert.Equal(pin, command.A);
        Assert.Equal(action, command.LineAction);
    }

    [Fact]
    public void Time_HasNanoseconds()
    {
        TraceCommand command = ParseSingle("time +1_000_000");

        Assert.Equal(TraceCommandKind.Time, command.Kind);
        Assert.Equal(TraceCommand.NoCpu, command.Cpu);
        Assert.Equal(1_000_000UL, command.A);
    }

    [Fact]
    public void Time_Zero_IsAllowed()
    {
        Assert.Equal(0UL, ParseSingle("time +0").A);
    }

    [Fact]
    public void Time_AdvancesUpToTheLastNanosecond()
    {
        TraceDocument document = ParseValid("machine vcpus=1\ntime +0xffff_ffff_ffff_fff0\ntime +0xf\n");

        Assert.Equal(2, document.Commands.Length);
    }

    [Fact]
    public void CpuIndex_CanBeTheLastVcpuOfTheLargestMachine()
    {
        TraceCommand command = ParseSingle("4095 state = wait-for-sipi", "machine vcpus=4096");

        Assert.Equal(4095, command.Cpu);
    }

    [Fact]
    public void CpuIndex_MayBeHexadecimal()
    {
        Assert.Equal(3, ParseSingle("0x3 accept").Cpu);
    }

    [Fact]
    public void Commands_KeepFileOrder()
    {
        TraceDocument document = ParseValid("""
            machine vcpus=2
            0 write 0xfee000f0 0x1ff
            irq 1 high
            1 accept = none
            time +10
            """);

        Assert.Equal(
            [TraceCommandKind.MmioWrite, TraceCommandKind.Irq, TraceCommandKind.Accept, TraceCommandKind.Time],
            document.Commands.Select(c => c.Kind));
    }
}
