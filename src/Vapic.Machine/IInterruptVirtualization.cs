using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine;

/// <summary>The kind of a guest access to the interrupt controllers.</summary>
public enum GuestAccessKind : byte
{
    MmioRead,
    MmioWrite,
    MsrRead,
    MsrWrite,
    Cr8Read,
    Cr8Write,
}

/// <summary>
/// One guest access as the hypervisor layer sees it: what was accessed, with which value, by
/// which vCPU. <see cref="Address"/> is the physical address (MMIO) or the MSR number.
/// </summary>
public readonly record struct GuestAccess(GuestAccessKind Kind, ulong Address, ulong Value)
{
    /// <summary>True for writes (MMIO, MSR and CR8).</summary>
    public bool IsWrite => Kind is GuestAccessKind.MmioWrite or GuestAccessKind.MsrWrite or GuestAccessKind.Cr8Write;
}

/// <summary>Where the host has a vCPU, which decides how interrupts reach it.</summary>
public enum VcpuHostState : byte
{
    /// <summary>In guest mode on its pCPU: posted interrupts and doorbells are processed at once.</summary>
    Running,

    /// <summary>Runnable but descheduled: posted interrupts wait in the PIR until the next VM entry.</summary>
    Preempted,

    /// <summary>Blocked in HLT: an interrupt must wake it (wakeup vector / kick).</summary>
    Halted,
}

/// <summary>
/// The hypervisor's side of interrupt virtualization, as a machine sees it. The machine keeps
/// the architectural state authoritative (its LAPICs); a mode observes every guest access and
/// every delivery to account for the exits and notifications that real hardware would take,
/// and it may hold fixed interrupts in hardware structures (a posted-interrupt descriptor, say)
/// until the target vCPU next enters the guest. Every method must leave the guest-visible
/// result exactly as plain emulation would: that is what <c>vapic replay --mode all</c> checks.
/// </summary>
public interface IInterruptVirtualization
{
    /// <summary>Called once when the machine is built, after its vCPUs exist.</summary>
    void Attach(VirtualMachine machine);

    /// <summary>
    /// <paramref name="vcpu"/> is about to execute guest code (an access, or taking an event):
    /// it enters the guest if it was not running, and anything the hardware still holds for it
    /// (posted interrupts) reaches its LAPIC first.
    /// </summary>
    void OnGuestEntry(Vcpu vcpu);

    /// <summary>Before the access is performed: classify it (exit or not) from the pre-access state.</summary>
    void BeforeAccess(Vcpu vcpu, in GuestAccess access);

    /// <summary>After the access was performed, with its architectural result.</summary>
    void AfterAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result);

    /// <summary>
    /// A fixed (or arbitrated lowest-priority) interrupt reaches <paramref name="target"/>. The
    /// mode either accepts it into the LAPIC now or holds it (and later accepts it in
    /// <see cref="OnGuestEntry"/>). Returns whether the interrupt was (or will be) accepted.
    /// </summary>
    bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message);

    /// <summary>An NMI, SMI, INIT, SIPI or ExtINT was latched for <paramref name="target"/>.</summary>
    void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message);

    /// <summary>The LAPIC timer of <paramref name="vcpu"/> is about to expire.</summary>
    void OnTimerExpiry(Vcpu vcpu);

    /// <summary>
    /// The LAPIC of <paramref name="vcpu"/> is about to deliver an interrupt it raises through its
    /// own LVT <paramref name="source"/> (timer expiry, LINT0/LINT1, thermal, performance counter,
    /// error) with <paramref name="mode"/> and <paramref name="vector"/>. Returning false refuses it:
    /// nothing reaches IRR or the pending events, and the LAPIC counts the refusal. Only a mode whose
    /// hardware filters what the hypervisor injects (Secure AVIC: ALLOWED_IRR, ALLOWEDNMI) says no;
    /// the default allows everything. On the timer-expiry path: cheap, no allocation.
    /// </summary>
    bool AllowLocalInterrupt(Vcpu vcpu, LvtEntry source, DeliveryMode mode, byte vector) => true;

    /// <summary>
    /// A routed NMI, SMI, INIT, SIPI or ExtINT <paramref name="message"/> is about to be latched for
    /// <paramref name="target"/> with <paramref name="mode"/> (the router calls it before
    /// <see cref="LocalApic.AcceptInterrupt"/>, and <see cref="OnEventLatched"/> follows only when
    /// this allowed it and the LAPIC latched it). Returning false refuses the event: nothing is
    /// latched and the delivery does not count as accepted. The default allows everything.
    /// </summary>
    bool AllowEvent(Vcpu target, DeliveryMode mode, in InterruptMessage message) => true;

    /// <summary><paramref name="vcpu"/> took <paramref name="taken"/> (never <see cref="CpuEventKind.None"/>).</summary>
    void OnEventTaken(Vcpu vcpu, CpuEvent taken);

    /// <summary>The host scheduler moved <paramref name="vcpu"/> from <paramref name="previous"/> to its current host state.</summary>
    void OnHostStateChanged(Vcpu vcpu, VcpuHostState previous);

    /// <summary>
    /// The machine is about to be saved: move everything the mode holds for any vCPU into the
    /// architectural state (a held posted interrupt into IRR, with TMR for a level-triggered one,
    /// exactly as <see cref="OnGuestEntry"/> would accept it), so that the saved LAPICs are the
    /// whole interrupt state. What the guest can observe must not change. Returns success, or an
    /// <see cref="SavedStateError.Unsupported"/> failure naming the mode when the host cannot read
    /// the guest's interrupt state at all; a refusal changes nothing.
    /// </summary>
    /// <remarks>As KVM's <c>KVM_GET_LAPIC</c>, which syncs the PIR into IRR first (<c>kvm_apic_get_state</c>).</remarks>
    SavedStateResult PrepareForSave();

    /// <summary>
    /// Whether a saved state may be restored into this machine under the mode: success, or an
    /// <see cref="SavedStateError.Unsupported"/> failure when the host cannot write the guest's
    /// interrupt state. Checked before anything changes; changes nothing.
    /// </summary>
    SavedStateResult CheckRestore();

    /// <summary>
    /// A saved state was restored (every LAPIC, run and host state, the IOAPIC and the clock are
    /// already in place): drop whatever the mode held for the replaced state and rebuild every
    /// structure it derives from the architectural state (ID tables, inhibits, EOI-exit bitmaps,
    /// TPR threshold, posted-interrupt descriptors, IsRunning from the host states), as a mode
    /// attached to a machine in that state would have them.
    /// </summary>
    /// <remarks>As KVM's <c>KVM_SET_LAPIC</c> (<c>kvm_apic_set_state</c>): PI descriptors cleared, APIC maps and inhibits recalculated, apicv state re-derived.</remarks>
    void OnStateRestored();
}
