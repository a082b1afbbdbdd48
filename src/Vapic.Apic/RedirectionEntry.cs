namespace Vapic.Apic;

/// <summary>
/// One 64-bit IOAPIC redirection table entry (RTE), as read through IOWIN at indices
/// 0x10 + 2n (low dword) and 0x11 + 2n (high dword). The layout follows the 82093AA datasheet
/// "I/O Redirection Table Registers" plus the Linux/QEMU extended destination ID in bits 55:49.
/// </summary>
/// <param name="Value">The raw 64-bit entry.</param>
public readonly record struct RedirectionEntry(ulong Value)
{
    /// <summary>Bits 7:0, the interrupt vector.</summary>
    public const ulong VectorMask = 0xFF;

    /// <summary>Bits 10:8, the delivery mode.</summary>
    public const int DeliveryModeShift = 8;

    /// <summary>Bit 11: destination mode (0 physical, 1 logical).</summary>
    public const ulong DestinationModeBit = 1UL << 11;

    /// <summary>Bit 12: delivery status (read-only; always 0 in this model because delivery is instantaneous).</summary>
    public const ulong DeliveryStatusBit = 1UL << 12;

    /// <summary>Bit 13: pin polarity (1 = active low); stored and read back but ignored (A23).</summary>
    public const ulong PolarityBit = 1UL << 13;

    /// <summary>Bit 14: Remote IRR (read-only), set while a level interrupt awaits its EOI.</summary>
    public const ulong RemoteIrrBit = 1UL << 14;

    /// <summary>Bit 15: trigger mode (0 edge, 1 level).</summary>
    public const ulong TriggerModeBit = 1UL << 15;

    /// <summary>Bit 16: interrupt mask (1 = masked).</summary>
    public const ulong MaskBit = 1UL << 16;

    /// <summary>Bits 55:49 hold destination ID bits 14:8 when the extended destination ID is enabled.</summary>
    public const int ExtendedDestinationShift = 49;

    /// <summary>Bits 63:56, the 8-bit destination ID.</summary>
    public const int DestinationShift = 56;

    /// <summary>The bits a guest write cannot change: delivery status and Remote IRR.</summary>
    public const ulong ReadOnlyBits = DeliveryStatusBit | RemoteIrrBit;

    /// <summary>The value of every entry after RESET: masked, everything else 0 (KVM <c>kvm_ioapic_reset</c>, QEMU).</summary>
    public const ulong ResetValue = MaskBit;

    /// <summary>The vector, bits 7:0.</summary>
    public byte Vector => (byte)Value;

    /// <summary>The delivery mode, bits 10:8.</summary>
    public DeliveryMode DeliveryMode => (DeliveryMode)((Value >> DeliveryModeShift) & 7);

    /// <summary>The destination mode, bit 11.</summary>
    public DestinationMode DestinationMode => (Value & DestinationModeBit) != 0 ? DestinationMode.Logical : DestinationMode.Physical;

    /// <summary>The polarity bit 13 (true = active low). Ignored for delivery (A23).</summary>
    public bool ActiveLow => (Value & PolarityBit) != 0;

    /// <summary>Remote IRR, bit 14.</summary>
    public bool RemoteIrr => (Value & RemoteIrrBit) != 0;

    /// <summary>True when bit 15 selects level triggering.</summary>
    public bool LevelTriggered => (Value & TriggerModeBit) != 0;

    /// <summary>True when bit 16 masks the pin.</summary>
    public bool Masked => (Value & MaskBit) != 0;

    /// <summary>The 8-bit destination ID, bits 63:56.</summary>
    public byte Destination => (byte)(Value >> DestinationShift);

    /// <summary>Bits 55:49: destination ID bits 14:8 under the extended destination ID extension.</summary>
    public byte ExtendedDestination => (byte)((Value >> ExtendedDestinationShift) & 0x7F);

    /// <summary>True when the delivery mode is one of the reserved encodings 011 or 110 (A25: nothing is delivered).</summary>
    public bool HasReservedDeliveryMode => IsReservedDeliveryMode(DeliveryMode);

    /// <summary>
    /// The message destination address: bits 63:56, plus bits 55:49 as destination bits 14:8 when
    /// <paramref name="extendedDestinationId"/> is set, so that APIC IDs up to 32767 are reachable.
    /// </summary>
    public uint GetDestination(bool extendedDestinationId) =>
        extendedDestinationId ? Destination | ((uint)ExtendedDestination << 8) : Destination;

    /// <summary>
    /// Delivery modes 011 and 110 are reserved in IOAPIC entries and MSI data (82093AA datasheet,
    /// SDM "Message Data Register Format"); the project drops them (A25).
    /// </summary>
    internal static bool IsReservedDeliveryMode(DeliveryMode mode) =>
        mode is DeliveryMode.Reserved3 or DeliveryMode.StartUp;
}
