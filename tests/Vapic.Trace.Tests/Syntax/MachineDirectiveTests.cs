using Vapic.Machine;
using Vapic.Trace.Syntax;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>The <c>machine</c> line: options, defaults, validation.</summary>
public sealed class MachineDirectiveTests
{
    [Fact]
    public void VcpusOnly_GivesTheDefaults()
    {
        MachineDirective machine = ParseValid("machine vcpus=4").Machine;

        Assert.Equal(4, machine.VcpuCount);
        Assert.Equal([0u, 1u, 2u, 3u], machine.ApicIds);
        Assert.True(machine.HasDefaultApicIds);
        Assert.False(machine.ForceX2Apic);
        Assert.Equal(0x20, machine.IoApicVersion);
        Assert.False(machine.StartsInX2ApicMode);
        Assert.Equal(new SourceLocation(FileName, 1, 1), machine.Location);
    }

    [Fact]
    public void AllOptions_InAnyOrder()
    {
        MachineDirective machine = ParseValid("machine ioapic-version=0x11 force-x2apic ids=0x10,0x20,0x30 vcpus=3").Machine;

        Assert.Equal(3, machine.VcpuCount);
        Assert.Equal([0x10u, 0x20u, 0x30u], machine.ApicIds);
        Assert.False(machine.HasDefaultApicIds);
        Assert.True(machine.ForceX2Apic);
        Assert.Equal(0x11, machine.IoApicVersion);
        Assert.True(machine.StartsInX2ApicMode);
    }

    [Fact]
    public void SpacesAroundEqualsAndCommas_AreAllowed()
    {
        MachineDirective machine = ParseValid("machine vcpus = 2 ids = 5 , 7").Machine;

        Assert.Equal([5u, 7u], machine.ApicIds);
    }

    [Fact]
    public void ApicIdAboveFe_StartsInX2ApicMode()
    {
        // The spec: IDs above 0xFE need x2APIC, so firmware leaves every LAPIC in x2APIC mode.
        MachineDirective wide = ParseValid("machine vcpus=2 ids=0,0xff").Machine;
        MachineDirective narrow = ParseValid("machine vcpus=2 ids=0,0xfe").Machine;

        Assert.True(wide.StartsInX2ApicMode);
        Assert.False(narrow.StartsInX2ApicMode);
    }

    [Fact]
    public void IoApicVersion_MayBeWrittenInDecimal()
    {
        Assert.Equal(0x11, ParseValid("machine vcpus=1 ioapic-version=17").Machine.IoApicVersion);
    }

    [Fact]
    public void LargestApicId_IsFfffFffe()
    {
        MachineDirective machine = ParseValid("machine vcpus=1 ids=0xffff_fffe").Machine;

        Assert.Equal([0xFFFF_FFFEu], machine.ApicIds);
    }

    [Fact]
    public void LargestMachine_Has4096Vcpus()
    {
        MachineDirective machine = ParseValid("machine vcpus=4096").Machine;

        Assert.Equal(4096, machine.ApicIds.Length);
        Assert.Equal(4095u, machine.ApicIds[4095]);
    }

    [Fact]
    public void ToMachineOptions_CarriesTheConfiguration()
    {
        MachineOptions options = ParseValid("machine vcpus=2 ids=4,6 force-x2apic ioapic-version=0x11").Machine.ToMachineOptions();

        Assert.Null(options.Validate());
        Assert.Equal(2, options.VcpuCount);
        Assert.Equal(6u, options.ApicIdOf(1));
        Assert.True(options.ForceX2Apic);
        Assert.Equal(0x11, options.IoApicVersion);
    }

    [Fact]
    public void ToMachineOptions_DefaultIds_AreLeftImplicit()
    {
        MachineOptions options = ParseValid("machine vcpus=3").Machine.ToMachineOptions();

        Assert.Null(options.ApicIds);
        Assert.Equal(2u, options.ApicIdOf(2));
    }

    [Fact]
    public void Equality_ComparesApicIdsByValue()
    {
        MachineDirective first = ParseValid("machine vcpus=2 ids=3,4").Machine;
        MachineDirective second = ParseValid("machine vcpus=2 ids=0x3,0x4").Machine;

        Assert.Equal(first, second);
        Assert.Equal(first.GetHashCode(), second.GetHashCode());
        Assert.NotEqual(first, ParseValid("machine vcpus=2 ids=4,3").Machine);
    }

    [Theory]
    [InlineData("", 1, 1)]
    [InlineData("# only a comment\n\n", 1, 1)]
    [InlineData("0 state\nmachine vcpus=1", 1, 1)]
    [InlineData("# comment\n  irq 3 high\nmachine vcpus=1", 2, 3)]
    [InlineData("Machine vcpus=1", 1, 1)]
    [InlineData("= vcpus=1", 1, 1)]
    public void FirstCommandNotMachine_IsRejected(string text, int line, int column)
    {
        AssertError(text, TraceErrorKind.MissingMachine, line, column);
    }

    [Theory]
    [InlineData("machine", TraceErrorKind.MissingOption, 1)]
    [InlineData("machine ids=0 force-x2apic", TraceErrorKind.MissingOption, 1)]
    [InlineData("machine vcpus=0", TraceErrorKind.ValueOutOfRange, 15)]
    [InlineData("machine vcpus=4097", TraceErrorKind.ValueOutOfRange, 15)]
    [InlineData("machine vcpus=99999999999999999999", TraceErrorKind.NumberTooLarge, 15)]
    [InlineData("machine vcpus=two", TraceErrorKind.InvalidNumber, 15)]
    [InlineData("machine vcpus 2", TraceErrorKind.MissingOperand, 15)]
    [InlineData("machine vcpus=", TraceErrorKind.MissingOperand, 15)]
    [InlineData("machine vcpus=2 vcpus=2", TraceErrorKind.DuplicateOption, 17)]
    [InlineData("machine vcpus=2 ids=0,1 ids=0,1", TraceErrorKind.DuplicateOption, 25)]
    [InlineData("machine vcpus=1 force-x2apic force-x2apic", TraceErrorKind.DuplicateOption, 30)]
    [InlineData("machine vcpus=1 ioapic-version=0x20 ioapic-version=0x11", TraceErrorKind.DuplicateOption, 37)]
    [InlineData("machine vcpus=3 ids=0,1", TraceErrorKind.ApicIdCountMismatch, 17)]
    [InlineData("machine vcpus=2 ids=0,1,2", TraceErrorKind.ApicIdCountMismatch, 17)]
    [InlineData("machine ids=0,1,2 vcpus=2", TraceErrorKind.ApicIdCountMismatch, 9)]
    [InlineData("machine vcpus=3 ids=0,5,5", TraceErrorKind.DuplicateApicId, 25)]
    [InlineData("machine vcpus=2 ids=0x10,16", TraceErrorKind.DuplicateApicId, 26)]
    [InlineData("machine vcpus=1 ids=0xffffffff", TraceErrorKind.ValueOutOfRange, 21)]
    [InlineData("machine vcpus=2 ids=0,,1", TraceErrorKind.MissingOperand, 23)]
    [InlineData("machine vcpus=2 ids=", TraceErrorKind.MissingOperand, 21)]
    [InlineData("machine vcpus=2 ids=0,", TraceErrorKind.MissingOperand, 23)]
    [InlineData("machine vcpus=1 ioapic-version=0x21", TraceErrorKind.ValueOutOfRange, 32)]
    [InlineData("machine vcpus=1 ioapic-vresion=0x11", TraceErrorKind.UnknownKeyword, 17)]
    [InlineData("machine vcpus=1 x2apic", TraceErrorKind.UnknownKeyword, 17)]
    [InlineData("machine vcpus=1 force-x2apic=1", TraceErrorKind.UnexpectedToken, 29)]
    [InlineData("machine vcpus=1 , force-x2apic", TraceErrorKind.UnexpectedToken, 17)]
    public void MalformedMachine_IsRejectedAtTheOffendingToken(string text, TraceErrorKind kind, int column)
    {
        AssertError(text, kind, 1, column);
    }

    [Fact]
    public void DuplicateApicId_NamesTheVcpuThatHasIt()
    {
        TraceParseError error = ParseInvalid("machine vcpus=3 ids=0,5,5");

        Assert.Equal("APIC ID 0x5 is already the ID of vCPU 1", error.Message);
    }

    [Fact]
    public void SecondMachineLine_IsRejected()
    {
        AssertError("machine vcpus=1\n0 accept\nmachine vcpus=1\n", TraceErrorKind.DuplicateMachine, 3, 1);
    }

    [Fact]
    public void CpuIndex_IsCheckedAgainstVcpus()
    {
        ParseValid("machine vcpus=1\n0 accept");
        AssertError("machine vcpus=1\n1 accept", TraceErrorKind.CpuOutOfRange, 2, 1);
    }
}
