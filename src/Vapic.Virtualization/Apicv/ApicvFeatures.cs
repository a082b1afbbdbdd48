namespace Vapic.Virtualization.Apicv;

/// <summary>
/// The APICv VM-execution controls a hypervisor turns on (virtualization-reference §2.1). All are
/// on by default: KVM on a Sapphire Rapids class host with <c>enable_apicv</c> and <c>enable_ipiv</c>.
/// "Virtualize APIC accesses" and "virtualize x2APIC mode" follow the TPR shadow (KVM's
/// flexpriority needs it, and picks one of the two by the vCPU's APIC mode); external-interrupt
/// exiting and acknowledge-interrupt-on-exit are always on, as in KVM.
/// </summary>
public sealed record ApicvFeatures
{
    /// <summary>Use TPR shadow (primary processor-based control bit 21): the virtual-APIC page and VTPR.</summary>
    public bool TprShadow { get; init; } = true;

    /// <summary>APIC-register virtualization (secondary control bit 8): most register reads are served from the virtual-APIC page.</summary>
    public bool ApicRegisterVirtualization { get; init; } = true;

    /// <summary>Virtual-interrupt delivery (secondary control bit 9): RVI/SVI, EOI and self-IPI virtualization.</summary>
    public bool VirtualInterruptDelivery { get; init; } = true;

    /// <summary>Process posted interrupts (pin-based control bit 7).</summary>
    public bool PostedInterrupts { get; init; } = true;

    /// <summary>IPI virtualization (tertiary control bit 4): unicast physical fixed IPIs are posted without a sender exit.</summary>
    public bool IpiVirtualization { get; init; } = true;

    /// <summary>Every feature: the IPIV column of virtualization-reference §1.3.</summary>
    public static ApicvFeatures Default { get; } = new();

    /// <summary>APIC-register virtualization, virtual-interrupt delivery and posted interrupts without IPIv: the VID column of §1.3.</summary>
    public static ApicvFeatures WithoutIpiVirtualization { get; } = new() { IpiVirtualization = false };

    /// <summary>TPR shadow alone ("FlexPriority"): only TPR accesses are virtualized; TPR-below-threshold exits apply.</summary>
    public static ApicvFeatures TprShadowOnly { get; } = new()
    {
        ApicRegisterVirtualization = false,
        VirtualInterruptDelivery = false,
        PostedInterrupts = false,
        IpiVirtualization = false,
    };

    /// <summary>
    /// Checks the combination against the VM-entry checks on VMX controls (SDM "Checks on
    /// VMX Controls"; virtualization-reference §2.1). Returns null when VM entry would succeed,
    /// otherwise what makes it fail ("invalid control field", VM-instruction error 7).
    /// </summary>
    public string? Validate()
    {
        if (!TprShadow && (ApicRegisterVirtualization || VirtualInterruptDelivery))
        {
            // "use TPR shadow" = 0 requires "virtualize x2APIC mode", "APIC-register
            // virtualization" and "virtual-interrupt delivery" to be 0.
            return "APIC-register virtualization and virtual-interrupt delivery need the TPR shadow";
        }

        if (PostedInterrupts && !VirtualInterruptDelivery)
        {
            // "process posted interrupts" = 1 requires "virtual-interrupt delivery" = 1.
            return "posted interrupts need virtual-interrupt delivery";
        }

        if (IpiVirtualization && !PostedInterrupts)
        {
            // UNVERIFIED in the reference (§2.1): IPIv posts into PIDs, so it is adopted as needing
            // posted-interrupt processing (KVM enables it only together with APICv).
            return "IPI virtualization needs posted interrupts";
        }

        return null;
    }
}
