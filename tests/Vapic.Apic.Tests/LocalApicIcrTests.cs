using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>ICR and SELF IPI encoding and the sender side of IPIs (lapic-reference.md §10; §15 #36, #39-#43, #83, #84).</summary>
public sealed class LocalApicIcrTests
{
    private static InterruptMessage SendXApic(uint high, uint low, uint id = 0)
    {
        TestApicHost host = TestApicHost.CreateEnabled(id: id);
        host.Loopback = false;
        host.Write(0x310, high);
        host.Write(0x300, low);
        return Assert.Single(host.SentIpis);
    }

    [Fact]
    public void Sipi_Encoding() // §15 #39 (sender side)
    {
        InterruptMessage message = SendXApic(0x0100_0000, 0x0000_4608);
        Assert.Equal(DeliveryMode.StartUp, message.DeliveryMode);
        Assert.Equal((byte)0x08, message.Vector);
        Assert.Equal(1u, message.Destination);
        Assert.Equal(DestinationMode.Physical, message.DestinationMode);
        Assert.Equal(DestinationShorthand.None, message.Shorthand);
        Assert.True(message.Assert);
        Assert.False(message.LevelTriggered);
        Assert.Equal(InterruptSource.Ipi, message.Source);
        Assert.Equal(0, message.SourceVcpu);
    }

    [Fact]
    public void Init_Encoding() // §15 #41 (sender side)
    {
        InterruptMessage message = SendXApic(0x0100_0000, 0x0000_4500);
        Assert.Equal(DeliveryMode.Init, message.DeliveryMode);
        Assert.True(message.Assert);
    }

    [Fact]
    public void InitDeassert_IsSentWithAssertFalse() // §15 #43 (sender side)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0008_8500);
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(DeliveryMode.Init, message.DeliveryMode);
        Assert.False(message.Assert);
        Assert.Equal(DestinationShorthand.AllIncludingSelf, message.Shorthand);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents); // the loopback ignores a de-assert, as the router must
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Fact]
    public void InitWithEdgeTriggerAndLevelZero_IsAnOrdinaryInit()
    {
        InterruptMessage message = SendXApic(0x0100_0000, 0x0000_0500);
        Assert.True(message.Assert);
    }

    [Fact]
    public void SelfNmi_IsDelivered() // §15 #83 (A11)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0004_4400);
        Assert.Equal(ApicEvents.Nmi, host.Apic.PendingEvents);
    }

    [Fact]
    public void LevelFixedIpi_IsSentAsEdge() // §15 #84 (A10)
    {
        InterruptMessage message = SendXApic(0x0100_0000, 0x0000_C051);
        Assert.False(message.LevelTriggered);
        Assert.True(message.Assert);
        Assert.Equal((byte)0x51, message.Vector);
    }

    [Fact]
    public void LevelFixedSelfIpi_LeavesTmrClear() // §15 #84 (A10), looped back
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0004_C051);
        Assert.True(host.Apic.Irr.Get(0x51));
        Assert.False(host.Apic.Tmr.Get(0x51));
    }

    [Theory]
    [InlineData(0x0000_0000u, DestinationShorthand.None)]
    [InlineData(0x0004_0000u, DestinationShorthand.Self)]
    [InlineData(0x0008_0000u, DestinationShorthand.AllIncludingSelf)]
    [InlineData(0x000C_0000u, DestinationShorthand.AllExcludingSelf)]
    public void Shorthand_Encoding(uint bits, DestinationShorthand expected) // §15 #75 uses 0x000C_4031
    {
        Assert.Equal(expected, SendXApic(0, bits | 0x4031).Shorthand);
    }

    [Theory]
    [InlineData(0x0000_0040u, DeliveryMode.Fixed)]
    [InlineData(0x0000_0140u, DeliveryMode.LowestPriority)]
    [InlineData(0x0000_0200u, DeliveryMode.Smi)]
    [InlineData(0x0000_0400u, DeliveryMode.Nmi)]
    [InlineData(0x0000_0500u, DeliveryMode.Init)]
    [InlineData(0x0000_0600u, DeliveryMode.StartUp)]
    public void DeliveryMode_Encoding(uint low, DeliveryMode expected)
    {
        Assert.Equal(expected, SendXApic(0x0200_0000, low | 0x4000).DeliveryMode);
    }

    [Theory]
    [InlineData(0x0000_4340u)]
    [InlineData(0x0000_4740u)]
    public void ReservedDeliveryModes_AreNotSent(uint low)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, low);
        Assert.Empty(host.SentIpis);
        Assert.Equal(low, host.Read(0x300));
        Assert.Equal(1, host.Apic.Counters.IpisDroppedReservedMode);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void LogicalDestination_Encoding() // §15 #78 sender side
    {
        InterruptMessage message = SendXApic(0x0600_0000, 0x0000_4851);
        Assert.Equal(DestinationMode.Logical, message.DestinationMode);
        Assert.Equal(6u, message.Destination);
    }

    [Fact]
    public void XApicBroadcastDestination_IsFF() // §15 #76 sender side
    {
        InterruptMessage message = SendXApic(0xFF00_0000, 0x0000_4041);
        Assert.Equal(InterruptMessage.XApicBroadcast, message.Destination);
    }

    [Fact]
    public void X2ApicBroadcastDestination_IsFFFFFFFF() // §15 #77 sender side
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x830, 0xFFFF_FFFF_0000_4041);
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(InterruptMessage.X2ApicBroadcast, message.Destination);
        Assert.True(host.Apic.Irr.Get(0x41));
    }

    [Fact]
    public void SourceVcpu_IsTheSendersIndex()
    {
        TestApicHost host = TestApicHost.Create(id: 9, bsp: false, vcpuIndex: 3);
        host.Write(0x0F0, 0x1FF);
        host.Loopback = false;
        host.Write(0x300, 0x000C_4031);
        Assert.Equal(3, Assert.Single(host.SentIpis).SourceVcpu);
        Assert.Equal(3, host.Apic.VcpuIndex);
    }

    [Fact]
    public void IcrHighWrite_UsesCurrentHighForEachLowWrite()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x310, 0x0100_0000);
        host.Write(0x300, 0x0000_4041);
        host.Write(0x300, 0x0000_4042);
        host.Write(0x310, 0x0200_0000);
        host.Write(0x300, 0x0000_4043);
        Assert.Equal(3, host.SentIpis.Count);
        Assert.Equal(1u, host.SentIpis[1].Destination);
        Assert.Equal(2u, host.SentIpis[2].Destination);
        Assert.Equal(3, host.Apic.Counters.IpisSent);
    }

    [Fact]
    public void IcrDeliveryStatus_AlwaysReadsZero()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0004_5031);
        Assert.Equal(0x0004_4031u, host.Read(0x300));
    }

    [Fact]
    public void SoftwareDisabled_CanStillSendIpis() // §6
    {
        TestApicHost host = TestApicHost.Create();
        host.Loopback = false;
        host.Write(0x310, 0x0100_0000);
        host.Write(0x300, 0x0000_4041);
        Assert.Single(host.SentIpis);
    }

    [Fact]
    public void SelfIpiMsr_SendsSelfShorthandWithOwnId()
    {
        TestApicHost host = TestApicHost.CreateEnabled(id: 0x45, x2Apic: true);
        host.Wrmsr(0x83F, 0x99);
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(DestinationShorthand.Self, message.Shorthand);
        Assert.Equal(0x45u, message.Destination);
        Assert.Equal((byte)0x99, message.Vector);
        Assert.True(host.Apic.Irr.Get(0x99));
    }

    [Fact]
    public void SelfIpiMsr_IllegalVector_SetsBothBits() // §10 SELF IPI
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x83F, 0x0F);
        host.Wrmsr(0x828, 0);
        Assert.Equal(0x60UL, host.Rdmsr(0x828));
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void SelfIpiMsr_HighBitsFault()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.WrmsrFaults(0x83F, 1UL << 32);
        Assert.Empty(host.SentIpis);
    }

    [Fact]
    public void InterruptCommandToMessage_DecodesFields()
    {
        InterruptMessage message = InterruptCommand.ToMessage(0x000C_8D02, 0x1234, 7);
        Assert.Equal((byte)0x02, message.Vector);
        Assert.Equal(DeliveryMode.Init, message.DeliveryMode);
        Assert.Equal(DestinationMode.Logical, message.DestinationMode);
        Assert.Equal(DestinationShorthand.AllExcludingSelf, message.Shorthand);
        Assert.False(message.Assert);
        Assert.False(message.RedirectionHint);
        Assert.Equal(0x1234u, message.Destination);
        Assert.Equal(7, message.SourceVcpu);
    }
}
