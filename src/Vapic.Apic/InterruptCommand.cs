namespace Vapic.Apic;

/// <summary>
/// Layout of the Interrupt Command Register, ICR (SDM "Interrupt Command Register (ICR)", "ICR
/// Operation in x2APIC Mode"), and its translation into an <see cref="InterruptMessage"/>.
/// </summary>
public static class InterruptCommand
{
    /// <summary>Vector, bits 7:0.</summary>
    public const uint VectorMask = 0xFF;

    /// <summary>Delivery mode, bits 10:8.</summary>
    public const uint DeliveryModeMask = 0x700;

    /// <summary>Destination mode, bit 11: 1 = logical.</summary>
    public const uint LogicalDestination = 1u << 11;

    /// <summary>Delivery status, bit 12: read-only and always 0 here (no send is ever pending).</summary>
    public const uint DeliveryStatus = 1u << 12;

    /// <summary>Level, bit 14: 0 only for an INIT level de-assert.</summary>
    public const uint LevelAssert = 1u << 14;

    /// <summary>Trigger mode, bit 15: 1 = level.</summary>
    public const uint LevelTriggered = 1u << 15;

    /// <summary>Destination shorthand, bits 19:18.</summary>
    public const uint ShorthandMask = 3u << 18;

    /// <summary>Shift of the shorthand field.</summary>
    public const int ShorthandShift = 18;

    /// <summary>
    /// Reserved bits of the low half: 13, 17:16 and 31:20. xAPIC stores and reads them back; an
    /// x2APIC WRMSR with any of them set raises #GP (KVM <c>X2APIC_ICR_RESERVED_BITS</c>).
    /// </summary>
    public const uint ReservedBits = 0xFFF3_2000;

    /// <summary>The xAPIC destination field: ICR high bits 31:24.</summary>
    public const uint XApicDestinationMask = 0xFF00_0000;

    /// <summary>Shift of the xAPIC destination field within ICR high.</summary>
    public const int XApicDestinationShift = 24;

    /// <summary>
    /// Builds the message an ICR write sends. Per the SDM (spec A10) every IPI is issued as edge
    /// with level asserted; the only exception kept visible is INIT level de-assert (mode INIT,
    /// level 0, trigger 1), which is sent with <see cref="InterruptMessage.Assert"/> = false so that
    /// the router can ignore it.
    /// </summary>
    /// <param name="low">ICR bits 31:0.</param>
    /// <param name="destination">The destination: ICR high [31:24] in xAPIC mode, ICR [63:32] in x2APIC mode.</param>
    /// <param name="sourceVcpu">The sending vCPU index.</param>
    public static InterruptMessage ToMessage(uint low, uint destination, int sourceVcpu)
    {
        var mode = (DeliveryMode)((low & DeliveryModeMask) >> 8);
        bool initDeassert = mode == DeliveryMode.Init && (low & LevelAssert) == 0 && (low & LevelTriggered) != 0;
        return new InterruptMessage(
            Vector: (byte)low,
            DeliveryMode: mode,
            DestinationMode: (low & LogicalDestination) != 0 ? DestinationMode.Logical : DestinationMode.Physical,
            Destination: destination,
            Shorthand: (DestinationShorthand)((low & ShorthandMask) >> ShorthandShift),
            LevelTriggered: false,
            Assert: !initDeassert,
            RedirectionHint: false,
            Source: InterruptSource.Ipi,
            SourceVcpu: sourceVcpu);
    }
}
