using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>IA32_APIC_BASE: reset values, reserved bits, the mode state machine and its effects (lapic-reference.md §3; §15 #6, #19-#23).</summary>
public sealed class LocalApicBaseMsrTests
{
    private const ulong Disabled = 0xFEE0_0100; // BSP, EN = 0, EXTD = 0
    private const ulong XApic = 0xFEE0_0900;
    private const ulong X2Apic = 0xFEE0_0D00;
    private const ulong Invalid = 0xFEE0_0500; // EN = 0, EXTD = 1

    [Fact]
    public void PowerOn_BspAndAp_BaseValues() // §15 #6
    {
        Assert.Equal(0xFEE0_0900UL, TestApicHost.Create(bsp: true).Rdmsr(0x1B));
        TestApicHost ap = TestApicHost.Create(id: 1, bsp: false);
        Assert.Equal(0xFEE0_0800UL, ap.Rdmsr(0x1B));
        Assert.False(ap.Apic.IsBootstrapProcessor);
        Assert.Equal(ApicMode.XApic, ap.Apic.Mode);
        Assert.Equal(LocalApic.DefaultBase, ap.Apic.MmioBase);
    }

    [Fact]
    public void EnterX2Apic_FromXApic_WindowStopsDecoding() // §15 #19
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFEE0_0D00);
        Assert.Equal(0xFEE0_0D00UL, host.Rdmsr(0x1B));
        Assert.Equal(ApicMode.X2Apic, host.Apic.Mode);
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEE0_0030, out _));
    }

    [Fact]
    public void X2ApicToXApic_Directly_Faults() // §15 #20
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.WrmsrFaults(0x1B, 0xFEE0_0900);
        Assert.Equal(ApicMode.X2Apic, host.Apic.Mode);
        Assert.Equal(0xFEE0_0D00UL, host.Rdmsr(0x1B));
    }

    [Fact]
    public void X2ApicToXApic_ThroughDisabled_RestoresXApicId() // §15 #21
    {
        TestApicHost host = TestApicHost.Create(id: 5, x2Apic: true);
        host.Wrmsr(0x1B, 0xFEE0_0100);
        Assert.Equal(ApicMode.Disabled, host.Apic.Mode);
        host.WrmsrFaults(0x1B, 0xFEE0_0D00);
        host.WrmsrFaults(0x1B, 0xFEE0_0500);
        host.Wrmsr(0x1B, 0xFEE0_0900);
        Assert.Equal(ApicMode.XApic, host.Apic.Mode);
        Assert.Equal(0x0500_0000u, host.Read(0x020));
        Assert.Equal(5u, host.Apic.Id);
    }

    [Fact]
    public void XApicToInvalidCombination_Faults() // §15 #22
    {
        TestApicHost host = TestApicHost.Create();
        host.WrmsrFaults(0x1B, 0xFEE0_0500);
        Assert.Equal(ApicMode.XApic, host.Apic.Mode);
    }

    [Fact]
    public void ReservedBits_Fault() // §15 #23
    {
        TestApicHost host = TestApicHost.Create();
        host.WrmsrFaults(0x1B, 0xFEE0_0901);
        host.WrmsrFaults(0x1B, 0xFEE0_0B00);
        host.WrmsrFaults(0x1B, 0xFEE0_0900UL | (1UL << 46));
        host.WrmsrFaults(0x1B, 0xFEE0_0900UL | (1UL << 63));
        host.WrmsrFaults(0x1B, 0xFEE0_0980);
        Assert.Equal(0xFEE0_0900UL, host.Rdmsr(0x1B));
    }

    [Theory]
    [InlineData(36)]
    [InlineData(39)]
    [InlineData(52)]
    public void MaxPhysicalAddress_BitsAtOrAboveFault_BelowAccepted(int maxPhys)
    {
        TestApicHost host = TestApicHost.Create(maxPhysicalAddressBits: maxPhys);
        host.WrmsrFaults(0x1B, 0xFEE0_0900UL | (1UL << maxPhys));
        ulong highest = (1UL << (maxPhys - 1)) | 0xFEE0_0900UL;
        host.Wrmsr(0x1B, highest);
        Assert.Equal(highest & ~0xFFFUL, host.Apic.MmioBase);
    }

    // The §3 transition table: from (row) × written (EN, EXTD) → ok / #GP.
    [Theory]
    [InlineData("disabled", Disabled, true, ApicMode.Disabled)]
    [InlineData("disabled", XApic, true, ApicMode.XApic)]
    [InlineData("disabled", X2Apic, false, ApicMode.Disabled)]
    [InlineData("disabled", Invalid, false, ApicMode.Disabled)]
    [InlineData("xapic", Disabled, true, ApicMode.Disabled)]
    [InlineData("xapic", XApic, true, ApicMode.XApic)]
    [InlineData("xapic", X2Apic, true, ApicMode.X2Apic)]
    [InlineData("xapic", Invalid, false, ApicMode.XApic)]
    [InlineData("x2apic", Disabled, true, ApicMode.Disabled)]
    [InlineData("x2apic", XApic, false, ApicMode.X2Apic)]
    [InlineData("x2apic", X2Apic, true, ApicMode.X2Apic)]
    [InlineData("x2apic", Invalid, false, ApicMode.X2Apic)]
    public void TransitionTable(string from, ulong written, bool ok, ApicMode expected)
    {
        TestApicHost host = TestApicHost.Create();
        if (from == "disabled")
        {
            host.Wrmsr(0x1B, Disabled);
        }
        else if (from == "x2apic")
        {
            host.Wrmsr(0x1B, X2Apic);
        }

        Assert.Equal(ok ? ApicAccessResult.Ok : ApicAccessResult.GeneralProtection, host.Apic.WriteMsr(0x1B, written));
        Assert.Equal(expected, host.Apic.Mode);
    }

    [Fact]
    public void EnterX2Apic_KeepsRegistersAndDerivesLdr() // §3 effects (KVM)
    {
        TestApicHost host = TestApicHost.CreateEnabled(id: 0x13);
        host.Write(0x080, 0x20);
        host.Write(0x0D0, 0x0400_0000);
        host.Write(0x320, 0x0002_0040);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x55, levelTriggered: true);
        host.SwitchToX2Apic();
        Assert.Equal(0x13UL, host.Rdmsr(0x802));
        Assert.Equal(0x0001_0008UL, host.Rdmsr(0x80D));
        Assert.Equal(0x20UL, host.Rdmsr(0x808));
        Assert.Equal(0x1FFUL, host.Rdmsr(0x80F));
        Assert.Equal(0x0002_0040UL, host.Rdmsr(0x832));
        Assert.Equal(0x0020_0000UL, host.Rdmsr(0x822));
        Assert.Equal(0x0020_0000UL, host.Rdmsr(0x81A));
    }

    [Fact]
    public void Disable_KeepsStateAndRefusesEverything() // §3 effects, A15
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x080, 0x20);
        host.Write(0x350, 0x0000_0041);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x55, levelTriggered: false);
        host.Wrmsr(0x1B, Disabled);
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x56, levelTriggered: false));
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Nmi, 0, levelTriggered: false));
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Init, 0, levelTriggered: false));
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.StartUp, 8, levelTriggered: false));
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
        Assert.False(host.Apic.HasDeliverableInterrupt);
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(4, host.Apic.Counters.DroppedGloballyDisabled);

        host.Wrmsr(0x1B, XApic);
        Assert.Equal(0x20u, host.Read(0x080));
        Assert.Equal(0x1FFu, host.Read(0x0F0));
        Assert.Equal(0x41u, host.Read(0x350));
        Assert.True(host.Apic.Irr.Get(0x55));
        Assert.False(host.Apic.Irr.Get(0x56));
    }

    [Fact]
    public void ReEnable_RewritesChangedXApicId()
    {
        TestApicHost host = TestApicHost.Create(id: 3, bsp: false);
        host.Write(0x020, 0x0900_0000);
        host.Wrmsr(0x1B, 0xFEE0_0000);
        host.Wrmsr(0x1B, 0xFEE0_0800);
        Assert.Equal(0x0300_0000u, host.Read(0x020));
    }

    [Fact]
    public void Relocation_MovesTheWindow() // A16
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFED4_0900);
        Assert.Equal(0xFED4_0000UL, host.Apic.MmioBase);
        Assert.Equal(ApicAccessResult.Ok, host.Apic.ReadMmio(0xFED4_0030, out uint version));
        Assert.Equal(0x0105_0014u, version);
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEE0_0030, out _));
    }

    [Fact]
    public void SameValueWrite_IsNoOp()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true, locked: true);
        int before = host.RoutingChangedCount;
        host.Wrmsr(0x1B, 0xFEE0_0D00);
        Assert.Equal(before, host.RoutingChangedCount);
    }

    [Fact]
    public void BspBit_IsWritable()
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFEE0_0800);
        Assert.False(host.Apic.IsBootstrapProcessor);
        host.Wrmsr(0x1B, 0xFEE0_0900);
        Assert.True(host.Apic.IsBootstrapProcessor);
    }

    [Fact]
    public void Locked_StartsInX2ApicAndRefusesLeaving() // §3 locked x2APIC
    {
        TestApicHost host = TestApicHost.Create(id: 2, bsp: false, locked: true);
        Assert.Equal(0xFEE0_0C00UL, host.Rdmsr(0x1B));
        host.WrmsrFaults(0x1B, 0xFEE0_0000);
        host.WrmsrFaults(0x1B, 0xFEE0_0800);
        host.WrmsrFaults(0x1B, 0xFEE0_0400);
        host.Wrmsr(0x1B, 0xFEE0_0D00); // BSP bit only: still x2APIC
        host.Apic.Reset(init: true);
        host.WrmsrFaults(0x1B, 0xFEE0_0000);
        Assert.Equal(ApicMode.X2Apic, host.Apic.Mode);
    }

    [Fact]
    public void ModeChanges_NotifyRouting()
    {
        TestApicHost host = TestApicHost.Create();
        int before = host.RoutingChangedCount;
        host.SwitchToX2Apic();
        host.Wrmsr(0x1B, Disabled);
        host.Wrmsr(0x1B, XApic);
        Assert.Equal(before + 3, host.RoutingChangedCount);
    }

    [Fact]
    public void StartInX2ApicMode_Unlocked_CanLeave()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        Assert.Equal(0xFEE0_0D00UL, host.Rdmsr(0x1B));
        host.Wrmsr(0x1B, Disabled);
        Assert.Equal(ApicMode.Disabled, host.Apic.Mode);
    }
}
