namespace Vapic.Virtualization;

/// <summary>
/// Why APIC virtualization (APICv or AVIC) is turned off, as KVM's <c>enum kvm_apicv_inhibit</c>
/// defines them (virtualization-reference §4.1; the numbers are the model's own copy of KVM's
/// declaration order, with L2_PASSTHROUGH_ACCESS appended as 13 per §4.4).
/// </summary>
public enum ApicvInhibit : byte
{
    /// <summary>Module parameter off or no hardware support.</summary>
    Disabled = 0,

    /// <summary>Hyper-V SynIC AutoEOI in use.</summary>
    HyperV = 1,

    /// <summary>No in-kernel irqchip yet.</summary>
    Absent = 2,

    /// <summary>KVM_GUESTDBG_BLOCKIRQ active.</summary>
    BlockIrq = 3,

    /// <summary>APIC IDs are not 1:1 with vCPUs (two APICs answer the same physical ID).</summary>
    PhysicalIdAliased = 4,

    /// <summary>The guest changed an xAPIC ID from its reset value (sticky).</summary>
    ApicIdModified = 5,

    /// <summary>The guest relocated the APIC base away from 0xFEE00000 (sticky).</summary>
    ApicBaseModified = 6,

    /// <summary>A vCPU runs L2 (AVIC peers cannot ring its doorbell).</summary>
    Nested = 7,

    /// <summary>KVM waits for an interrupt window with V_IRQ, which AVIC disables.</summary>
    IrqWindow = 8,

    /// <summary>PIT re-inject mode needs EOI exits for edge interrupts.</summary>
    PitReinject = 9,

    /// <summary>SEV guest: AVIC unsupported.</summary>
    Sev = 10,

    /// <summary>A valid logical ID maps to more than one vCPU.</summary>
    LogicalIdAliased = 11,

    /// <summary>An APIC ID is above what the AVIC physical ID table can address.</summary>
    PhysicalIdTooBig = 12,

    /// <summary>L2 touched the APIC-access page directly (RFC, Aug 2023); raised by nested virtualization.</summary>
    L2PassthroughAccess = 13,
}

/// <summary>A set of <see cref="ApicvInhibit"/> reasons as a bit mask.</summary>
[Flags]
public enum ApicvInhibitMask : ushort
{
    None = 0,
    Disabled = 1 << ApicvInhibit.Disabled,
    HyperV = 1 << ApicvInhibit.HyperV,
    Absent = 1 << ApicvInhibit.Absent,
    BlockIrq = 1 << ApicvInhibit.BlockIrq,
    PhysicalIdAliased = 1 << ApicvInhibit.PhysicalIdAliased,
    ApicIdModified = 1 << ApicvInhibit.ApicIdModified,
    ApicBaseModified = 1 << ApicvInhibit.ApicBaseModified,
    Nested = 1 << ApicvInhibit.Nested,
    IrqWindow = 1 << ApicvInhibit.IrqWindow,
    PitReinject = 1 << ApicvInhibit.PitReinject,
    Sev = 1 << ApicvInhibit.Sev,
    LogicalIdAliased = 1 << ApicvInhibit.LogicalIdAliased,
    PhysicalIdTooBig = 1 << ApicvInhibit.PhysicalIdTooBig,
    L2PassthroughAccess = 1 << ApicvInhibit.L2PassthroughAccess,

    /// <summary>The reasons Intel APICv honors (KVM <c>VMX_REQUIRED_APICV_INHIBITS</c>, plus the nested RFC reason).</summary>
    Vmx = Disabled | Absent | HyperV | BlockIrq | PhysicalIdAliased | ApicIdModified | ApicBaseModified | L2PassthroughAccess,

    /// <summary>The reasons AMD AVIC honors (KVM <c>AVIC_REQUIRED_APICV_INHIBITS</c>, plus the nested RFC reason).</summary>
    Svm = Vmx | Nested | IrqWindow | PitReinject | Sev | LogicalIdAliased | PhysicalIdTooBig,
}

/// <summary>
/// The VM-wide inhibit reasons of one machine (virtualization-reference §4.2). A reason outside
/// the vendor's mask is recorded but has no effect. When the set goes from empty to non-empty
/// (or back), <see cref="ActivationChanged"/> is raised so that the mode can move every pending
/// posted interrupt into IRR before falling back to emulation.
/// </summary>
public sealed class ApicvInhibitSet
{
    private ApicvInhibitMask _reasons;

    /// <summary>Creates an empty set that honors <paramref name="vendorMask"/>.</summary>
    public ApicvInhibitSet(ApicvInhibitMask vendorMask) => VendorMask = vendorMask;

    /// <summary>The reasons this vendor honors.</summary>
    public ApicvInhibitMask VendorMask { get; }

    /// <summary>Every reason currently set (honored or not).</summary>
    public ApicvInhibitMask Reasons => _reasons;

    /// <summary>The honored reasons currently set.</summary>
    public ApicvInhibitMask Effective => _reasons & VendorMask;

    /// <summary>True while no honored reason is set: acceleration is on.</summary>
    public bool IsActive => Effective == ApicvInhibitMask.None;

    /// <summary>How many times acceleration was switched off or on.</summary>
    public long Toggles { get; private set; }

    /// <summary>Raised with the new activation state after it changed.</summary>
    public event Action<bool>? ActivationChanged;

    /// <summary>Whether <paramref name="reason"/> is set.</summary>
    public bool Contains(ApicvInhibit reason) => (_reasons & ToMask(reason)) != 0;

    /// <summary>Sets or clears <paramref name="reason"/>.</summary>
    public void Update(ApicvInhibit reason, bool set)
    {
        bool wasActive = IsActive;
        _reasons = set ? _reasons | ToMask(reason) : _reasons & ~ToMask(reason);
        if (wasActive != IsActive)
        {
            Toggles++;
            ActivationChanged?.Invoke(IsActive);
        }
    }

    /// <summary>The mask bit of <paramref name="reason"/>.</summary>
    public static ApicvInhibitMask ToMask(ApicvInhibit reason) => (ApicvInhibitMask)(1 << (int)reason);

    /// <summary>The reasons in <paramref name="mask"/>, in numeric order.</summary>
    public static IEnumerable<ApicvInhibit> Enumerate(ApicvInhibitMask mask)
    {
        foreach (ApicvInhibit reason in Enum.GetValues<ApicvInhibit>())
        {
            if ((mask & ToMask(reason)) != 0)
            {
                yield return reason;
            }
        }
    }
}
