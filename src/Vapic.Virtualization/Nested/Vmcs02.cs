namespace Vapic.Virtualization.Nested;

/// <summary>What L0 changed when it built a vmcs02 from a vmcs12 it could not follow exactly.</summary>
[Flags]
public enum Vmcs02Adjustments : byte
{
    /// <summary>vmcs02 follows vmcs12.</summary>
    None = 0,

    /// <summary>"Virtualize APIC accesses" cleared: the APIC-access address is not RAM (quirk <c>nested-apic-access-clear</c> only).</summary>
    ApicAccessesCleared = 1 << 0,

    /// <summary>"Use TPR shadow" cleared: the virtual-APIC page is not RAM, CR8 exits cover TPR accesses (TV49).</summary>
    TprShadowCleared = 1 << 1,

    /// <summary>Virtual-APIC address made invalid so that the entry fails: the page is not RAM (TV49).</summary>
    VirtualApicInvalid = 1 << 2,

    /// <summary>"Process posted interrupts" cleared: the descriptor is not RAM; an error waits until L0 must read it (TV48).</summary>
    PostedInterruptsCleared = 1 << 3,
}

/// <summary>
/// The VMCS L0 runs L2 on (virtualization-reference §5.1): the controls as L0 set them and the
/// host-physical addresses L0 mapped the vmcs12 addresses to.
/// </summary>
/// <param name="Controls">The controls in effect.</param>
/// <param name="ApicAccessHostAddress">Field 0x2014: host address of the APIC-access page, or null when the control is off.</param>
/// <param name="VirtualApicHostAddress">Field 0x2012: host address of the virtual-APIC page, or null when the TPR shadow is off.</param>
/// <param name="PostedInterruptDescriptorHostAddress">Field 0x2016: host address of L1's descriptor (offset kept), or null.</param>
/// <param name="NotificationVector">The notification vector in vmcs02: KVM's POSTED_INTR_NESTED_VECTOR 0xF0 (L1's own vector is remembered apart).</param>
/// <param name="Adjustments">What differs from vmcs12.</param>
public sealed record Vmcs02(
    Vmcs12Controls Controls,
    ulong? ApicAccessHostAddress,
    ulong? VirtualApicHostAddress,
    ulong? PostedInterruptDescriptorHostAddress,
    byte NotificationVector,
    Vmcs02Adjustments Adjustments)
{
    /// <summary>KVM's POSTED_INTR_NESTED_VECTOR.</summary>
    public const byte NestedPostedInterruptVector = 0xF0;

    /// <summary>Whether every control in <paramref name="controls"/> is set.</summary>
    public bool Has(Vmcs12Controls controls) => (Controls & controls) == controls;
}
