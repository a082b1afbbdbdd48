namespace Vapic.Virtualization.SecureAvic;

/// <summary>
/// The Secure AVIC state of one vCPU: its backing page, the control MSR the guest wrote, and what
/// the hypervisor recorded when the guest registered the page (virtualization-reference §7.2).
/// </summary>
public sealed class SecureAvicVcpu
{
    internal SecureAvicVcpu(int index, SecureAvicBackingPage page)
    {
        Index = index;
        Page = page;
    }

    /// <summary>The vCPU index.</summary>
    public int Index { get; }

    /// <summary>The guest-owned backing page.</summary>
    public SecureAvicBackingPage Page { get; }

    /// <summary>MSR_AMD64_SAVIC_CONTROL as the guest last wrote it: GPA | ALLOWEDNMI | EN.</summary>
    public ulong ControlMsr { get; internal set; }

    /// <summary>Whether Secure AVIC is enabled for this vCPU (control MSR bit 0).</summary>
    public bool Enabled => (ControlMsr & SecureAvicControl.Enable) != 0;

    /// <summary>Whether the hypervisor may inject an NMI: enabled with ALLOWEDNMI (control MSR bit 1).</summary>
    public bool NmiAllowed => (ControlMsr & (SecureAvicControl.Enable | SecureAvicControl.AllowedNmi)) == (SecureAvicControl.Enable | SecureAvicControl.AllowedNmi);

    /// <summary>The backing-page GPA the hypervisor holds for this vCPU (SVM_VMGEXIT_SAVIC register), or null.</summary>
    public ulong? RegisteredGpa { get; internal set; }

    /// <summary>Whether the vCPU's LAPIC has been in x2APIC mode (Secure AVIC requires it before any LAPIC access).</summary>
    public bool HasEnteredX2Apic { get; internal set; }

    /// <summary>The LVT timer vector the driver allowed for the hypervisor's timer, or -1.</summary>
    public int AllowedTimerVector { get; internal set; } = -1;
}
