using Vapic.Virtualization.Nested;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// The built-in scenarios of <c>vapic nested</c> (issue 5 acceptance): unbacked APIC-access
/// addresses stop with an internal error naming the field and address and L2 never touches L1's
/// APIC, the quirk shows the exposure; the direct-access scenario loses interrupts only under its
/// quirk and only where L1's APIC is accelerated; by default the inhibit is set and reported there
/// and every interrupt arrives.
/// </summary>
public sealed class NestedScenarioTests
{
    public static TheoryData<string> Modes() => NestedRig.ModeNames();

    private static NestedScenarioResult Run(string scenario, string mode, NestedQuirks quirks = NestedQuirks.None) =>
        NestedScenarios.Run(scenario, quirks, NestedRig.CreateMode(mode));

    private static bool Accelerates(string mode) => mode is "apicv" or "avic";

    [Theory]
    [MemberData(nameof(Modes))]
    public void Backed_VirtualizesL2sApicWithOrWithoutTheQuirk(string mode)
    {
        foreach (NestedQuirks quirks in new[] { NestedQuirks.None, NestedQuirks.NestedApicAccessClear })
        {
            NestedScenarioResult run = Run("backed", mode, quirks);

            Assert.Equal("ok", run.Outcome);
            Assert.Null(run.Error);
            Assert.False(run.L2TouchedL1Mmio);
            Assert.Empty(run.InhibitNames);
            Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsSent);
            Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsDelivered);
            Assert.Equal(0, run.InterruptsLost);
            Assert.Contains(run.Transcript, line => line.Contains("APIC ID at 0xfee00020: 0x01000000 (virtual-APIC page)", StringComparison.Ordinal));
            Assert.Equal(1, run.Counters.L1Exits(L1ExitReason.ApicAccess));
        }
    }

    [Theory]
    [InlineData("unbacked-hole", "emulated", 0xC000_0000UL)]
    [InlineData("unbacked-hole", "apicv", 0xC000_0000UL)]
    [InlineData("unbacked-hole", "avic", 0xC000_0000UL)]
    [InlineData("unbacked-hole", "passthrough", 0xC000_0000UL)]
    [InlineData("unbacked-l1-apic", "emulated", 0xFEE0_0000UL)]
    [InlineData("unbacked-l1-apic", "apicv", 0xFEE0_0000UL)]
    [InlineData("unbacked-l1-apic", "avic", 0xFEE0_0000UL)]
    [InlineData("unbacked-l1-apic", "passthrough", 0xFEE0_0000UL)]
    public void Unbacked_StopsWithAnInternalErrorNamingFieldAndAddress_AndL2NeverTouchesL1(string scenario, string mode, ulong address)
    {
        NestedScenarioResult run = Run(scenario, mode);

        Assert.Equal("internal-error", run.Outcome);
        Assert.Contains("APIC-access address", run.Error);
        Assert.Contains("(field 0x2014)", run.Error);
        Assert.Contains($"0x{address:x}", run.Error);
        Assert.Contains("KVM_INTERNAL_ERROR_EMULATION (1)", run.Error);
        Assert.Equal(Vmcs12Field.ApicAccessAddress, run.Entry.Error!.Field);
        Assert.Equal(address, run.Entry.Error.Address);
        Assert.False(run.L2TouchedL1Mmio);
        Assert.Equal(0, run.Counters.L1ApicAccesses);
        Assert.Equal(0, run.Counters.Entries);
        Assert.Empty(run.InhibitNames);
        Assert.Equal(0, run.InterruptsSent);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void UnbackedHoleQuirk_L2LosesApicVirtualizationAndItsInterrupts(string mode)
    {
        NestedScenarioResult run = Run("unbacked-hole", mode, NestedQuirks.NestedApicAccessClear);

        Assert.Equal("ok", run.Outcome);
        Assert.False(run.L2TouchedL1Mmio);
        Assert.True(run.Counters.VmmMmioExits > 0);
        Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsSent);
        Assert.Equal(1, run.InterruptsDelivered);
        Assert.Equal(NestedScenarios.InterruptCount - 1, run.InterruptsLost);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void UnbackedL1ApicQuirk_ExposesL1sApicToL2(string mode)
    {
        NestedScenarioResult run = Run("unbacked-l1-apic", mode, NestedQuirks.NestedApicAccessClear);

        Assert.Equal("ok", run.Outcome);
        Assert.True(run.L2TouchedL1Mmio);
        Assert.True(run.Counters.L1ApicAccesses > 0);
        Assert.Contains(run.Transcript, line => line.Contains("APIC ID at 0xfee00020: 0x00000000 (L1's own APIC)", StringComparison.Ordinal));
        Assert.Contains(run.Transcript, line => line.Contains("TPR 0x10", StringComparison.Ordinal) && line.Contains("no longer in service", StringComparison.Ordinal));
        Assert.Equal(NestedScenarios.InterruptCount - 1, run.InterruptsLost);
        Assert.Equal(Accelerates(mode) ? ["l2-passthrough-access"] : [], run.InhibitNames);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void DirectAccess_ByDefault_SetsAndReportsTheInhibitWhereAccelerated_AndLosesNothing(string mode)
    {
        NestedScenarioResult run = Run("l2-direct-access", mode);

        Assert.Equal("ok", run.Outcome);
        Assert.True(run.L2TouchedL1Mmio);
        Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsSent);
        Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsDelivered);
        Assert.Equal(0, run.InterruptsLost);
        Assert.Equal(Accelerates(mode) ? ["l2-passthrough-access"] : [], run.InhibitNames);
        Assert.Equal(0, run.Counters.EoisLost);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void DirectAccess_UnderTheQuirk_LosesInterruptsOnlyWhereAccelerated(string mode)
    {
        NestedScenarioResult run = Run("l2-direct-access", mode, NestedQuirks.L2PassthroughNoInhibit);

        Assert.Empty(run.InhibitNames);
        Assert.Equal(NestedScenarios.InterruptCount, run.InterruptsSent);
        if (Accelerates(mode))
        {
            Assert.Equal(1, run.InterruptsDelivered);
            Assert.Equal(NestedScenarios.InterruptCount - 1, run.InterruptsLost);
            Assert.Equal(1, run.Counters.EoisLost);
        }
        else
        {
            Assert.Equal(0, run.InterruptsLost);
        }
    }

    [Fact]
    public void Json_IsOneObjectWithTheIssuesKeysInOrder()
    {
        NestedScenarioResult run = Run("unbacked-l1-apic", "apicv");

        Assert.Equal(
            """{"scenario":"unbacked-l1-apic","quirks":[],"outcome":"internal-error","error":"KVM_EXIT_INTERNAL_ERROR (17), suberror KVM_INTERNAL_ERROR_EMULATION (1): no backing for the APIC-access address in vmcs12 (field 0x2014) = 0xfee00000: L1 has its own local APIC there, not RAM","l2TouchedL1Mmio":false,"inhibits":[],"interruptsSent":0,"interruptsDelivered":0,"interruptsLost":0}""",
            NestedScenarioJson.Serialize(run));
    }

    [Fact]
    public void Json_QuirkRunOfTheDirectAccessScenario()
    {
        NestedScenarioResult run = Run("l2-direct-access", "apicv", NestedQuirks.L2PassthroughNoInhibit);

        Assert.Equal(
            """{"scenario":"l2-direct-access","quirks":["l2-passthrough-no-inhibit"],"outcome":"ok","error":null,"l2TouchedL1Mmio":true,"inhibits":[],"interruptsSent":8,"interruptsDelivered":1,"interruptsLost":7}""",
            NestedScenarioJson.Serialize(run));
        Assert.Equal(
            """{"scenario":"l2-direct-access","quirks":[],"outcome":"ok","error":null,"l2TouchedL1Mmio":true,"inhibits":["l2-passthrough-access"],"interruptsSent":8,"interruptsDelivered":8,"interruptsLost":0}""",
            NestedScenarioJson.Serialize(Run("l2-direct-access", "apicv")));
    }

    [Fact]
    public void Runs_AreDeterministic()
    {
        foreach (string scenario in NestedScenarios.Names)
        {
            NestedScenarioResult a = Run(scenario, "apicv", NestedScenarios.ComparisonQuirks(scenario));
            NestedScenarioResult b = Run(scenario, "apicv", NestedScenarios.ComparisonQuirks(scenario));
            Assert.Equal(a.Transcript, b.Transcript);
            Assert.Equal(NestedScenarioJson.Serialize(a), NestedScenarioJson.Serialize(b));
        }
    }

    [Fact]
    public void UnknownScenario_IsRefused() =>
        Assert.Throws<ArgumentException>(() => NestedScenarios.Run("sideways", NestedQuirks.None, new EmulatedMode()));

    [Theory]
    [InlineData(ApicvInhibit.L2PassthroughAccess, "l2-passthrough-access")]
    [InlineData(ApicvInhibit.PhysicalIdAliased, "physical-id-aliased")]
    [InlineData(ApicvInhibit.BlockIrq, "block-irq")]
    public void InhibitNames_AreLowerCaseAndHyphenated(ApicvInhibit reason, string name) =>
        Assert.Equal(name, NestedScenarioResult.InhibitName(reason));
}
