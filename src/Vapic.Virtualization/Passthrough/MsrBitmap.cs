namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// A VMX MSR bitmap: the 4 KiB page that the VMCS "MSR-bitmap address" points to when the
/// "use MSR bitmaps" control is set (SDM Vol. 3C "VM-Execution Control Fields", section
/// "MSR-Bitmap Address"). Four 1 KiB bitmaps, one bit per MSR, bit n of the bitmap being bit
/// (n mod 8) of byte (n / 8):
/// <list type="bullet">
/// <item>bytes 0-1023: read bitmap for low MSRs 0000_0000H-0000_1FFFH;</item>
/// <item>bytes 1024-2047: read bitmap for high MSRs C000_0000H-C000_1FFFH;</item>
/// <item>bytes 2048-3071: write bitmap for low MSRs;</item>
/// <item>bytes 3072-4095: write bitmap for high MSRs.</item>
/// </list>
/// A set bit makes RDMSR/WRMSR of that MSR exit; a clear bit lets it run in the guest. An MSR
/// outside both ranges always exits (SDM "Instructions That Cause VM Exits Conditionally":
/// RDMSR/WRMSR exit if ECX is outside 0-1FFFH and C0000000H-C0001FFFH).
/// </summary>
public sealed class MsrBitmap
{
    /// <summary>The size of the page.</summary>
    public const int SizeInBytes = 4096;

    /// <summary>Offset of the read bitmap for low MSRs.</summary>
    public const int ReadLowOffset = 0;

    /// <summary>Offset of the read bitmap for high MSRs.</summary>
    public const int ReadHighOffset = 1024;

    /// <summary>Offset of the write bitmap for low MSRs.</summary>
    public const int WriteLowOffset = 2048;

    /// <summary>Offset of the write bitmap for high MSRs.</summary>
    public const int WriteHighOffset = 3072;

    /// <summary>The last MSR of the low range (the first is 0).</summary>
    public const uint LowRangeLast = 0x1FFF;

    /// <summary>The first MSR of the high range.</summary>
    public const uint HighRangeFirst = 0xC000_0000;

    /// <summary>The last MSR of the high range.</summary>
    public const uint HighRangeLast = 0xC000_1FFF;

    private readonly byte[] _bytes = new byte[SizeInBytes];

    /// <summary>Creates a bitmap that intercepts every MSR (all bits set).</summary>
    public MsrBitmap() => InterceptAll();

    /// <summary>The page as the processor reads it.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Whether <paramref name="msr"/> has a bit in the bitmap (else it always exits).</summary>
    public static bool Covers(uint msr) => msr <= LowRangeLast || msr - HighRangeFirst <= HighRangeLast - HighRangeFirst;

    /// <summary>Whether RDMSR of <paramref name="msr"/> causes a VM exit.</summary>
    public bool IsReadIntercepted(uint msr) => IsSet(msr, write: false);

    /// <summary>Whether WRMSR of <paramref name="msr"/> causes a VM exit.</summary>
    public bool IsWriteIntercepted(uint msr) => IsSet(msr, write: true);

    /// <summary>Sets every bit: every RDMSR and WRMSR exits.</summary>
    public void InterceptAll() => _bytes.AsSpan().Fill(0xFF);

    /// <summary>Sets or clears the read and/or write bits of <paramref name="msr"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="msr"/> is outside both ranges (see <see cref="Covers"/>).</exception>
    public void SetIntercept(uint msr, bool read, bool write, bool intercept)
    {
        if (!Covers(msr))
        {
            throw new ArgumentOutOfRangeException(nameof(msr), $"MSR 0x{msr:x} has no bit in an MSR bitmap: it always exits");
        }

        if (read)
        {
            Set(msr, write: false, intercept);
        }

        if (write)
        {
            Set(msr, write: true, intercept);
        }
    }

    /// <summary>Sets or clears the read and/or write bits of every MSR from <paramref name="first"/> to <paramref name="last"/>.</summary>
    public void SetIntercept(uint first, uint last, bool read, bool write, bool intercept)
    {
        for (uint msr = first; msr <= last; msr++)
        {
            SetIntercept(msr, read, write, intercept);
        }
    }

    private bool IsSet(uint msr, bool write)
    {
        if (!Locate(msr, write, out int index, out byte mask))
        {
            return true;
        }

        return (_bytes[index] & mask) != 0;
    }

    private void Set(uint msr, bool write, bool intercept)
    {
        Locate(msr, write, out int index, out byte mask);
        if (intercept)
        {
            _bytes[index] |= mask;
        }
        else
        {
            _bytes[index] &= (byte)~mask;
        }
    }

    private static bool Locate(uint msr, bool write, out int index, out byte mask)
    {
        int bitmap;
        uint bit;
        if (msr <= LowRangeLast)
        {
            bitmap = write ? WriteLowOffset : ReadLowOffset;
            bit = msr;
        }
        else if (msr - HighRangeFirst <= HighRangeLast - HighRangeFirst)
        {
            bitmap = write ? WriteHighOffset : ReadHighOffset;
            bit = msr - HighRangeFirst;
        }
        else
        {
            index = 0;
            mask = 0;
            return false;
        }

        index = bitmap + (int)(bit >> 3);
        mask = (byte)(1 << (int)(bit & 7));
        return true;
    }
}
