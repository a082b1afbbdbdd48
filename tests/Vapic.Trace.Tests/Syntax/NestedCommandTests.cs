using CsCheck;
using Vapic.Machine;
using Vapic.Trace.Syntax;
using Vapic.Virtualization;
using Vapic.Virtualization.Nested;
using Xunit;
using static Vapic.Trace.Tests.Syntax.TraceTestText;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>
/// The nested-virtualization commands (docs/trace-format.md, "Nested virtualization"): what each
/// parses to, the canonical form, and every malformed variant with its error kind and column.
/// </summary>
public sealed class NestedCommandTests
{
    private const string Machine = "machine vcpus=2\n";

    [Fact]
    public void Quirk()
    {
        TraceCommand c = ParseSingle("nested quirk nested-apic-access-clear");
        Assert.Equal(TraceCommandKind.NestedQuirk, c.Kind);
        Assert.Equal(TraceCommand.NoCpu, c.Cpu);
        Assert.Equal((ulong)NestedQuirks.NestedApicAccessClear, c.A);
        Assert.Equal((ulong)NestedQuirks.L2PassthroughNoInhibit, ParseSingle("nested quirk l2-passthrough-no-inhibit").A);
    }

    [Theory]
    [InlineData("ram", L1MemoryKind.Ram)]
    [InlineData("mmio", L1MemoryKind.Mmio)]
    [InlineData("l1-apic", L1MemoryKind.L1Apic)]
    [InlineData("hole", L1MemoryKind.Hole)]
    public void L1Map_PacksTheKindIntoTheLowBitsOfBase(string keyword, L1MemoryKind kind)
    {
        TraceCommand c = ParseSingle($"nested l1-map 0xc0000000 0x2000 {keyword}");
        Assert.Equal(TraceCommandKind.NestedL1Map, c.Kind);
        Assert.Equal(0xC000_0000UL | (ulong)kind, c.A);
        Assert.Equal(0x2000UL, c.B);
    }

    [Fact]
    public void Ept_MapsOrMarksNotPresent()
    {
        TraceCommand map = ParseSingle("nested ept 0xfee00000 0x100000");
        Assert.Equal(TraceCommandKind.NestedEpt, map.Kind);
        Assert.Equal(0xFEE0_0000UL, map.A);
        Assert.Equal(0x10_0000UL, map.B);
        Assert.Equal(NestedCommandOperands.EptNotPresent, ParseSingle("nested ept 0x200000 none").B);
    }

    [Fact]
    public void L1WriteAndRead()
    {
        TraceCommand write = ParseSingle("nested l1-write 0x101080 0x20");
        Assert.Equal((TraceCommandKind.NestedL1Write, 0x10_1080UL, 0x20UL), (write.Kind, write.A, write.B));
        TraceCommand read = ParseSingle("nested l1-read 0x101080 = 0x20");
        Assert.Equal(TraceCommandKind.NestedL1Read, read.Kind);
        Assert.Equal(Expectation.OfValue(0x20), read.Expectation);
        Assert.Equal(Expectation.Unmapped, ParseSingle("nested l1-read 0xd0000000 = unmapped").Expectation);
    }

    [Fact]
    public void Vmcs12_OneCommandPerField()
    {
        TraceDocument document = ParseValid(Machine +
            "nested vmcs12 1 controls=tpr-shadow,virtualize-apic-accesses,ept apic-access=0x100000 virtual-apic=0x101000 " +
            "pi-desc=0x102000 pi-vector=0xf2 tpr-threshold=5 eoi-exit=0x61 rvi=0x31 svi=0x20\n");

        Assert.Equal(9, document.Commands.Length);
        Assert.All(document.Commands, c => Assert.Equal((TraceCommandKind.NestedVmcs12, 1), (c.Kind, c.Cpu)));
        (NestedVmcs12Setting, ulong)[] fields = [.. document.Commands.Select(c => ((NestedVmcs12Setting)c.A, c.B))];
        Assert.Equal(
            [
                (NestedVmcs12Setting.Controls, (ulong)(Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.EnableEpt)),
                (NestedVmcs12Setting.ApicAccessAddress, 0x10_0000UL),
                (NestedVmcs12Setting.VirtualApicAddress, 0x10_1000UL),
                (NestedVmcs12Setting.PostedInterruptDescriptorAddress, 0x10_2000UL),
                (NestedVmcs12Setting.NotificationVector, 0xF2UL),
                (NestedVmcs12Setting.TprThreshold, 5UL),
                (NestedVmcs12Setting.EoiExit, 0x61UL),
                (NestedVmcs12Setting.RequestingVirtualInterrupt, 0x31UL),
                (NestedVmcs12Setting.ServicingVirtualInterrupt, 0x20UL),
            ],
            fields);
    }

    [Fact]
    public void Vmcs12_EveryControlNameAndNone()
    {
        string all = string.Join(",", Vmcs12ControlNames.Names);
        TraceCommand c = ParseSingle($"nested vmcs12 0 controls={all}");
        Assert.Equal(0x7FFUL, c.B);
        Assert.Equal(0UL, ParseSingle("nested vmcs12 0 controls=none").B);
    }

    [Fact]
    public void PostAndInhibit()
    {
        TraceCommand post = ParseSingle("nested post 1 0x61 = internal-error pi-desc 0xc0000000");
        Assert.Equal((TraceCommandKind.NestedPost, 1, 0x61UL), (post.Kind, post.Cpu, post.A));
        Assert.Equal(NestedOutcome.InternalError(Vmcs12Field.PostedInterruptDescriptorAddress, 0xC000_0000), post.Expectation.Nested);

        TraceCommand inhibit = ParseSingle("nested inhibit l2-passthrough-access = set");
        Assert.Equal(TraceCommandKind.NestedInhibit, inhibit.Kind);
        Assert.Equal((ulong)ApicvInhibit.L2PassthroughAccess, inhibit.A);
        Assert.Equal(NestedOutcomeKind.InhibitSet, inhibit.Expectation.Nested.Kind);
        Assert.Equal(NestedOutcomeKind.InhibitClear, ParseSingle("nested inhibit l2-passthrough-access = clear").Expectation.Nested.Kind);
    }

    [Theory]
    [InlineData("0 vmlaunch", ExpectationKind.None)]
    [InlineData("0 vmlaunch = ok", ExpectationKind.Nested)]
    [InlineData("0 vmlaunch = vmfail 7", ExpectationKind.Nested)]
    [InlineData("0 vmlaunch = internal-error", ExpectationKind.Nested)]
    [InlineData("0 vmlaunch = internal-error apic-access", ExpectationKind.Nested)]
    [InlineData("0 vmlaunch = internal-error apic-access 0xfee00000", ExpectationKind.Nested)]
    public void VmLaunch(string line, ExpectationKind kind)
    {
        TraceCommand c = ParseSingle(line);
        Assert.Equal((TraceCommandKind.VmLaunch, 0), (c.Kind, c.Cpu));
        Assert.Equal(kind, c.Expectation.Kind);
    }

    [Fact]
    public void VmLaunch_OutcomesCarryWhatTheyName()
    {
        Assert.Equal(NestedOutcome.VmFail(7), ParseSingle("0 vmlaunch = vmfail 7").Expectation.Nested);
        NestedOutcome anyError = ParseSingle("0 vmlaunch = internal-error").Expectation.Nested;
        Assert.Null(anyError.Field);
        Assert.Null(anyError.Address);
        NestedOutcome named = ParseSingle("0 vmlaunch = internal-error virtual-apic 0xc0000000").Expectation.Nested;
        Assert.Equal(Vmcs12Field.VirtualApicAddress, named.Field);
        Assert.Equal(0xC000_0000UL, named.Address);
    }

    [Fact]
    public void L2Commands()
    {
        TraceCommand read = ParseSingle("1 l2 read 0xfee00390 = l1-exit apic-access 0x390");
        Assert.Equal((TraceCommandKind.L2Read, 1, 0xFEE0_0390UL), (read.Kind, read.Cpu, read.A));
        Assert.Equal(NestedOutcome.L1Exit(L1ExitReason.ApicAccess, 0x390), read.Expectation.Nested);
        Assert.Equal(Expectation.OfValue(0x20), ParseSingle("0 l2 read 0xfee00080 = 0x20").Expectation);
        Assert.Equal(Expectation.Unmapped, ParseSingle("0 l2 read 0xfee00080 = unmapped").Expectation);
        Assert.Equal(NestedOutcome.NotInL2, ParseSingle("0 l2 read 0xfee00080 = not-in-l2").Expectation.Nested);

        TraceCommand write = ParseSingle("0 l2 write 0xfee000b0 0 = l1-exit eoi-induced");
        Assert.Equal((TraceCommandKind.L2Write, 0xFEE0_00B0UL, 0UL), (write.Kind, write.A, write.B));
        Assert.Null(write.Expectation.Nested.Qualification);
        Assert.Equal(NestedOutcome.Ok, ParseSingle("0 l2 write 0xfee00080 0x20 = ok").Expectation.Nested);

        Assert.Equal(Expectation.OfEvent(new CpuEvent(CpuEventKind.Fixed, 0x31)), ParseSingle("0 l2 accept = 0x31").Expectation);
        Assert.Equal(Expectation.OfEvent(CpuEvent.None), ParseSingle("0 l2 accept = none").Expectation);
        Assert.Equal(TraceCommandKind.L2Accept, ParseSingle("0 l2 accept = not-in-l2").Kind);
    }

    [Theory]
    [InlineData("nested quirk nested-apic-access-clear")]
    [InlineData("nested l1-map 0xc0000000 0x1000 ram")]
    [InlineData("nested l1-map 0xfee00000 0x1000 l1-apic")]
    [InlineData("nested ept 0xfee00000 0x100000")]
    [InlineData("nested ept 0x200000 none")]
    [InlineData("nested l1-write 0x101080 0x20")]
    [InlineData("nested l1-read 0x101080 = 0x20")]
    [InlineData("nested vmcs12 1 controls=tpr-shadow,virtualize-apic-accesses,posted-interrupts")]
    [InlineData("nested vmcs12 0 controls=none")]
    [InlineData("nested vmcs12 0 apic-access=0xfee00000")]
    [InlineData("nested vmcs12 0 pi-vector=0x1f2")]
    [InlineData("nested vmcs12 0 eoi-exit=0x61")]
    [InlineData("nested vmcs12 0 rvi=0x05")]
    [InlineData("nested post 1 0x61 = ok")]
    [InlineData("nested inhibit l2-passthrough-access = set")]
    [InlineData("0 vmlaunch = internal-error apic-access 0xfee00000")]
    [InlineData("0 vmlaunch = internal-error pi-desc")]
    [InlineData("0 vmlaunch = vmfail 7")]
    [InlineData("1 l2 read 0xfee00390 = l1-exit apic-access 0x390")]
    [InlineData("1 l2 read 0x200004 = l1-exit exception 0x200004")]
    [InlineData("0 l2 write 0xfee00080 0x20 = l1-exit tpr-below-threshold 0x0")]
    [InlineData("0 l2 write 0x200000 0x5 = l1-exit ept-violation")]
    [InlineData("0 l2 accept = 0x31")]
    [InlineData("0 l2 accept = not-in-l2")]
    public void CanonicalForm_IsWhatWasWritten(string line) =>
        Assert.Equal(line, TraceFormatter.Format(ParseSingle(line, "machine vcpus=2")));

    [Fact]
    public void CanonicalForm_OfTheLongestLineFits()
    {
        string line = "nested vmcs12 4095 controls=" + string.Join(",", Vmcs12ControlNames.Names);
        TraceCommand c = ParseSingle(line, "machine vcpus=4096");
        Assert.True(line.Length <= TraceFormatter.MaxCommandLength);
        Assert.Equal(line, TraceFormatter.Format(c));
    }

    [Fact]
    public void CanonicalForm_WritesOneVmcs12FieldPerLine()
    {
        TraceDocument document = ParseValid(Machine + "nested vmcs12 0 apic-access=0x100000 rvi=49 # comment\n");
        Assert.Equal(
            "machine vcpus=2\nnested vmcs12 0 apic-access=0x100000\nnested vmcs12 0 rvi=0x31\n",
            TraceFormatter.Format(document));
    }

    [Fact]
    public void RandomNestedCommands_RoundTripThroughTheCanonicalForm() =>
        Gen.Select(Gen.Int[0, 11], Gen.Int[0, 1], Gen.ULong, Gen.ULong, Gen.Int[0, 7])
            .Select(t => Build(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5))
            .Sample(command =>
            {
                string text = TraceFormatter.Format(command);
                TraceCommand parsed = ParseSingle(text, "machine vcpus=2");
                Assert.Equal((command.Kind, command.Cpu, command.A, command.B, command.Expectation), (parsed.Kind, parsed.Cpu, parsed.A, parsed.B, parsed.Expectation));
            }, iter: 2000);

    [Theory]
    // Operations and keywords.
    [InlineData("nested", TraceErrorKind.MissingOperand, 7)]
    [InlineData("nested vmcs21 0 controls=none", TraceErrorKind.UnknownKeyword, 8)]
    [InlineData("nested quirk nested-apic-access-clean", TraceErrorKind.UnknownKeyword, 14)]
    [InlineData("nested quirk", TraceErrorKind.MissingOperand, 13)]
    [InlineData("nested l1-map 0xc0000000 0x1000 rom", TraceErrorKind.UnknownKeyword, 33)]
    [InlineData("nested vmcs12 0 controls=tpr-shadow,ept,tpr-shadow", TraceErrorKind.DuplicateOption, 41)]
    [InlineData("nested vmcs12 0 controls=tpr-shadoww", TraceErrorKind.UnknownKeyword, 26)]
    [InlineData("nested vmcs12 0 controls=none,ept", TraceErrorKind.UnexpectedToken, 26)]
    [InlineData("nested vmcs12 0 apic-acess=0x1000", TraceErrorKind.UnknownKeyword, 17)]
    [InlineData("nested vmcs12 0", TraceErrorKind.MissingOperand, 16)]
    [InlineData("nested vmcs12 2 controls=none", TraceErrorKind.CpuOutOfRange, 15)]
    [InlineData("nested post 2 0x61", TraceErrorKind.CpuOutOfRange, 13)]
    [InlineData("nested inhibit apic-id-modified = set", TraceErrorKind.UnknownKeyword, 16)]
    [InlineData("nested inhibit l2-passthrough-access", TraceErrorKind.MissingOperand, 37)]
    [InlineData("0 l2 jump 0x1000", TraceErrorKind.UnknownKeyword, 6)]
    [InlineData("0 nested quirk nested-apic-access-clear", TraceErrorKind.CpuNotAllowed, 3)]
    [InlineData("vmlaunch", TraceErrorKind.MissingCpu, 1)]
    // Alignment and ranges.
    [InlineData("nested l1-map 0xc0000800 0x1000 ram", TraceErrorKind.MisalignedAddress, 15)]
    [InlineData("nested l1-map 0xc0000000 0x800 ram", TraceErrorKind.ValueOutOfRange, 26)]
    [InlineData("nested l1-map 0xc0000000 0 ram", TraceErrorKind.ValueOutOfRange, 26)]
    [InlineData("nested l1-map 0xfffffffffffff000 0x2000 ram", TraceErrorKind.ValueOutOfRange, 34)]
    [InlineData("nested ept 0xfee00010 0x100000", TraceErrorKind.MisalignedAddress, 12)]
    [InlineData("nested ept 0x1000000000000 0x100000", TraceErrorKind.ValueOutOfRange, 12)]
    [InlineData("nested ept 0xfee00000 nowhere", TraceErrorKind.InvalidNumber, 23)]
    [InlineData("nested l1-write 0x101082 1", TraceErrorKind.MisalignedAddress, 17)]
    [InlineData("nested l1-write 0x101080 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 26)]
    [InlineData("nested vmcs12 0 pi-vector=0x10000", TraceErrorKind.ValueOutOfRange, 27)]
    [InlineData("nested vmcs12 0 eoi-exit=0x100", TraceErrorKind.ValueOutOfRange, 26)]
    [InlineData("nested vmcs12 0 tpr-threshold=0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 31)]
    [InlineData("nested post 0 0x100", TraceErrorKind.ValueOutOfRange, 15)]
    [InlineData("0 l2 read 0xfee00022", TraceErrorKind.MisalignedAddress, 11)]
    [InlineData("0 l2 read 0x1000000000000", TraceErrorKind.ValueOutOfRange, 11)]
    [InlineData("0 l2 write 0xfee00080 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 23)]
    [InlineData("0 l2 read 0xfee00080 = 0x1_0000_0000", TraceErrorKind.ValueOutOfRange, 24)]
    [InlineData("0 l2 accept = 0x100", TraceErrorKind.ValueOutOfRange, 15)]
    [InlineData("0 vmlaunch = vmfail 0x10000", TraceErrorKind.ValueOutOfRange, 21)]
    [InlineData("0 vmlaunch = internal-error apic-access 0x10000000000000", TraceErrorKind.ValueOutOfRange, 41)]
    [InlineData("0 l2 read 0x1000 = l1-exit apic-access 0x1000000000000", TraceErrorKind.ValueOutOfRange, 40)]
    // Expectations.
    [InlineData("0 vmlaunch = 5", TraceErrorKind.ExpectationNotAllowed, 14)]
    [InlineData("0 vmlaunch = unmapped", TraceErrorKind.ExpectationNotAllowed, 14)]
    [InlineData("0 vmlaunch = entered", TraceErrorKind.UnknownKeyword, 14)]
    [InlineData("0 vmlaunch = internal-error apic", TraceErrorKind.UnknownKeyword, 29)]
    [InlineData("0 vmlaunch = vmfail", TraceErrorKind.MissingOperand, 20)]
    [InlineData("0 vmlaunch =", TraceErrorKind.MissingOperand, 13)]
    [InlineData("0 vmlaunch !gp", TraceErrorKind.GeneralProtectionNotAllowed, 12)]
    [InlineData("0 vmlaunch = ok ok", TraceErrorKind.UnexpectedToken, 17)]
    [InlineData("0 l2 read 0x1000 = ok", TraceErrorKind.ExpectationNotAllowed, 20)]
    [InlineData("0 l2 read 0x1000 = l1-exit", TraceErrorKind.MissingOperand, 27)]
    [InlineData("0 l2 read 0x1000 = l1-exit apic-acces", TraceErrorKind.UnknownKeyword, 28)]
    [InlineData("0 l2 write 0x1000 1 = 1", TraceErrorKind.ExpectationNotAllowed, 23)]
    [InlineData("0 l2 write 0x1000 1 = unmapped", TraceErrorKind.ExpectationNotAllowed, 23)]
    [InlineData("0 l2 accept = ok", TraceErrorKind.ExpectationNotAllowed, 15)]
    [InlineData("nested l1-write 0x1000 1 = 1", TraceErrorKind.ExpectationNotAllowed, 26)]
    [InlineData("nested inhibit l2-passthrough-access = ok", TraceErrorKind.ExpectationNotAllowed, 40)]
    [InlineData("nested post 0 0x61 = vmfail 7", TraceErrorKind.ExpectationNotAllowed, 22)]
    public void Malformed(string line, TraceErrorKind kind, int column) =>
        AssertError(Machine + line, kind, 2, column);

    [Fact]
    public void UnknownExpectation_SuggestsTheNearestKeyword()
    {
        TraceParseError error = ParseInvalid(Machine + "0 vmlaunch = internal-eror\n");
        Assert.Contains("did you mean 'internal-error'?", error.Message);
    }

    private static TraceCommand Build(int kind, int cpu, ulong a, ulong b, int choice)
    {
        ulong page = (a & 0xF_FFFF_FFFF_F000UL) % NestedCommandOperands.L2AddressLimit;
        ulong word = a & 0xFFFF_FFFC & (NestedCommandOperands.L2AddressLimit - 1);
        NestedOutcome exit = NestedOutcome.L1Exit(
            (L1ExitReason)new[] { 0, 43, 44, 45, 48, 56 }[choice % 6],
            choice % 2 == 0 ? null : b % NestedOutcome.QualificationLimit);
        return kind switch
        {
            0 => new TraceCommand(TraceCommandKind.NestedQuirk, TraceCommand.NoCpu, (ulong)(choice % 2 == 0 ? NestedQuirks.NestedApicAccessClear : NestedQuirks.L2PassthroughNoInhibit), 0, Expectation.None),
            1 => new TraceCommand(TraceCommandKind.NestedL1Map, TraceCommand.NoCpu, (page & 0xFFFF_FFFF_F000) | (uint)(choice % 4), ((b % 0x100) + 1) << 12, Expectation.None),
            2 => new TraceCommand(TraceCommandKind.NestedEpt, TraceCommand.NoCpu, page, choice == 0 ? NestedCommandOperands.EptNotPresent : b & ~0xFFFUL, Expectation.None),
            3 => new TraceCommand(TraceCommandKind.NestedL1Write, TraceCommand.NoCpu, a & ~3UL, b & 0xFFFF_FFFF, Expectation.None),
            4 => new TraceCommand(TraceCommandKind.NestedL1Read, TraceCommand.NoCpu, a & ~3UL, 0, choice % 2 == 0 ? Expectation.OfValue(b & 0xFFFF_FFFF) : Expectation.Unmapped),
            5 => new TraceCommand(TraceCommandKind.NestedVmcs12, cpu, (ulong)(choice % 9), (choice % 9) switch
            {
                0 => b & 0x7FF,
                4 => b & 0xFFFF,
                5 => b & 0xFFFF_FFFF,
                6 or 7 or 8 => b & 0xFF,
                _ => b,
            }, Expectation.None),
            6 => new TraceCommand(TraceCommandKind.NestedPost, cpu, b & 0xFF, 0, choice % 2 == 0 ? Expectation.OfNested(NestedOutcome.Ok) : Expectation.OfNested(NestedOutcome.NotInL2)),
            7 => new TraceCommand(TraceCommandKind.NestedInhibit, TraceCommand.NoCpu, (ulong)ApicvInhibit.L2PassthroughAccess, 0, Expectation.OfNested(NestedOutcome.Inhibit(choice % 2 == 0))),
            8 => new TraceCommand(TraceCommandKind.VmLaunch, cpu, 0, 0, (choice % 4) switch
            {
                0 => Expectation.None,
                1 => Expectation.OfNested(NestedOutcome.VmFail((int)(b & 0xFFFF))),
                2 => Expectation.OfNested(NestedOutcome.InternalError(Vmcs12FieldNames.All[(int)(b % 3)], a % NestedOutcome.AddressLimit)),
                _ => Expectation.OfNested(NestedOutcome.InternalError(null, null)),
            }),
            9 => new TraceCommand(TraceCommandKind.L2Read, cpu, word, 0, (choice % 3) switch
            {
                0 => Expectation.OfValue(b & 0xFFFF_FFFF),
                1 => Expectation.Unmapped,
                _ => Expectation.OfNested(exit),
            }),
            10 => new TraceCommand(TraceCommandKind.L2Write, cpu, word, b & 0xFFFF_FFFF, choice % 2 == 0 ? Expectation.OfNested(exit) : Expectation.OfNested(NestedOutcome.Ok)),
            _ => new TraceCommand(TraceCommandKind.L2Accept, cpu, 0, 0, choice % 2 == 0 ? Expectation.OfEvent(new CpuEvent(CpuEventKind.Fixed, (byte)b)) : Expectation.OfEvent(CpuEvent.None)),
        };
    }
}
