namespace Vapic.Apic;

/// <summary>The outcome of decoding a message-signalled interrupt write.</summary>
public enum MsiDecodeResult : byte
{
    /// <summary>A valid interrupt message; deliver it.</summary>
    Ok,

    /// <summary>The address is not in the interrupt range: bits 31:20 are not 0xFEE or bits 63:32 are not zero.</summary>
    NotInterruptAddress,

    /// <summary>The data names reserved delivery mode 011 or 110; nothing is delivered (A25).</summary>
    ReservedDeliveryMode,
}

/// <summary>
/// Decoding and encoding of MSI address/data pairs (SDM "Message Address Register Format" and
/// "Message Data Register Format"; lapic-reference.md §12).
/// </summary>
public static class Msi
{
    /// <summary>Address bits 31:20 of every interrupt message.</summary>
    public const uint InterruptAddressPrefix = 0xFEE;

    /// <summary>The base of the interrupt address range, 0xFEE0_0000.</summary>
    public const ulong InterruptAddressBase = (ulong)InterruptAddressPrefix << 20;

    /// <summary>Address bit 2: destination mode (1 = logical).</summary>
    public const ulong DestinationModeBit = 1UL << 2;

    /// <summary>Address bit 3: redirection hint.</summary>
    public const ulong RedirectionHintBit = 1UL << 3;

    /// <summary>Address bits 19:12: destination ID bits 7:0.</summary>
    public const int DestinationShift = 12;

    /// <summary>Address bits 11:5: destination ID bits 14:8 with the extended destination ID (Linux <c>virt_destid_8_14</c>).</summary>
    public const int ExtendedDestinationShift = 5;

    /// <summary>The largest destination the extended destination ID can carry (15 bits).</summary>
    public const uint MaxExtendedDestination = 0x7FFF;

    /// <summary>Data bit 14: level (1 = assert).</summary>
    public const uint LevelAssertBit = 1U << 14;

    /// <summary>Data bit 15: trigger mode (1 = level).</summary>
    public const uint TriggerModeBit = 1U << 15;

    /// <summary>
    /// Decodes a device write of <paramref name="data"/> to <paramref name="address"/> into an
    /// interrupt message: destination = address bits 19:12 (plus bits 11:5 as destination bits 14:8
    /// when <paramref name="extendedDestinationId"/> is set), destination mode = bit 2, redirection
    /// hint = bit 3, vector and delivery mode from data bits 7:0 and 10:8, trigger = data bit 15.
    /// The level bit is treated as asserted and there is no shorthand (KVM <c>kvm_set_msi_irq</c>).
    /// </summary>
    /// <returns>
    /// <see cref="MsiDecodeResult.Ok"/> with the message; <see cref="MsiDecodeResult.ReservedDeliveryMode"/>
    /// with the decoded fields, which must not be delivered; or <see cref="MsiDecodeResult.NotInterruptAddress"/>
    /// with a default message.
    /// </returns>
    public static MsiDecodeResult TryDecode(ulong address, uint data, bool extendedDestinationId, out InterruptMessage message)
    {
        if (address >> 20 != InterruptAddressPrefix)
        {
            message = default;
            return MsiDecodeResult.NotInterruptAddress;
        }

        uint destination = (uint)(address >> DestinationShift) & 0xFF;
        if (extendedDestinationId)
        {
            destination |= ((uint)(address >> ExtendedDestinationShift) & 0x7F) << 8;
        }

        var deliveryMode = (DeliveryMode)((data >> 8) & 7);
        message = new InterruptMessage(
            (byte)data,
            deliveryMode,
            (address & DestinationModeBit) != 0 ? DestinationMode.Logical : DestinationMode.Physical,
            destination,
            DestinationShorthand.None,
            LevelTriggered: (data & TriggerModeBit) != 0,
            Assert: true,
            RedirectionHint: (address & RedirectionHintBit) != 0,
            InterruptSource.Msi,
            SourceVcpu: -1);

        return RedirectionEntry.IsReservedDeliveryMode(deliveryMode)
            ? MsiDecodeResult.ReservedDeliveryMode
            : MsiDecodeResult.Ok;
    }

    /// <summary>
    /// Builds an MSI address: 0xFEE in bits 31:20, destination bits 7:0 in bits 19:12, destination
    /// bits 14:8 in bits 11:5, RH in bit 3 and DM in bit 2.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="destination"/> exceeds 0x7FFF.</exception>
    public static ulong EncodeAddress(uint destination, DestinationMode mode, bool redirectionHint)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(destination, MaxExtendedDestination);
        ulong address = InterruptAddressBase
            | ((ulong)(destination & 0xFF) << DestinationShift)
            | ((ulong)(destination >> 8) << ExtendedDestinationShift);
        if (redirectionHint)
        {
            address |= RedirectionHintBit;
        }

        if (mode == DestinationMode.Logical)
        {
            address |= DestinationModeBit;
        }

        return address;
    }

    /// <summary>
    /// Builds MSI data: vector in bits 7:0, delivery mode in bits 10:8 and, for a level-triggered
    /// message, trigger bit 15 with level bit 14 (assert).
    /// </summary>
    public static uint EncodeData(byte vector, DeliveryMode mode, bool levelTriggered)
    {
        uint data = vector | (((uint)mode & 7) << 8);
        if (levelTriggered)
        {
            data |= TriggerModeBit | LevelAssertBit;
        }

        return data;
    }
}
