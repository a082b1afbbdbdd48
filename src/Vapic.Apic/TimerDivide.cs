namespace Vapic.Apic;

/// <summary>
/// The timer Divide Configuration Register, DCR (SDM "Divide Configuration Register"): bits 3, 1
/// and 0 select the divisor; bit 2 is reserved.
/// </summary>
public static class TimerDivide
{
    /// <summary>The stored bits (3, 1, 0). An xAPIC write keeps only these; an x2APIC write with others faults.</summary>
    public const uint WritableBits = 0xB;

    /// <summary>
    /// The divisor selected by <paramref name="dcr"/>: 0x0 → 2, 0x1 → 4, 0x2 → 8, 0x3 → 16, 0x8 → 32,
    /// 0x9 → 64, 0xA → 128, 0xB → 1. Bit 2 is ignored.
    /// </summary>
    public static int Divisor(uint dcr)
    {
        // The three bits form k = (b3 b1 b0); the divisor is 2^(k+1) with 2^8 wrapping to 1.
        int k = (int)((dcr & 3) | ((dcr & 8) >> 1));
        return 1 << ((k + 1) & 7);
    }
}
