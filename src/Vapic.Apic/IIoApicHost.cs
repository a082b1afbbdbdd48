namespace Vapic.Apic;

/// <summary>
/// The platform services an IOAPIC needs. The IOAPIC never reaches into the local APICs: it hands
/// each message to its host, which routes it, and reports changes of its re-delivery deadline.
/// Implementations must not allocate on these paths.
/// </summary>
public interface IIoApicHost
{
    /// <summary>The current virtual time in nanoseconds.</summary>
    long Now { get; }

    /// <summary>
    /// Routes <paramref name="message"/> to the local APICs it names.
    /// </summary>
    /// <returns>
    /// How many local APICs accepted the message, or -1 when no local APIC matched the destination.
    /// A level-triggered entry sets Remote IRR unless the result is 0 (destinations existed and every
    /// one refused), as KVM's <c>ioapic_service</c> does.
    /// </returns>
    int Deliver(in InterruptMessage message);

    /// <summary>
    /// <see cref="IoApic.RetriggerDeadline"/> of <paramref name="ioApic"/> changed; the host calls
    /// <see cref="IoApic.OnTimer"/> once virtual time reaches the new deadline.
    /// </summary>
    void TimerChanged(IoApic ioApic);
}
