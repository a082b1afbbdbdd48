namespace Vapic.Apic;

/// <summary>
/// Layout of IA32_APIC_BASE, MSR 0x1B (SDM "Local APIC Status and Location", "x2APIC Operating
/// Mode Configurations").
/// </summary>
public static class ApicBaseMsr
{
    /// <summary>The MSR number of IA32_APIC_BASE.</summary>
    public const uint Msr = 0x1B;

    /// <summary>Bit 8: this processor is the bootstrap processor.</summary>
    public const ulong BootstrapProcessor = 1UL << 8;

    /// <summary>Bit 10 (EXTD): x2APIC mode enable.</summary>
    public const ulong X2ApicEnable = 1UL << 10;

    /// <summary>Bit 11 (EN): APIC global enable.</summary>
    public const ulong GlobalEnable = 1UL << 11;

    /// <summary>Bits 7:0 and 9 are reserved at every MAXPHYADDR (KVM mask 0x2FF).</summary>
    public const ulong LowReservedBits = 0x2FF;

    /// <summary>The 4 KiB page offset bits: the base address field starts at bit 12.</summary>
    public const ulong PageOffsetMask = 0xFFF;

    /// <summary>The power-on value on an application processor: base 0xFEE00000, EN = 1.</summary>
    public const ulong ResetValue = LocalApic.DefaultBase | GlobalEnable;

    /// <summary>
    /// The reserved bits for a processor with <paramref name="maxPhysicalAddressBits"/>: bits 7:0,
    /// bit 9 and every bit from MAXPHYADDR up. Writing any of them raises #GP.
    /// </summary>
    public static ulong ReservedBits(int maxPhysicalAddressBits) =>
        LowReservedBits | (maxPhysicalAddressBits >= 64 ? 0 : ~0UL << maxPhysicalAddressBits);

    /// <summary>The APIC mode selected by the EN and EXTD bits; (EN, EXTD) = (0, 1) is invalid and reads as disabled.</summary>
    public static ApicMode GetMode(ulong value) => (value & (GlobalEnable | X2ApicEnable)) switch
    {
        GlobalEnable => ApicMode.XApic,
        GlobalEnable | X2ApicEnable => ApicMode.X2Apic,
        _ => ApicMode.Disabled,
    };

    /// <summary>The physical base address of the xAPIC window held in <paramref name="value"/>.</summary>
    public static ulong GetBaseAddress(ulong value, int maxPhysicalAddressBits) =>
        value & ~PageOffsetMask & ~ReservedBits(maxPhysicalAddressBits);
}
