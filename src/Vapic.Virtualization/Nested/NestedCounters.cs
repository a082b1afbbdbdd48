namespace Vapic.Virtualization.Nested;

/// <summary>What the nested model saw: exits L1 handled, exits the VMM saw, and where L2's accesses went.</summary>
public sealed class NestedCounters
{
    private readonly SortedDictionary<L1ExitReason, long> _l1Exits = [];

    /// <summary>Nested VM entries that reached L2.</summary>
    public long Entries { get; internal set; }

    /// <summary>Nested VM entries that failed with VMfailValid.</summary>
    public long VmFails { get; internal set; }

    /// <summary>vCPUs L0 stopped with an internal error (exits to the VMM).</summary>
    public long InternalErrors { get; internal set; }

    /// <summary>L2 accesses to holes in L1's memory: MMIO exits to the VMM.</summary>
    public long VmmMmioExits { get; internal set; }

    /// <summary>L2 APIC accesses that APIC virtualization completed against the virtual-APIC page without an exit.</summary>
    public long VirtualizedApicAccesses { get; internal set; }

    /// <summary>L2 accesses to L1 RAM.</summary>
    public long L1RamAccesses { get; internal set; }

    /// <summary>L2 accesses that reached L1's own APIC.</summary>
    public long L1ApicAccesses { get; internal set; }

    /// <summary>L2 accesses that reached another L1 device's MMIO.</summary>
    public long L1MmioAccesses { get; internal set; }

    /// <summary>L2 accesses to L1's APIC page while APIC virtualization was active for L1 (the RFC's detection point).</summary>
    public long DirectAccessesWhileAccelerated { get; internal set; }

    /// <summary>EOIs L2 wrote to L1's APIC that were lost behind active APIC virtualization (quirk <c>l2-passthrough-no-inhibit</c>).</summary>
    public long EoisLost { get; internal set; }

    /// <summary>Interrupts L1 posted to a running L2 that reached L2's virtual IRR.</summary>
    public long NestedPostedInterrupts { get; internal set; }

    /// <summary>Virtual interrupts L2 took through virtual-interrupt delivery.</summary>
    public long VirtualInterruptsDelivered { get; internal set; }

    /// <summary>Whether L2 reached L1 MMIO (L1's APIC or another device) directly.</summary>
    public bool L2TouchedL1Mmio => L1ApicAccesses + L1MmioAccesses != 0;

    /// <summary>Exits to L1 with <paramref name="reason"/>.</summary>
    public long L1Exits(L1ExitReason reason) => _l1Exits.TryGetValue(reason, out long n) ? n : 0;

    /// <summary>Exits to L1 by reason, in reason order, only those that happened.</summary>
    public IEnumerable<KeyValuePair<L1ExitReason, long>> L1ExitCounts => _l1Exits;

    /// <summary>All exits to L1.</summary>
    public long TotalL1Exits => _l1Exits.Values.Sum();

    /// <summary>
    /// The cycles of the nested exits under <paramref name="model"/>: each exit to L1 is an
    /// L2 → L0 → L1 → L0 → L2 round trip, each MMIO exit to the VMM a userspace round trip.
    /// </summary>
    public long Cycles(CostModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return (TotalL1Exits * model.NestedExitRoundTrip) + (VmmMmioExits * model.UserspaceExitRoundTrip);
    }

    internal void CountL1Exit(L1ExitReason reason) => _l1Exits[reason] = L1Exits(reason) + 1;
}
