namespace Vapic.Apic;

/// <summary>
/// An interrupt message on the (virtual) APIC bus: what an ICR write, an IOAPIC redirection
/// entry or an MSI becomes before it is routed to local APICs. A small copy type.
/// </summary>
/// <param name="Vector">Vector [7:0] (the SIPI start page for StartUp).</param>
/// <param name="DeliveryMode">Delivery mode.</param>
/// <param name="DestinationMode">Physical or logical destination.</param>
/// <param name="Destination">
/// The message destination address (MDA): 8 bits from an xAPIC ICR, 32 bits from an x2APIC ICR,
/// up to 15 bits from an IOAPIC or MSI with the extended destination ID.
/// </param>
/// <param name="Shorthand">ICR destination shorthand; <see cref="DestinationShorthand.None"/> for IOAPIC and MSI.</param>
/// <param name="LevelTriggered">Trigger mode: true = level. Level-triggered fixed interrupts set TMR at the target.</param>
/// <param name="Assert">The level bit: false only for an INIT de-assert IPI.</param>
/// <param name="RedirectionHint">MSI RH bit: arbitrate as lowest priority (KVM <c>kvm_lowest_prio_delivery</c>).</param>
/// <param name="Source">Where the message came from.</param>
/// <param name="SourceVcpu">The sending vCPU index for IPIs (needed by the self shorthands); -1 otherwise.</param>
public readonly record struct InterruptMessage(
    byte Vector,
    DeliveryMode DeliveryMode,
    DestinationMode DestinationMode,
    uint Destination,
    DestinationShorthand Shorthand,
    bool LevelTriggered,
    bool Assert,
    bool RedirectionHint,
    InterruptSource Source,
    int SourceVcpu)
{
    /// <summary>The x2APIC broadcast destination (SDM "ICR Operation in x2APIC Mode").</summary>
    public const uint X2ApicBroadcast = 0xFFFF_FFFF;

    /// <summary>The xAPIC broadcast destination.</summary>
    public const uint XApicBroadcast = 0xFF;

    /// <summary>True when the message is arbitrated among its destinations (lowest priority or MSI RH = 1).</summary>
    public bool IsLowestPriority => DeliveryMode == DeliveryMode.LowestPriority || RedirectionHint;
}
