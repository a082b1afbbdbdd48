using Vapic.Apic;

namespace Vapic.Virtualization.Passthrough;

/// <summary>Who put a physical interrupt message on the host's APIC bus.</summary>
public enum PhysicalIpiOrigin : byte
{
    /// <summary>The hypervisor, translating a guest ICR write it trapped (virtualization-reference §6.3).</summary>
    GuestIcr,

    /// <summary>The guest's own SELF IPI register (MSR 0x83F, passed through): local to its pCPU.</summary>
    GuestSelfIpi,

    /// <summary>A device MSI aimed at a passthrough vCPU, sent straight to its pCPU.</summary>
    DeviceMsi,

    /// <summary>The hypervisor, delivering an interrupt it emulates (IOAPIC, an xAPIC-mode sender, an injection).</summary>
    Hypervisor,
}

/// <summary>
/// One interrupt message the host sent to a physical LAPIC. It is always a physical-mode unicast
/// without shorthand: every guest destination is resolved to physical IDs before anything is
/// sent, so no message on the host bus is ever addressed by the guest's own bits.
/// </summary>
/// <param name="SourcePcpu">The pCPU that sent it, or -1 for a device.</param>
/// <param name="DestinationPhysicalId">The physical (x2APIC) ID it is addressed to.</param>
/// <param name="Vector">The vector (ignored by the receiver for NMI).</param>
/// <param name="Mode">Fixed or NMI: the only delivery modes the model sends to a pCPU.</param>
/// <param name="Origin">Who sent it.</param>
public readonly record struct PhysicalIpi(int SourcePcpu, uint DestinationPhysicalId, byte Vector, DeliveryMode Mode, PhysicalIpiOrigin Origin);
