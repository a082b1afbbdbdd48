using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>Pin semantics, message contents, Remote IRR and EOI handling (lapic-reference.md §11).</summary>
public sealed class IoApicDeliveryTests
{
    private readonly FakeIoApicHost _host = new();
    private readonly IoApic _ioApic;

    public IoApicDeliveryTests()
    {
        _ioApic = new IoApic(_host);
    }

    // Test vector #89: an unmasked edge entry sends one edge message per pulse.
    [Fact]
    public void EdgePulse_Unmasked_SendsOneEdgeMessage()
    {
        _ioApic.Write(0x2C, 0x0000_0076);
        _ioApic.Write(0x2D, 0);

        _ioApic.Pulse(14);

        var message = Assert.Single(_host.Delivered);
        Assert.Equal(
            new InterruptMessage(
                0x76,
                DeliveryMode.Fixed,
                DestinationMode.Physical,
                0,
                DestinationShorthand.None,
                LevelTriggered: false,
                Assert: true,
                RedirectionHint: false,
                InterruptSource.IoApic,
                SourceVcpu: -1),
            message);
        Assert.Equal(0x0000_0076u, _ioApic.Read(0x2C));
    }

    // Test vector #90: an edge on a masked pin is lost; unmasking sends nothing; the next edge is sent.
    [Fact]
    public void EdgePulse_Masked_IsLostAndUnmaskDoesNotReplayIt()
    {
        _ioApic.Write(0x2C, 0x0001_0081);
        _ioApic.Pulse(14);
        Assert.Empty(_host.Delivered);

        _ioApic.Write(0x2C, 0x0000_0081);
        Assert.Empty(_host.Delivered);

        _ioApic.SetLine(14, true);
        Assert.Equal(0x81, Assert.Single(_host.Delivered).Vector);
        Assert.Equal(1, _ioApic.Counters.EdgesLostMasked);
    }

    [Fact]
    public void EdgeAssertedWhileMasked_UnmaskWithLineStillHigh_SendsNothing()
    {
        _ioApic.Write(0x10, 0x0001_0021);
        _ioApic.SetLine(0, true);

        _ioApic.Write(0x10, 0x0000_0021);

        Assert.Empty(_host.Delivered);
        Assert.True(_ioApic.GetLine(0));
    }

    [Fact]
    public void EdgeReassert_WithoutDeassert_IsCoalesced()
    {
        _ioApic.Write(0x10, 0x0000_0021);

        _ioApic.SetLine(0, true);
        _ioApic.SetLine(0, true);
        _ioApic.SetLine(0, true);

        Assert.Single(_host.Delivered);
        Assert.Equal(2, _ioApic.Counters.EdgesCoalesced);
    }

    [Fact]
    public void EdgeDeassertThenAssert_SendsAgain()
    {
        _ioApic.Write(0x10, 0x0000_0021);

        _ioApic.Pulse(0);
        _ioApic.Pulse(0);

        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(2, _ioApic.Counters.MessagesSent);
    }

    [Fact]
    public void EdgeDeassert_SendsNothing()
    {
        _ioApic.Write(0x10, 0x0000_0021);
        _ioApic.SetLine(0, true);

        _ioApic.SetLine(0, false);

        Assert.Single(_host.Delivered);
        Assert.False(_ioApic.GetLine(0));
    }

    [Fact]
    public void EdgeMessage_DoesNotSetRemoteIrrEvenWhenAccepted()
    {
        _ioApic.Write(0x10, 0x0000_0021);

        _ioApic.SetLine(0, true);

        Assert.Equal(0x0000_0021u, _ioApic.Read(0x10));
    }

    // Test vector #91: level assert sends and sets Remote IRR; EOI with the line high re-delivers;
    // EOI with the line low only clears Remote IRR.
    [Fact]
    public void LevelLine_EoiWhileAsserted_RedeliversAndEoiAfterDeassertClears()
    {
        _ioApic.Write(0x2C, 0x0000_8077);

        _ioApic.SetLine(14, true);
        var first = Assert.Single(_host.Delivered);
        Assert.Equal(0x77, first.Vector);
        Assert.True(first.LevelTriggered);
        Assert.Equal(0x0000_C077u, _ioApic.Read(0x2C));

        _ioApic.EndOfInterrupt(0x77);
        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(first, _host.Delivered[1]);
        Assert.Equal(0x0000_C077u, _ioApic.Read(0x2C));

        _ioApic.SetLine(14, false);
        _ioApic.EndOfInterrupt(0x77);
        Assert.Equal(0x0000_8077u, _ioApic.Read(0x2C));
        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(1, _ioApic.Counters.Redelivered);
    }

    // Test vector #92: unmasking an asserted level pin delivers.
    [Fact]
    public void LevelLine_AssertedWhileMasked_UnmaskDelivers()
    {
        _ioApic.Write(0x2C, 0x0001_8082);
        _ioApic.SetLine(14, true);
        Assert.Empty(_host.Delivered);
        Assert.Equal(0x0001_8082u, _ioApic.Read(0x2C));

        _ioApic.Write(0x2C, 0x0000_8082);

        Assert.Equal(0x82, Assert.Single(_host.Delivered).Vector);
        Assert.Equal(0x0000_C082u, _ioApic.Read(0x2C));
        Assert.Equal(1, _ioApic.Counters.DeliveredOnEntryWrite);
    }

    [Fact]
    public void LevelLine_UnmaskAfterDeassert_SendsNothing()
    {
        _ioApic.Write(0x2C, 0x0001_8082);
        _ioApic.Pulse(14);

        _ioApic.Write(0x2C, 0x0000_8082);

        Assert.Empty(_host.Delivered);
        Assert.Equal(0x0000_8082u, _ioApic.Read(0x2C));
    }

    [Fact]
    public void LevelLine_MaskAndUnmaskWithRemoteIrrSet_SendsNothingMore()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        _ioApic.Write(0x10, 0x0001_8030);
        _ioApic.Write(0x10, 0x0000_8030);

        Assert.Single(_host.Delivered);
        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
    }

    [Fact]
    public void LevelLine_ReassertWhileRemoteIrr_IsCoalesced()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        _ioApic.SetLine(0, true);
        _ioApic.SetLine(0, false);
        _ioApic.SetLine(0, true);

        Assert.Single(_host.Delivered);
        Assert.Equal(2, _ioApic.Counters.LevelCoalesced);

        _ioApic.EndOfInterrupt(0x30);
        Assert.Equal(2, _host.Delivered.Count);
    }

    [Fact]
    public void LevelLine_DeassertKeepsRemoteIrrUntilEoi()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        _ioApic.SetLine(0, false);

        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
    }

    // KVM semantics: Remote IRR is set unless destinations existed and every one of them refused.
    [Theory]
    [InlineData(-1, true)]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(4, true)]
    public void LevelMessage_RemoteIrrFollowsTheAcceptanceCount(int acceptCount, bool remoteIrr)
    {
        _host.AcceptCount = acceptCount;
        _ioApic.Write(0x10, 0x0000_8030);

        _ioApic.SetLine(0, true);

        Assert.Single(_host.Delivered);
        Assert.Equal(remoteIrr, new RedirectionEntry(_ioApic.GetRedirectionEntry(0)).RemoteIrr);
        Assert.Equal(remoteIrr ? 0 : 1, _ioApic.Counters.LevelRefused);
    }

    [Fact]
    public void LevelMessage_RefusedByAll_NextAssertRetries()
    {
        _host.AcceptCount = 0;
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        _host.AcceptCount = 1;
        _ioApic.SetLine(0, true);

        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
    }

    [Fact]
    public void Eoi_OtherVector_ChangesNothing()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        _ioApic.EndOfInterrupt(0x31);

        Assert.Single(_host.Delivered);
        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
    }

    [Fact]
    public void Eoi_ClearsRemoteIrrOnEveryLevelEntryWithTheVector()
    {
        _ioApic.Write(IoApicGuest.Low(1), 0x0000_8044);
        _ioApic.Write(IoApicGuest.Low(9), 0x0000_8044);
        _ioApic.SetLine(1, true);
        _ioApic.SetLine(9, true);
        _ioApic.SetLine(1, false);
        Assert.Equal(2, _host.Delivered.Count);

        _ioApic.EndOfInterrupt(0x44);

        // Pin 1 is low: only cleared. Pin 9 is still high: cleared and re-delivered.
        Assert.Equal(0x0000_8044u, _ioApic.Read(IoApicGuest.Low(1)));
        Assert.Equal(0x0000_C044u, _ioApic.Read(IoApicGuest.Low(9)));
        Assert.Equal(3, _host.Delivered.Count);
    }

    [Fact]
    public void Eoi_EdgeEntryWithTheVector_IsNotRedelivered()
    {
        _ioApic.Write(0x10, 0x0000_0030);
        _ioApic.SetLine(0, true);

        _ioApic.EndOfInterrupt(0x30);

        Assert.Single(_host.Delivered);
    }

    [Fact]
    public void Eoi_MaskedLevelEntry_ClearsRemoteIrrWithoutSending_UnmaskThenDelivers()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);
        _ioApic.Write(0x10, 0x0001_8030);

        _ioApic.EndOfInterrupt(0x30);
        Assert.Single(_host.Delivered);
        Assert.Equal(0x0001_8030u, _ioApic.Read(0x10));

        _ioApic.Write(0x10, 0x0000_8030);
        Assert.Equal(2, _host.Delivered.Count);
    }

    // Test vector #93: with EOI-broadcast suppression the LAPIC sends no EOI; the guest uses the EOI register.
    [Fact]
    public void EoiRegister_Version20_ClearsRemoteIrr()
    {
        _ioApic.Write(0x2C, 0x0000_8040);
        _ioApic.SetLine(14, true);
        _ioApic.SetLine(14, false);
        Assert.Equal(0x0000_C040u, _ioApic.Read(0x2C));

        Assert.Equal(ApicAccessResult.Ok, _ioApic.WriteMmio(0xFEC0_0040, 0x40));

        Assert.Equal(0x0000_8040u, _ioApic.Read(0x2C));
        Assert.Single(_host.Delivered);
        Assert.Equal(1, _ioApic.Counters.EoiRegisterWrites);
    }

    // Test vector #94: the EOI register re-delivers while the line is still high.
    [Fact]
    public void EoiRegister_Version20_LineStillAsserted_Redelivers()
    {
        _ioApic.Write(0x2C, 0x0000_8040);
        _ioApic.SetLine(14, true);

        _ioApic.WriteMmio(0xFEC0_0040, 0x40);

        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(0x40, _host.Delivered[1].Vector);
        Assert.Equal(0x0000_C040u, _ioApic.Read(0x2C));
    }

    [Fact]
    public void EoiRegister_UsesOnlyBits7To0()
    {
        _ioApic.Write(0x2C, 0x0000_8040);
        _ioApic.SetLine(14, true);
        _ioApic.SetLine(14, false);

        _ioApic.WriteMmio(0xFEC0_0040, 0xFFFF_FF40);

        Assert.Equal(0x0000_8040u, _ioApic.Read(0x2C));
    }

    // Test vector #96: version 0x11 has no EOI register.
    [Fact]
    public void EoiRegister_Version11_WriteIsIgnored()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host, version: 0x11);
        ioApic.Write(0x2C, 0x0000_8040);
        ioApic.SetLine(14, true);

        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(0xFEC0_0040, 0x40));

        Assert.Equal(0x0000_C040u, ioApic.Read(0x2C));
        Assert.Single(host.Delivered);
        Assert.Equal(1, ioApic.Counters.EoiRegisterWritesIgnored);
        Assert.False(ioApic.HasEoiRegister);
    }

    [Fact]
    public void EoiBroadcast_Version11_StillWorks()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host, version: 0x11);
        ioApic.Write(0x2C, 0x0000_8040);
        ioApic.SetLine(14, true);

        ioApic.EndOfInterrupt(0x40);

        Assert.Equal(2, host.Delivered.Count);
    }

    [Theory]
    [InlineData(0b000, DeliveryMode.Fixed)]
    [InlineData(0b001, DeliveryMode.LowestPriority)]
    [InlineData(0b010, DeliveryMode.Smi)]
    [InlineData(0b100, DeliveryMode.Nmi)]
    [InlineData(0b101, DeliveryMode.Init)]
    [InlineData(0b111, DeliveryMode.ExtInt)]
    public void Message_CarriesTheDeliveryMode(uint modeBits, DeliveryMode expected)
    {
        _ioApic.Write(0x10, (modeBits << 8) | 0x5A);

        _ioApic.SetLine(0, true);

        var message = Assert.Single(_host.Delivered);
        Assert.Equal(expected, message.DeliveryMode);
        Assert.Equal(0x5A, message.Vector);
    }

    // A25: reserved delivery modes 011 and 110 deliver nothing, edge or level.
    [Theory]
    [InlineData(0x0000_0300u)]
    [InlineData(0x0000_0600u)]
    [InlineData(0x0000_8300u)]
    [InlineData(0x0000_8600u)]
    public void Message_ReservedDeliveryMode_IsDroppedAndCounted(uint low)
    {
        _ioApic.Write(0x10, low | 0x5A);

        _ioApic.SetLine(0, true);

        Assert.Empty(_host.Delivered);
        Assert.Equal(1, _ioApic.Counters.ReservedModeDropped);
        Assert.Equal(low | 0x5A, _ioApic.Read(0x10)); // no Remote IRR: nothing was sent
    }

    [Fact]
    public void Message_LogicalDestination()
    {
        _ioApic.Write(0x10, 0x0000_0845);
        _ioApic.Write(0x11, 0x0300_0000);

        _ioApic.SetLine(0, true);

        var message = Assert.Single(_host.Delivered);
        Assert.Equal(DestinationMode.Logical, message.DestinationMode);
        Assert.Equal(0x03u, message.Destination);
        Assert.False(message.RedirectionHint);
        Assert.Equal(DestinationShorthand.None, message.Shorthand);
    }

    [Fact]
    public void Message_DestinationFF_IsPassedThroughAsEightBits()
    {
        _ioApic.Write(0x11, 0xFF00_0000);
        _ioApic.Write(0x10, 0x0000_0045);

        _ioApic.SetLine(0, true);

        Assert.Equal(0xFFu, Assert.Single(_host.Delivered).Destination);
    }

    // Extended destination ID: RTE bits 55:49 are destination bits 14:8.
    [Theory]
    [InlineData(0x1202_0000u, true, 0x112u)]
    [InlineData(0x1202_0000u, false, 0x12u)]
    [InlineData(0xFFFE_0000u, true, 0x7FFFu)]
    [InlineData(0xFFFE_0000u, false, 0xFFu)]
    [InlineData(0x0001_FFFFu, true, 0x00u)] // bits 48:32 are reserved, not destination
    public void Message_ExtendedDestinationId(uint high, bool extended, uint destination)
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host, extendedDestinationId: extended);
        ioApic.Write(0x11, high);
        ioApic.Write(0x10, 0x0000_0033);

        ioApic.SetLine(0, true);

        Assert.Equal(destination, Assert.Single(host.Delivered).Destination);
        Assert.Equal(extended, ioApic.ExtendedDestinationId);
    }

    // A23: the polarity bit is stored but the caller's value already means "asserted".
    [Fact]
    public void Polarity_ActiveLow_IsIgnored()
    {
        _ioApic.Write(0x10, 0x0000_2033);

        _ioApic.SetLine(0, false);
        Assert.Empty(_host.Delivered);
        _ioApic.SetLine(0, true);

        Assert.Single(_host.Delivered);
        Assert.Equal(0x0000_2033u, _ioApic.Read(0x10));
    }

    [Fact]
    public void Message_UsesTheEntryAtSendTime()
    {
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);
        _ioApic.Write(0x10, 0x0000_8031);
        _ioApic.Write(0x11, 0x0200_0000);

        // Remote IRR belongs to the pin; the EOI must name the entry's current vector.
        _ioApic.EndOfInterrupt(0x30);
        Assert.Single(_host.Delivered);
        _ioApic.EndOfInterrupt(0x31);

        Assert.Equal(2, _host.Delivered.Count);
        Assert.Equal(0x31, _host.Delivered[1].Vector);
        Assert.Equal(0x02u, _host.Delivered[1].Destination);
    }

    [Fact]
    public void Lines_AreIndependentPerPin()
    {
        _ioApic.Write(IoApicGuest.Low(4), 0x0000_0024);
        _ioApic.Write(IoApicGuest.Low(5), 0x0000_0025);

        _ioApic.SetLine(4, true);
        _ioApic.SetLine(5, true);

        Assert.True(_ioApic.GetLine(4));
        Assert.True(_ioApic.GetLine(5));
        Assert.False(_ioApic.GetLine(6));
        Assert.Equal([(byte)0x24, (byte)0x25], [_host.Delivered[0].Vector, _host.Delivered[1].Vector]);
    }

    [Fact]
    public void HotPaths_DoNotAllocate()
    {
        _host.Record = false;
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.Write(0x12, 0x0000_0031);
        Exercise();

        long before = GC.GetAllocatedBytesForCurrentThread();
        Exercise();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.True(_host.DeliverCalls > 0);

        void Exercise()
        {
            for (int i = 0; i < 1000; i++)
            {
                _ioApic.SetLine(0, true);
                _ioApic.EndOfInterrupt(0x30);
                _ioApic.SetLine(0, false);
                _ioApic.EndOfInterrupt(0x30);
                _ioApic.Pulse(1);
                _ioApic.WriteMmio(IoApicGuest.RegisterSelect, 0x10);
                _ioApic.ReadMmio(IoApicGuest.Window, out uint low);
                _ioApic.WriteMmio(IoApicGuest.Window, low);
                _ioApic.WriteMmio(IoApicGuest.Eoi, 0x30);
                _ioApic.ReadRegister(0x01);
                _ioApic.WriteRegister(0x00, 0x0100_0000);
            }
        }
    }
}
