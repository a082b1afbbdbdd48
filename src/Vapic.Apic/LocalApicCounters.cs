namespace Vapic.Apic;

/// <summary>
/// Statistics of one local APIC. Plain counters, incremented on the hot paths without allocation;
/// they are not architectural state and survive RESET and INIT.
/// </summary>
public sealed class LocalApicCounters
{
    /// <summary>Fixed or lowest-priority interrupts newly set in IRR (any source, local LVTs included).</summary>
    public long FixedAccepted { get; internal set; }

    /// <summary>Fixed interrupts that found their vector already in IRR and merged into it.</summary>
    public long Merged { get; internal set; }

    /// <summary>Fixed or lowest-priority interrupts dropped because SVR bit 8 was clear.</summary>
    public long DroppedSoftwareDisabled { get; internal set; }

    /// <summary>Fixed or lowest-priority interrupts refused for a vector below 16 (ESR bit 6).</summary>
    public long DroppedIllegalVector { get; internal set; }

    /// <summary>Messages refused for a reserved delivery mode.</summary>
    public long DroppedReservedMode { get; internal set; }

    /// <summary>Messages refused because the APIC was globally disabled.</summary>
    public long DroppedGloballyDisabled { get; internal set; }

    /// <summary>SMI, NMI, INIT, ExtINT and SIPI events latched for the CPU.</summary>
    public long EventsLatched { get; internal set; }

    /// <summary>Fixed vectors the CPU acknowledged (IRR to ISR).</summary>
    public long Acknowledged { get; internal set; }

    /// <summary>EOIs that retired an in-service vector.</summary>
    public long Eois { get; internal set; }

    /// <summary>IPIs handed to the host (ICR and SELF IPI writes).</summary>
    public long IpisSent { get; internal set; }

    /// <summary>ICR writes with delivery mode 011 or 111, which are not IPIs and are not sent.</summary>
    public long IpisDroppedReservedMode { get; internal set; }

    /// <summary>EOI messages broadcast to the IOAPICs.</summary>
    public long EoiBroadcasts { get; internal set; }

    /// <summary>APIC timer or TSC-deadline expiries (delivered or not).</summary>
    public long TimerExpiries { get; internal set; }

    /// <summary>Expiries that delivered nothing because the LVT Timer was masked (or the APIC disabled).</summary>
    public long TimerExpiriesMasked { get; internal set; }

    /// <summary>Error conditions that became newly pending in the ESR latch.</summary>
    public long ErrorsRaised { get; internal set; }

    /// <summary>Interrupts delivered from the LINT0/LINT1 pins.</summary>
    public long LintDeliveries { get; internal set; }

    /// <summary>
    /// Interrupts this APIC raised through its own LVTs (timer, LINT0/LINT1, thermal, performance
    /// counter, error) that the host refused (<see cref="ILocalApicHost.AllowLocalInterrupt"/>):
    /// nothing was set in IRR or latched.
    /// </summary>
    public long LocalInterruptsVetoed { get; internal set; }

    /// <summary>Sets every counter to zero.</summary>
    public void Clear()
    {
        FixedAccepted = 0;
        Merged = 0;
        DroppedSoftwareDisabled = 0;
        DroppedIllegalVector = 0;
        DroppedReservedMode = 0;
        DroppedGloballyDisabled = 0;
        EventsLatched = 0;
        Acknowledged = 0;
        Eois = 0;
        IpisSent = 0;
        IpisDroppedReservedMode = 0;
        EoiBroadcasts = 0;
        TimerExpiries = 0;
        TimerExpiriesMasked = 0;
        ErrorsRaised = 0;
        LintDeliveries = 0;
        LocalInterruptsVetoed = 0;
    }
}
