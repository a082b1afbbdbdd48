using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>PPR, acceptance, acknowledgment, EOI, EOI broadcast and CR8 (lapic-reference.md §5, §6; §15 #46-#55).</summary>
public sealed class LocalApicPriorityTests
{
    [Fact]
    public void Ppr_TprZeroIsrEmpty_IsZero() // §15 #46
    {
        Assert.Equal(0u, TestApicHost.CreateEnabled().Read(0x0A0));
    }

    [Theory] // §15 #47-#50
    [InlineData(0x35u, 0x41, 0x40u)]
    [InlineData(0x50u, 0x41, 0x50u)]
    [InlineData(0x4Fu, 0x41, 0x4Fu)]
    [InlineData(0x10u, 0xFE, 0xF0u)]
    [InlineData(0x40u, 0x41, 0x40u)]
    [InlineData(0x00u, 0x10, 0x10u)]
    public void Ppr_FromTprAndHighestIsr(uint tpr, byte inService, uint ppr)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Service(inService);
        host.Write(0x080, tpr);
        Assert.Equal(ppr, host.Read(0x0A0));
        Assert.Equal((byte)ppr, host.Apic.ProcessorPriority);
    }

    [Fact]
    public void SameClassAsPpr_IsNotDeliverable_HigherClassIs() // §15 #51
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x080, 0x4F);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x45, levelTriggered: false);
        Assert.False(host.Apic.HasDeliverableInterrupt);
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
        host.SelfIpi(0x51);
        Assert.True(host.Apic.HasDeliverableInterrupt);
        Assert.Equal(0x51, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void NestedSelfIpis_AcceptHighestThenLowerAfterEoi() // §15 #52
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0004_4031);
        host.Write(0x300, 0x0004_4061);
        Assert.Equal(0x61, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(0x60u, host.Read(0x0A0));
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
        host.Write(0x0B0, 0);
        Assert.False(host.Apic.Isr.Get(0x61));
        Assert.Equal(0x31, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void Cr8AndTpr_AreTwoViewsOfTheSameRegister() // §15 #53
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(ApicAccessResult.Ok, host.Apic.WriteCr8(5));
        Assert.Equal(0x50u, host.Read(0x080));
        host.Write(0x080, 0x7A);
        Assert.Equal(7UL, host.Apic.ReadCr8());
    }

    [Fact]
    public void SoftwareDisabled_DropsFixedButLatchesNmi() // §15 #54 (target side)
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: false));
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Nmi, 0, levelTriggered: false));
        Assert.Equal(ApicEvents.Nmi, host.Apic.PendingEvents);
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(1, host.Apic.Counters.DroppedSoftwareDisabled);
        host.Apic.ClearPendingEvents(ApicEvents.Nmi);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
    }

    [Fact]
    public void SoftwareDisabled_StillAcceptsSmiInitSipi()
    {
        TestApicHost host = TestApicHost.Create();
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Smi, 0, levelTriggered: false));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Init, 0, levelTriggered: false));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.StartUp, 0x08, levelTriggered: false));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.StartUp, 0x09, levelTriggered: false));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.ExtInt, 0, levelTriggered: true));
        Assert.Equal(ApicEvents.Smi | ApicEvents.Init | ApicEvents.StartUp | ApicEvents.ExtInt, host.Apic.PendingEvents);
        Assert.Equal(0x09, host.Apic.StartupVector);
    }

    [Fact]
    public void SoftwareDisabled_AfterAcceptance_IrrStaysDeliverable() // A18 (KVM)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x80, levelTriggered: false);
        host.Write(0x0F0, 0xFF);
        Assert.True(host.Apic.HasDeliverableInterrupt);
        Assert.Equal(0x80, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void Reserved3_IsRefused()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Reserved3, 0x40, levelTriggered: false));
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
        Assert.Equal(1, host.Apic.Counters.DroppedReservedMode);
    }

    [Theory]
    [InlineData(DeliveryMode.Fixed)]
    [InlineData(DeliveryMode.LowestPriority)]
    public void Acceptance_LevelSetsTmr_EdgeClearsIt(DeliveryMode mode)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.True(host.Apic.AcceptInterrupt(mode, 0x70, levelTriggered: true));
        Assert.True(host.Apic.Irr.Get(0x70));
        Assert.True(host.Apic.Tmr.Get(0x70));
        Assert.Equal(0x70, host.Apic.AcknowledgeInterrupt());
        Assert.True(host.Apic.AcceptInterrupt(mode, 0x70, levelTriggered: false));
        Assert.False(host.Apic.Tmr.Get(0x70));
    }

    [Theory]
    [InlineData((byte)0)]
    [InlineData((byte)15)]
    public void IllegalVector_IsRefusedWithEsrBit6(byte vector) // §5, §8
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered: false));
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(0x40u, host.Apic.PendingErrors);
    }

    [Fact]
    public void Vector16_IsLegalForTheApic()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 16, levelTriggered: false));
        Assert.Equal(0u, host.Apic.PendingErrors);
        Assert.Equal(16, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void SecondArrival_MergesWithPendingVector()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: false);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: false);
        Assert.Equal(1, host.Apic.Counters.FixedAccepted);
        Assert.Equal(1, host.Apic.Counters.Merged);
        Assert.Equal(0x40, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void OnePendingPlusOneInService_PerVector()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Service(0x40);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: false);
        Assert.True(host.Apic.Irr.Get(0x40));
        Assert.True(host.Apic.Isr.Get(0x40));
        Assert.False(host.Apic.HasDeliverableInterrupt);
        host.Write(0x0B0, 0);
        Assert.Equal(0x40, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void Eoi_RetiresHighestInServiceNotTheWrittenValue() // §5
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Service(0x31);
        host.Service(0x62);
        host.Write(0x0B0, 0x31);
        Assert.True(host.Apic.Isr.Get(0x31));
        Assert.False(host.Apic.Isr.Get(0x62));
        Assert.Equal(0x30u, host.Read(0x0A0));
    }

    [Fact]
    public void Eoi_LevelTriggeredVector_IsBroadcast()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x77, levelTriggered: true);
        host.Apic.AcknowledgeInterrupt();
        host.Write(0x0B0, 0);
        Assert.Equal([(byte)0x77], host.EoiBroadcasts);
        Assert.Equal(1, host.Apic.Counters.EoiBroadcasts);
    }

    [Fact]
    public void Eoi_EdgeTriggeredVector_IsNotBroadcast()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Service(0x77);
        host.Write(0x0B0, 0);
        Assert.Empty(host.EoiBroadcasts);
    }

    [Fact]
    public void Eoi_WithSuppressionBit_IsNotBroadcast() // §5 EOI-broadcast suppression
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x0F0, 0x11FF);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: true);
        host.Apic.AcknowledgeInterrupt();
        host.Write(0x0B0, 0);
        Assert.Empty(host.EoiBroadcasts);
        Assert.True(host.Apic.Isr.IsEmpty);
    }

    [Fact]
    public void Eoi_X2Apic_BroadcastAndSuppression()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.Wrmsr(0x80F, 0x1FF);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: true);
        host.Apic.AcknowledgeInterrupt();
        host.Wrmsr(0x80B, 0);
        host.Wrmsr(0x80F, 0x11FF);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x41, levelTriggered: true);
        host.Apic.AcknowledgeInterrupt();
        host.Wrmsr(0x80B, 0);
        Assert.Equal([(byte)0x40], host.EoiBroadcasts);
    }

    [Fact]
    public void Svr_ClearingEnable_MasksEveryLvtAndReEnableLeavesThemMasked() // §15 #55
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x320, 0x20);
        host.Write(0x350, 0x0000_0700);
        host.Write(0x0F0, 0x0FF);
        Assert.Equal(0x0001_0020u, host.Read(0x320));
        Assert.Equal(0x0001_0700u, host.Read(0x350));
        host.Write(0x0F0, 0x1FF);
        Assert.Equal(0x0001_0020u, host.Read(0x320));
    }

    [Fact]
    public void Svr_EnableChange_NotifiesRouting()
    {
        TestApicHost host = TestApicHost.Create();
        int before = host.RoutingChangedCount;
        host.Write(0x0F0, 0x1FF);
        host.Write(0x0F0, 0x1EF);
        host.Write(0x0F0, 0x0FF);
        Assert.Equal(before + 2, host.RoutingChangedCount);
    }

    [Fact]
    public void Tpr_RaisedAboveIrr_BlocksAndLoweringUnblocks()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x55, levelTriggered: false);
        host.Write(0x080, 0x50);
        Assert.False(host.Apic.HasDeliverableInterrupt);
        host.Write(0x080, 0x4F);
        Assert.True(host.Apic.HasDeliverableInterrupt);
        Assert.Equal(0x55, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(0x50, host.Apic.ProcessorPriority);
    }
}
