using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>Construction, window decoding and the shared test doubles for the IOAPIC tests.</summary>
public sealed class IoApicTests
{
    [Fact]
    public void Constructor_Defaults_MatchProjectConfiguration()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        Assert.Equal(0xFEC0_0000UL, ioApic.BaseAddress);
        Assert.Equal(0x20, ioApic.Version);
        Assert.Equal(24, ioApic.PinCount);
        Assert.True(ioApic.ExtendedDestinationId);
        Assert.True(ioApic.HasEoiRegister);
        Assert.Equal(long.MaxValue, ioApic.RetriggerDeadline);
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x10)]
    [InlineData(0x12)]
    [InlineData(0x21)]
    [InlineData(0xFF)]
    public void Constructor_UnsupportedVersion_Throws(byte version)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoApic(new FakeIoApicHost(), version));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(121)]
    public void Constructor_PinCountOutOfRange_Throws(int pinCount)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoApic(new FakeIoApicHost(), pinCount: pinCount));
    }

    [Fact]
    public void Constructor_UnalignedBase_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoApic(new FakeIoApicHost(), baseAddress: 0xFEC0_0010));
    }

    [Fact]
    public void Constructor_NullHost_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => new IoApic(null!));
    }

    [Theory]
    [InlineData(0xFEC0_0000UL, true)]
    [InlineData(0xFEC0_0010UL, true)]
    [InlineData(0xFEC0_0FFCUL, true)]
    [InlineData(0xFEBF_FFFCUL, false)]
    [InlineData(0xFEC0_1000UL, false)]
    [InlineData(0x0UL, false)]
    [InlineData(0xFFFF_FFFF_FEC0_0000UL, false)]
    public void Decodes_CoversExactlyTheFourKiBWindow(ulong address, bool expected)
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        Assert.Equal(expected, ioApic.Decodes(address));
    }

    [Fact]
    public void Decodes_RelocatedBase_UsesTheNewWindow()
    {
        var ioApic = new IoApic(new FakeIoApicHost(), baseAddress: 0xFEC0_1000);

        Assert.False(ioApic.Decodes(0xFEC0_0000));
        Assert.True(ioApic.Decodes(0xFEC0_1000));
        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(0xFEC0_1000, 0x01));
        Assert.Equal(ApicAccessResult.Ok, ioApic.ReadMmio(0xFEC0_1010, out uint version));
        Assert.Equal(0x0017_0020u, version);
        Assert.Equal(ApicAccessResult.Unmapped, ioApic.ReadMmio(0xFEC0_0010, out _));
    }

    [Fact]
    public void Accesses_OutsideWindow_AreUnmappedAndChangeNothing()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        Assert.Equal(ApicAccessResult.Unmapped, ioApic.ReadMmio(0xFEC0_1000, out uint value));
        Assert.Equal(0u, value);
        Assert.Equal(ApicAccessResult.Unmapped, ioApic.WriteMmio(0xFEBF_FFF0, 0x01));
        Assert.Equal(ApicAccessResult.Unmapped, ioApic.WriteMmio(0xFEC0_1000, 0x01));
        Assert.Equal(0, ioApic.RegisterSelect);
    }

    [Fact]
    public void PinAccessors_RejectPinsOutsideTheTable()
    {
        var ioApic = new IoApic(new FakeIoApicHost());

        Assert.Throws<ArgumentOutOfRangeException>(() => ioApic.SetLine(24, true));
        Assert.Throws<ArgumentOutOfRangeException>(() => ioApic.SetLine(-1, true));
        Assert.Throws<ArgumentOutOfRangeException>(() => ioApic.GetLine(24));
        Assert.Throws<ArgumentOutOfRangeException>(() => ioApic.GetRedirectionEntry(24));
    }
}

/// <summary>
/// An <see cref="IIoApicHost"/> that records every message and returns a configurable acceptance
/// count (the number of LAPICs that took the message, 0 when all refused, -1 when none matched).
/// </summary>
internal sealed class FakeIoApicHost : IIoApicHost
{
    public List<InterruptMessage> Delivered { get; } = new(capacity: 64);

    public int AcceptCount { get; set; } = 1;

    public bool Record { get; set; } = true;

    public long Now { get; set; }

    public int TimerChangedCalls { get; private set; }

    public int DeliverCalls { get; private set; }

    public int Deliver(in InterruptMessage message)
    {
        DeliverCalls++;
        if (Record)
        {
            Delivered.Add(message);
        }

        return AcceptCount;
    }

    public void TimerChanged(IoApic ioApic) => TimerChangedCalls++;
}

/// <summary>Guest-style accesses as the trace commands <c>ioapic write</c> / <c>ioapic read</c> perform them.</summary>
internal static class IoApicGuest
{
    public const ulong RegisterSelect = IoApic.DefaultBase + 0x00;
    public const ulong Window = IoApic.DefaultBase + 0x10;
    public const ulong Eoi = IoApic.DefaultBase + 0x40;

    /// <summary>IOREGSEL = index, then IOWIN = value.</summary>
    public static void Write(this IoApic ioApic, byte index, uint value)
    {
        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(RegisterSelect, index));
        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(Window, value));
    }

    /// <summary>IOREGSEL = index, then read IOWIN.</summary>
    public static uint Read(this IoApic ioApic, byte index)
    {
        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(RegisterSelect, index));
        Assert.Equal(ApicAccessResult.Ok, ioApic.ReadMmio(Window, out uint value));
        return value;
    }

    /// <summary>The trace's <c>irq GSI pulse</c>: high then low.</summary>
    public static void Pulse(this IoApic ioApic, int pin)
    {
        ioApic.SetLine(pin, true);
        ioApic.SetLine(pin, false);
    }

    /// <summary>The RTE low-dword index of <paramref name="pin"/>.</summary>
    public static byte Low(int pin) => (byte)(0x10 + (2 * pin));

    /// <summary>The RTE high-dword index of <paramref name="pin"/>.</summary>
    public static byte High(int pin) => (byte)(0x11 + (2 * pin));
}
