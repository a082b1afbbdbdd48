using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>IOAPIC MMIO window, indirect registers, redirection-entry write rules and RESET (lapic-reference.md §11).</summary>
public sealed class IoApicRegisterTests
{
    // Test vector #86: the version register is version | (max redirection entry << 16).
    [Theory]
    [InlineData(0x20, 0x0017_0020u)]
    [InlineData(0x11, 0x0017_0011u)]
    public void Version_PowerOn_ReportsVersionAndMaxRedirectionEntry(byte version, uint expected)
    {
        var ioApic = new IoApic(new FakeIoApicHost(), version);

        Assert.Equal(expected, ioApic.Read(0x01));
    }

    [Theory]
    [InlineData(1, 0x0000_0020u)]
    [InlineData(48, 0x002F_0020u)]
    [InlineData(120, 0x0077_0020u)]
    public void Version_OtherPinCounts_MaxRedirectionEntryIsPinsMinusOne(int pinCount, uint expected)
    {
        var ioApic = new IoApic(new FakeIoApicHost(), pinCount: pinCount);

        Assert.Equal(expected, ioApic.Read(0x01));
    }

    [Fact]
    public void Version_Write_IsIgnored()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.Write(0x01, 0xFFFF_FFFF);

        Assert.Equal(0x0017_0020u, ioApic.Read(0x01));
    }

    // Test vector #87: only ID bits 27:24 are writable; the arbitration ID mirrors the ID and ignores writes.
    [Fact]
    public void Id_WriteAllOnes_KeepsBits27To24AndArbitrationIdFollows()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.Write(0x00, 0xFFFF_FFFF);
        Assert.Equal(0x0F00_0000u, ioApic.Read(0x00));
        Assert.Equal(0x0F00_0000u, ioApic.Read(0x02));
        ioApic.Write(0x02, 0);
        Assert.Equal(0x0F00_0000u, ioApic.Read(0x02));
        Assert.Equal(0x0F, ioApic.Id);
    }

    [Fact]
    public void Id_Rewrite_ReplacesThePreviousId()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.Write(0x00, 0x0F00_0000);
        ioApic.Write(0x00, 0x0200_0000);

        Assert.Equal(0x0200_0000u, ioApic.Read(0x00));
        Assert.Equal(0x0200_0000u, ioApic.Read(0x02));
    }

    // Test vector #88: RTE 0 is masked at power-on, its high dword is 0, index 0x03 is unimplemented (A24).
    [Fact]
    public void Registers_PowerOn_MatchTestVector88()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        Assert.Equal(0x0001_0000u, ioApic.Read(0x10));
        Assert.Equal(0u, ioApic.Read(0x11));
        Assert.Equal(0xFFFF_FFFFu, ioApic.Read(0x03));
    }

    [Theory]
    [InlineData(0x03)]
    [InlineData(0x08)]
    [InlineData(0x0F)]
    [InlineData(0x40)] // 0x10 + 2 × 24: one past the last entry
    [InlineData(0x41)]
    [InlineData(0xFF)]
    public void UnimplementedIndex_ReadsAllOnesAndIgnoresWrites(byte index)
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.Write(index, 0x1234_5678);

        Assert.Equal(0xFFFF_FFFFu, ioApic.Read(index));
        for (int pin = 0; pin < ioApic.PinCount; pin++)
        {
            Assert.Equal(0x0001_0000UL, ioApic.GetRedirectionEntry(pin));
        }

        Assert.Equal(0u, ioApic.Read(0x00));
    }

    [Fact]
    public void LastEntry_IsAtIndices0x3EAnd0x3F()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.Write(0x3E, 0x0001_00A5);
        ioApic.Write(0x3F, 0x0300_0000);

        Assert.Equal(0x0001_00A5u, ioApic.Read(0x3E));
        Assert.Equal(0x0300_0000u, ioApic.Read(0x3F));
        Assert.Equal(0x0300_0000_0001_00A5UL, ioApic.GetRedirectionEntry(23));
    }

    [Fact]
    public void RegisterSelect_KeepsLowEightBits()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.WriteMmio(IoApicGuest.RegisterSelect, 0x1234_5601);

        Assert.Equal(ApicAccessResult.Ok, ioApic.ReadMmio(IoApicGuest.RegisterSelect, out uint select));
        Assert.Equal(0x01u, select);
        Assert.Equal(ApicAccessResult.Ok, ioApic.ReadMmio(IoApicGuest.Window, out uint version));
        Assert.Equal(0x0017_0020u, version);
    }

    [Theory]
    [InlineData(0x04UL)]
    [InlineData(0x08UL)]
    [InlineData(0x14UL)]
    [InlineData(0x20UL)]
    [InlineData(0x30UL)]
    [InlineData(0x40UL)] // the EOI register is write-only
    [InlineData(0x44UL)]
    [InlineData(0xFFCUL)]
    public void OtherOffsets_ReadZeroAndIgnoreWrites(ulong offset)
    {
        var ioApic = new IoApic(new FakeIoApicHost());
        ioApic.WriteMmio(IoApicGuest.RegisterSelect, 0x10);

        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(IoApic.DefaultBase + offset, 0xFFFF_FFFF));
        Assert.Equal(ApicAccessResult.Ok, ioApic.ReadMmio(IoApic.DefaultBase + offset, out uint value));

        Assert.Equal(0u, value);
        Assert.Equal(0x10, ioApic.RegisterSelect);
        Assert.Equal(0x0001_0000UL, ioApic.GetRedirectionEntry(0));
        Assert.Equal(0u, ioApic.Read(0x00));
    }

    [Fact]
    public void ReadRegisterAndWriteRegister_MatchTheWindow()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        ioApic.WriteRegister(0x12, 0x0001_8055);
        ioApic.WriteRegister(0x13, 0x0700_0000);

        Assert.Equal(0x0001_8055u, ioApic.ReadRegister(0x12));
        Assert.Equal(0x0700_0000u, ioApic.ReadRegister(0x13));
        Assert.Equal(0x0001_8055u, ioApic.Read(0x12));
        Assert.Equal(0x0700_0000_0001_8055UL, ioApic.GetRedirectionEntry(1));
    }

    [Fact]
    public void EntryLowWrite_DeliveryStatusAndRemoteIrrAreReadOnly()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        // Masked, level, vector 0x30, with delivery status (bit 12) and Remote IRR (bit 14) set by the guest.
        ioApic.Write(0x10, 0x0001_D030);

        Assert.Equal(0x0001_8030u, ioApic.Read(0x10));
    }

    [Fact]
    public void EntryLowWrite_ReservedBitsAreStored()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host);

        ioApic.Write(0x10, 0xFFFF_FFFF);

        // Everything but bits 12 and 14 reads back; the entry is masked, so nothing is sent.
        Assert.Equal(0xFFFF_AFFFu, ioApic.Read(0x10));
        Assert.Empty(host.Delivered);
    }

    [Fact]
    public void EntryHighWrite_StoresTheWholeDwordAndKeepsTheLowDword()
    {
        var ioApic = new IoApic(new FakeIoApicHost());
        ioApic.Write(0x10, 0x0001_0041);

        ioApic.Write(0x11, 0xFFFF_FFFF);

        Assert.Equal(0xFFFF_FFFF_0001_0041UL, ioApic.GetRedirectionEntry(0));
        Assert.Equal(0xFFFF_FFFFu, ioApic.Read(0x11));
    }

    [Fact]
    public void EntryLowWrite_KeepsTheHighDword()
    {
        var ioApic = new IoApic(new FakeIoApicHost());
        ioApic.Write(0x11, 0x0500_0000);

        ioApic.Write(0x10, 0x0001_0061);

        Assert.Equal(0x0500_0000_0001_0061UL, ioApic.GetRedirectionEntry(0));
    }

    [Fact]
    public void EntryWrite_LevelStaysLevel_RemoteIrrIsPreserved()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host);
        ioApic.Write(IoApicGuest.Low(3), 0x0000_8050);
        ioApic.SetLine(3, true);
        Assert.Equal(0x0000_C050u, ioApic.Read(IoApicGuest.Low(3)));

        // Rewriting a level entry (here: new vector, new destination) must not clear Remote IRR.
        ioApic.Write(IoApicGuest.Low(3), 0x0000_8051);
        ioApic.Write(IoApicGuest.High(3), 0x0100_0000);

        Assert.Equal(0x0000_C051u, ioApic.Read(IoApicGuest.Low(3)));
        Assert.Single(host.Delivered);
    }

    // Test vector #95: rewriting a level entry as edge clears Remote IRR.
    [Fact]
    public void EntryWrite_SwitchToEdge_ClearsRemoteIrr()
    {
        var ioApic = new IoApic(new FakeIoApicHost());
        ioApic.Write(IoApicGuest.Low(14), 0x0000_8040);
        ioApic.SetLine(14, true);
        Assert.Equal(0x0000_C040u, ioApic.Read(0x2C));

        ioApic.Write(0x2C, 0x0000_0040);

        Assert.Equal(0x0000_0040u, ioApic.Read(0x2C));
    }

    [Fact]
    public void EntryWrite_EdgeThenLevel_ActsAsManualEoi()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host);
        ioApic.Write(0x2C, 0x0000_8040);
        ioApic.SetLine(14, true);

        // Linux's EOI for an IOAPIC without the EOI register: mask, set edge, set level, unmask.
        ioApic.Write(0x2C, 0x0001_8040);
        ioApic.Write(0x2C, 0x0001_0040);
        ioApic.Write(0x2C, 0x0001_8040);
        Assert.Single(host.Delivered);
        ioApic.Write(0x2C, 0x0000_8040);

        Assert.Equal(2, host.Delivered.Count);
        Assert.Equal(0x0000_C040u, ioApic.Read(0x2C));
    }

    [Fact]
    public void DeliveryStatus_ReadsZeroWhileALevelInterruptIsOutstanding()
    {
        var ioApic = new IoApic(new FakeIoApicHost());
        ioApic.Write(0x10, 0x0000_8031);

        ioApic.SetLine(0, true);

        Assert.Equal(0u, ioApic.Read(0x10) & (1u << 12));
        Assert.Equal(0x0000_C031u, ioApic.Read(0x10));
    }

    [Fact]
    public void Reset_RestoresPowerOnState()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host);
        ioApic.Write(0x00, 0x0500_0000);
        ioApic.Write(0x10, 0x0000_8031);
        ioApic.Write(0x11, 0xFF00_0000);
        ioApic.SetLine(0, true);
        ioApic.SetLine(5, true);
        ioApic.WriteMmio(IoApicGuest.RegisterSelect, 0x12);

        ioApic.Reset();

        Assert.Equal(0, ioApic.RegisterSelect);
        Assert.Equal(0u, ioApic.ReadRegister(0x00));
        Assert.Equal(0x0017_0020u, ioApic.ReadRegister(0x01));
        for (int pin = 0; pin < ioApic.PinCount; pin++)
        {
            Assert.Equal(0x0000_0000_0001_0000UL, ioApic.GetRedirectionEntry(pin));
            Assert.False(ioApic.GetLine(pin));
        }

        Assert.Equal(long.MaxValue, ioApic.RetriggerDeadline);
        Assert.Equal(0, host.TimerChangedCalls);
    }

    [Fact]
    public void Reset_LineStateIsDeasserted_SoTheNextAssertIsAnEdge()
    {
        var host = new FakeIoApicHost();
        var ioApic = new IoApic(host);
        ioApic.SetLine(2, true);
        ioApic.Reset();
        ioApic.Write(IoApicGuest.Low(2), 0x0000_0033);

        ioApic.SetLine(2, true);

        Assert.Equal(0x33, Assert.Single(host.Delivered).Vector);
    }
}
