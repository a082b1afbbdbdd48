namespace Vapic.Machine;

/// <summary>
/// Machine-wide counters of routing work and of everything the architecture drops, so that
/// nothing disappears without a trace (per-APIC and IOAPIC counters live with those devices).
/// </summary>
public sealed class MachineCounters
{
    /// <summary>IPIs routed (ICR and SELF_IPI writes).</summary>
    public long IpisRouted;

    /// <summary>IOAPIC messages routed.</summary>
    public long IoApicMessagesRouted;

    /// <summary>MSIs routed.</summary>
    public long MsisRouted;

    /// <summary>Device writes to an MSI address that does not decode as an interrupt (bits 31:20 not 0xFEE).</summary>
    public long MsiNotInterruptAddress;

    /// <summary>MSIs with a reserved delivery mode (lapic-reference A25): nothing delivered.</summary>
    public long MsiReservedMode;

    /// <summary>Messages whose destination matched no LAPIC.</summary>
    public long NoDestination;

    /// <summary>Lowest-priority messages whose matched LAPICs were all disabled.</summary>
    public long LowestPriorityNoCandidate;

    /// <summary>Messages with a delivery mode that is reserved for their source.</summary>
    public long ReservedModeDropped;

    /// <summary>INIT level de-assert IPIs (no effect on P4 and later).</summary>
    public long InitDeassertsIgnored;

    /// <summary>SIPIs that reached a CPU not waiting for one.</summary>
    public long StartupsDiscarded;

    /// <summary>SIPIs taken by a waiting CPU.</summary>
    public long StartupsTaken;

    /// <summary>INITs taken.</summary>
    public long InitsTaken;

    /// <summary>LAPIC timer expiries processed.</summary>
    public long TimerExpiries;

    /// <summary>EOI messages broadcast to the IOAPIC.</summary>
    public long EoiBroadcasts;
}
