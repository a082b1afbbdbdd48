namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// What the passthrough hypervisor did with the accesses it trapped: ICR translations and
/// refusals, identity reads answered with virtual values, and the guards that must stay at zero
/// (anything the guest could have learnt or reached on the host).
/// </summary>
public sealed class PassthroughCounters
{
    /// <summary>WRMSR 0x830 (ICR) that exited to the hypervisor for translation.</summary>
    public long TrappedIcrWrites { get; internal set; }

    /// <summary>Trapped ICR writes with reserved bits set: #GP, nothing sent.</summary>
    public long IcrFaults { get; internal set; }

    /// <summary>Trapped ICR writes with delivery mode 011 or 111 (not an IPI): refused, nothing sent.</summary>
    public long ReservedModesRefused { get; internal set; }

    /// <summary>Trapped ICR writes whose shorthand was cleared and expanded into per-target unicasts within the VM.</summary>
    public long ShorthandsExpanded { get; internal set; }

    /// <summary>Trapped ICR writes in logical destination mode, resolved over the VM's virtual logical IDs.</summary>
    public long LogicalResolved { get; internal set; }

    /// <summary>
    /// Logical ICR writes while some vCPU of the VM was not in x2APIC mode. ACRN answers them with #GP
    /// (virtualization-reference §6.3 step 2); the model delivers them within the VM, as emulation
    /// does, so that the guest sees the same results in every mode.
    /// </summary>
    public long LogicalWithXApicPeers { get; internal set; }

    /// <summary>Trapped ICR writes that reached no vCPU of this VM: nothing was sent to any pCPU.</summary>
    public long IcrWithoutTargetInVm { get; internal set; }

    /// <summary>SMIs for a passthrough vCPU: never sent to its pCPU (that would enter the host's SMM); the hypervisor emulates them.</summary>
    public long SmiRefused { get; internal set; }

    /// <summary>INIT and SIPI from trapped ICR writes, emulated within the VM (a vCPU reset), never sent to a pCPU.</summary>
    public long InitSipiEmulated { get; internal set; }

    /// <summary>Interrupts from a trapped ICR write to a vCPU still in xAPIC mode, delivered through its emulated vLAPIC.</summary>
    public long EmulatedTargets { get; internal set; }

    /// <summary>RDMSR 0x802 (ID) and 0x80D (LDR) trapped and answered with the virtual value.</summary>
    public long IdentityReadsVirtualized { get; internal set; }

    /// <summary>Rebuilds of a vCPU's MSR bitmap (x2APIC switch, x2APIC left, TSC offset changed).</summary>
    public long BitmapUpdates { get; internal set; }

    /// <summary>Guard, must stay 0: RDMSR 0x802 or 0x80D that the bitmap let through to the physical LAPIC (a physical ID seen).</summary>
    public long PhysicalIdentityLeaks { get; internal set; }

    /// <summary>Guard, must stay 0: WRMSR 0x830 that the bitmap let through (an untranslated IPI on the host bus).</summary>
    public long UntranslatedIcrWrites { get; internal set; }

    /// <summary>
    /// RDMSR 0x830 passed through while the physical ICR held a destination the hypervisor had
    /// translated: the guest reads a physical APIC ID in ICR[63:32]. Set
    /// <see cref="PassthroughOptions.InterceptIcrRead"/> to close this; the model itself returns the guest's value.
    /// </summary>
    public long PhysicalIcrReadbacks { get; internal set; }

    /// <summary>The counters by name, in declaration order, for <c>--stats</c> and reports.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Rows =>
    [
        new("trapped ICR writes", TrappedIcrWrites),
        new("ICR writes faulted (#GP)", IcrFaults),
        new("ICR reserved modes refused", ReservedModesRefused),
        new("shorthands expanded", ShorthandsExpanded),
        new("logical destinations resolved", LogicalResolved),
        new("logical with xAPIC peers (ACRN: #GP)", LogicalWithXApicPeers),
        new("ICR writes without target in VM", IcrWithoutTargetInVm),
        new("SMIs refused", SmiRefused),
        new("INIT/SIPI emulated", InitSipiEmulated),
        new("targets still in xAPIC (emulated)", EmulatedTargets),
        new("ID/LDR reads virtualized", IdentityReadsVirtualized),
        new("MSR bitmap updates", BitmapUpdates),
        new("physical ID leaks", PhysicalIdentityLeaks),
        new("untranslated ICR writes", UntranslatedIcrWrites),
        new("physical ICR read-backs", PhysicalIcrReadbacks),
    ];
}
