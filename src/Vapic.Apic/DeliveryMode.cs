namespace Vapic.Apic;

/// <summary>The 3-bit delivery-mode field of ICR, LVT, IOAPIC RTE and MSI data (SDM "Interrupt Command Register").</summary>
public enum DeliveryMode : byte
{
    Fixed = 0,
    LowestPriority = 1,
    Smi = 2,
    Reserved3 = 3,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
    ExtInt = 7,
}

/// <summary>ICR/RTE/MSI destination mode (bit 11 of ICR and RTE, bit 2 of the MSI address).</summary>
public enum DestinationMode : byte
{
    Physical = 0,
    Logical = 1,
}

/// <summary>ICR destination shorthand, bits 19:18.</summary>
public enum DestinationShorthand : byte
{
    None = 0,
    Self = 1,
    AllIncludingSelf = 2,
    AllExcludingSelf = 3,
}

/// <summary>Where an interrupt message came from; destination matching differs for IPIs (SDM, KVM <c>kvm_apic_mda</c>).</summary>
public enum InterruptSource : byte
{
    /// <summary>An IPI written to ICR or SELF_IPI by a local APIC.</summary>
    Ipi,

    /// <summary>An IOAPIC redirection entry.</summary>
    IoApic,

    /// <summary>A message-signalled interrupt written by a device.</summary>
    Msi,

    /// <summary>An interrupt injected by the hypervisor or a test harness.</summary>
    External,
}
