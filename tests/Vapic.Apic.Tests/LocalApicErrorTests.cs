using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>The ESR latch and LVT Error (lapic-reference.md §8; §15 #17, #56-#58).</summary>
public sealed class LocalApicErrorTests
{
    [Fact]
    public void SendIllegalVector_LatchSequence() // §15 #56 (sender side)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x310, 0x0100_0000);
        host.Write(0x300, 0x0000_4003);
        Assert.Equal(0u, host.Read(0x280));
        host.Write(0x280, 0);
        Assert.Equal(0x20u, host.Read(0x280));
        host.Write(0x280, 0);
        Assert.Equal(0u, host.Read(0x280));
        InterruptMessage message = Assert.Single(host.SentIpis); // A9: the message still goes out
        Assert.Equal((byte)3, message.Vector);
        Assert.Equal(1u, message.Destination);
    }

    [Fact]
    public void ReceiveIllegalVector_LatchesBit6AndLeavesIrr() // §15 #56 (receiver side)
    {
        TestApicHost host = TestApicHost.CreateEnabled(id: 1);
        Assert.False(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 3, levelTriggered: false));
        host.Write(0x280, 0);
        Assert.Equal(0x40u, host.Read(0x280));
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void SelfIpiIllegalVector_SetsBothBits() // §15 #57
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x300, 0x0004_4005);
        host.Write(0x280, 0);
        Assert.Equal(0x60u, host.Read(0x280));
        Assert.False(host.Apic.Irr.Get(5));
    }

    [Fact]
    public void RepeatedError_RaisesOneErrorInterrupt() // §15 #58 (sender side)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x370, 0x0000_00E0);
        host.Write(0x310, 0x0100_0000);
        host.Write(0x300, 0x0000_4003);
        host.Write(0x300, 0x0000_4003);
        Assert.True(host.Apic.Irr.Get(0xE0));
        Assert.Equal(1, host.Apic.Counters.FixedAccepted);
        Assert.Equal(0, host.Apic.Counters.Merged);
        host.Write(0x280, 0);
        Assert.Equal(0x20u, host.Read(0x280));
    }

    [Fact]
    public void ReadBeforeFirstWrite_ReturnsOldValue()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Read(0x3B0); // bit 7
        host.Write(0x280, 0);
        host.Read(0x3B0); // pending again, not yet visible
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 1, levelTriggered: false);
        Assert.Equal(0x80u, host.Read(0x280));
        Assert.Equal(0xC0u, host.Apic.PendingErrors);
        host.Write(0x280, 0x1234); // any value latches in xAPIC mode
        Assert.Equal(0xC0u, host.Read(0x280));
    }

    [Fact]
    public void ErrorAfterLatch_RaisesANewErrorInterrupt()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x370, 0x0000_00E0);
        host.Read(0x3A0);
        Assert.Equal(0xE0, host.Apic.AcknowledgeInterrupt());
        host.Write(0x0B0, 0);
        host.Read(0x3A0); // same bit, still pending: no interrupt
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Write(0x280, 0);
        host.Read(0x3A0); // pending cleared by the latch: a new interrupt
        Assert.True(host.Apic.Irr.Get(0xE0));
    }

    [Fact]
    public void DifferentNewBit_RaisesAnotherErrorInterrupt() // U7: one interrupt per new bit
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x370, 0x0000_00E0);
        host.Read(0x3A0);
        Assert.Equal(0xE0, host.Apic.AcknowledgeInterrupt());
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 2, levelTriggered: false);
        Assert.True(host.Apic.Irr.Get(0xE0));
    }

    [Fact]
    public void MaskedLvtError_StillRecords()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x370, 0x0001_00E0);
        host.Read(0x3A0);
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Write(0x280, 0);
        Assert.Equal(0x80u, host.Read(0x280));
    }

    [Fact]
    public void LvtErrorWithIllegalVector_FoldsBit6AndDeliversNothing()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x370, 0x0000_0009);
        host.Read(0x3A0);
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Write(0x280, 0);
        Assert.Equal(0xC0u, host.Read(0x280));
    }

    [Fact]
    public void X2Apic_NoReservedOffsetErrors_EsrLatchesWithZero()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.RdmsrFaults(0x83A);
        host.Wrmsr(0x83F, 0x07);
        host.WrmsrFaults(0x828, 0x60);
        Assert.Equal(0UL, host.Rdmsr(0x828));
        host.Wrmsr(0x828, 0);
        Assert.Equal(0x60UL, host.Rdmsr(0x828));
    }

    [Fact]
    public void LowestPriorityIpiIllegalVector_SetsSendError()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x300, 0x0000_410F);
        Assert.Equal(0x20u, host.Apic.PendingErrors);
    }

    [Theory] // No vector check for SMI, NMI, INIT, SIPI.
    [InlineData(0x0000_4200u)]
    [InlineData(0x0000_4400u)]
    [InlineData(0x0000_4500u)]
    [InlineData(0x0000_4601u)]
    public void NonFixedIpiWithLowVector_RaisesNoError(uint icr)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x300, icr);
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Fact]
    public void AbsentDestination_NoSenderError() // §15 #85 (sender side)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x310, 0x0700_0000);
        host.Write(0x300, 0x0000_4041);
        Assert.Single(host.SentIpis);
        Assert.Equal(0u, host.Apic.PendingErrors);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void Reset_ClearsEsrAndPending()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Read(0x3A0);
        host.Write(0x280, 0);
        host.Read(0x3A0);
        host.Apic.Reset(init: true);
        Assert.Equal(0u, host.Apic.ErrorStatus);
        Assert.Equal(0u, host.Apic.PendingErrors);
    }
}
