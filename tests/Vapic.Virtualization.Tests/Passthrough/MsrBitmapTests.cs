using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// The VMX MSR bitmap layout of SDM Vol. 3C "MSR-Bitmap Address": read-low at byte 0, read-high
/// at 1024, write-low at 2048, write-high at 3072; MSR n is bit n mod 8 of byte n / 8 of its bitmap.
/// </summary>
public class MsrBitmapTests
{
    [Fact]
    public void NewBitmap_InterceptsEverything()
    {
        var bitmap = new MsrBitmap();

        Assert.Equal(4096, bitmap.Bytes.Length);
        Assert.True(bitmap.Bytes.IndexOfAnyExcept((byte)0xFF) < 0);
        Assert.True(bitmap.IsReadIntercepted(0x802));
        Assert.True(bitmap.IsWriteIntercepted(0xC000_0080));
    }

    [Theory]
    [InlineData(0x802u, false, 0x100, 0x04)]        // x2APIC ID: read-low byte 0x802 / 8, bit 2
    [InlineData(0x80Du, false, 0x101, 0x20)]        // LDR: byte 0x101, bit 5
    [InlineData(0x830u, true, 2048 + 0x106, 0x01)]  // ICR write: write-low, byte 0x106, bit 0
    [InlineData(0x6E0u, true, 2048 + 0xDC, 0x01)]   // TSC deadline write
    [InlineData(0x3Bu, false, 0x07, 0x08)]          // TSC_ADJUST read: byte 7, bit 3
    [InlineData(0x1FFFu, false, 1023, 0x80)]        // last low MSR: last byte of read-low, bit 7
    [InlineData(0xC000_0080u, false, 1024 + 0x10, 0x01)] // EFER read: read-high, byte 0x10, bit 0
    [InlineData(0xC000_1FFFu, true, 4095, 0x80)]    // last high MSR: last byte of the page
    public void EachMsrHasItsBitWhereTheSdmPutsIt(uint msr, bool write, int byteIndex, byte mask)
    {
        var bitmap = new MsrBitmap();
        bitmap.SetIntercept(msr, read: !write, write: write, intercept: false);

        for (int i = 0; i < MsrBitmap.SizeInBytes; i++)
        {
            Assert.Equal(i == byteIndex ? (byte)(0xFF & ~mask) : (byte)0xFF, bitmap.Bytes[i]);
        }

        Assert.Equal(write, bitmap.IsReadIntercepted(msr));
        Assert.Equal(!write, bitmap.IsWriteIntercepted(msr));
    }

    [Theory]
    [InlineData(0x2000u)]
    [InlineData(0xBFFF_FFFFu)]
    [InlineData(0xC000_2000u)]
    [InlineData(0xFFFF_FFFFu)]
    public void MsrOutsideBothRanges_AlwaysExits(uint msr)
    {
        var bitmap = new MsrBitmap();
        bitmap.SetIntercept(0, MsrBitmap.LowRangeLast, read: true, write: true, intercept: false);
        bitmap.SetIntercept(MsrBitmap.HighRangeFirst, MsrBitmap.HighRangeLast, read: true, write: true, intercept: false);

        Assert.True(bitmap.Bytes.IndexOfAnyExcept((byte)0) < 0);
        Assert.False(MsrBitmap.Covers(msr));
        Assert.True(bitmap.IsReadIntercepted(msr));
        Assert.True(bitmap.IsWriteIntercepted(msr));
        Assert.Throws<ArgumentOutOfRangeException>(() => bitmap.SetIntercept(msr, read: true, write: true, intercept: false));
    }

    [Fact]
    public void InterceptAll_UndoesEveryClear()
    {
        var bitmap = new MsrBitmap();
        bitmap.SetIntercept(0x800, 0x8FF, read: true, write: true, intercept: false);
        Assert.False(bitmap.IsWriteIntercepted(0x8FF));

        bitmap.InterceptAll();

        Assert.True(bitmap.Bytes.IndexOfAnyExcept((byte)0xFF) < 0);
    }
}
