using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine;

namespace Vapic.Virtualization;

/// <summary>
/// The common part of every mode: exit accounting, the cost model, the VM-wide inhibit set,
/// kick/wake bookkeeping, and the plain-emulation behaviour that accelerated modes fall back
/// to while inhibited. The machine's LAPICs stay authoritative for guest-visible state; a mode
/// only adds the hardware structures and the exits real hardware has.
/// </summary>
public abstract class VirtualizationMode : IInterruptVirtualization
{
    private VirtualMachine? _machine;
    private bool[] _kickPending = [];
    private int _currentVcpu = -1;
    private bool _restoring;

    /// <summary>Creates a mode with <paramref name="costModel"/> honoring <paramref name="inhibitMask"/>.</summary>
    protected VirtualizationMode(CostModel costModel, ApicvInhibitMask inhibitMask)
    {
        CostModel = costModel;
        Inhibits = new ApicvInhibitSet(inhibitMask);
        Inhibits.ActivationChanged += OnActivationChanged;
    }

    /// <summary>The mode's name as <c>--mode</c> takes it.</summary>
    public abstract string Name { get; }

    /// <summary>The machine this mode observes.</summary>
    public VirtualMachine Machine => _machine ?? throw new InvalidOperationException("the mode is not attached to a machine");

    /// <summary>Exits and costed events so far.</summary>
    public ExitLedger Ledger { get; } = new();

    /// <summary>Cycles per exit and event.</summary>
    public CostModel CostModel { get; }

    /// <summary>The VM-wide inhibit reasons.</summary>
    public ApicvInhibitSet Inhibits { get; }

    /// <summary>Whether the hardware acceleration of this mode is in effect (no honored inhibit).</summary>
    public virtual bool IsAccelerated => Inhibits.IsActive;

    /// <summary>The vCPU whose guest access is being handled, or -1 (devices, timers, the harness).</summary>
    protected int CurrentVcpu => _currentVcpu;

    /// <inheritdoc/>
    public virtual void Attach(VirtualMachine machine)
    {
        _machine = machine;
        _kickPending = new bool[machine.VcpuCount];
        RecomputeIdentityInhibits();
    }

    /// <inheritdoc/>
    public virtual void OnGuestEntry(Vcpu vcpu)
    {
        _kickPending[vcpu.Index] = false;
        if (vcpu.HostState != VcpuHostState.Running)
        {
            vcpu.SetHostState(VcpuHostState.Running);
        }
    }

    /// <inheritdoc/>
    public void BeforeAccess(Vcpu vcpu, in GuestAccess access)
    {
        _currentVcpu = vcpu.Index;
        ClassifyAccess(vcpu, in access);
    }

    /// <inheritdoc/>
    public void AfterAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
        CompleteAccess(vcpu, in access, result);
        if (access.IsWrite && result == ApicAccessResult.Ok && AffectsIdentity(vcpu, in access))
        {
            RecomputeIdentityInhibits();
        }

        _currentVcpu = -1;
    }

    /// <summary>
    /// Accounts for <paramref name="access"/> before it runs. The default is plain emulation:
    /// every access to the interrupt controllers exits.
    /// </summary>
    protected virtual void ClassifyAccess(Vcpu vcpu, in GuestAccess access) => AccountEmulatedAccess(vcpu, in access);

    /// <summary>Follow-up after the access ran (e.g. trap-like exits that depend on the result).</summary>
    protected virtual void CompleteAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
    }

    /// <summary>The exits plain emulation takes for <paramref name="access"/>.</summary>
    protected void AccountEmulatedAccess(Vcpu vcpu, in GuestAccess access)
    {
        switch (access.Kind)
        {
            case GuestAccessKind.MmioRead:
            case GuestAccessKind.MmioWrite:
                Ledger.Exit(ClassifyMmio(vcpu, access.Address));
                break;
            case GuestAccessKind.MsrRead:
                if (access.Address != Vcpu.MsrTsc)
                {
                    Ledger.Exit(ExitReason.MsrRead);
                }

                break;
            case GuestAccessKind.MsrWrite:
                Ledger.Exit(ExitReason.MsrWrite);
                break;
            case GuestAccessKind.Cr8Read:
                Ledger.Exit(ExitReason.Cr8Read);
                break;
            case GuestAccessKind.Cr8Write:
                Ledger.Exit(ExitReason.Cr8Write);
                break;
        }
    }

    /// <summary>Which device an MMIO address of <paramref name="vcpu"/> reaches.</summary>
    protected ExitReason ClassifyMmio(Vcpu vcpu, ulong address)
    {
        LocalApic apic = vcpu.Apic;
        if (apic.Mode == ApicMode.XApic && address - apic.MmioBase < 0x1000)
        {
            return ExitReason.ApicMmio;
        }

        return Machine.IoApic.Decodes(address) ? ExitReason.IoApicMmio : ExitReason.UnbackedMmio;
    }

    /// <summary>Whether <paramref name="address"/> is inside <paramref name="vcpu"/>'s decoding xAPIC window.</summary>
    protected static bool IsApicWindow(Vcpu vcpu, ulong address) =>
        vcpu.Apic.Mode == ApicMode.XApic && address - vcpu.Apic.MmioBase < 0x1000;

    /// <inheritdoc/>
    public virtual bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message)
    {
        bool accepted = target.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        if (accepted)
        {
            NotifyEmulated(target);
        }

        return accepted;
    }

    /// <inheritdoc/>
    public virtual void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message) => NotifyEmulated(target);

    /// <inheritdoc/>
    public virtual void OnTimerExpiry(Vcpu vcpu) => NotifyEmulated(vcpu, fromHostTimer: true);

    /// <inheritdoc/>
    /// <remarks>Every local interrupt is allowed unless the mode's hardware filters injections.</remarks>
    public virtual bool AllowLocalInterrupt(Vcpu vcpu, LvtEntry source, DeliveryMode mode, byte vector) => true;

    /// <inheritdoc/>
    /// <remarks>Every routed event is allowed unless the mode's hardware filters injections.</remarks>
    public virtual bool AllowEvent(Vcpu target, DeliveryMode mode, in InterruptMessage message) => true;

    /// <inheritdoc/>
    public virtual void OnEventTaken(Vcpu vcpu, CpuEvent taken)
    {
        Ledger.Delivered();
        if (taken.Kind == CpuEventKind.Fixed && IsAccelerated && AcceleratesFixedDelivery(vcpu))
        {
            Ledger.Event(CostEvent.VirtualInterruptDelivery);
            return;
        }

        Ledger.Event(CostEvent.Injection);
        if (taken.Kind == CpuEventKind.Fixed && vcpu.Apic.HasDeliverableInterrupt)
        {
            // Another interrupt is already deliverable behind the one injected: the hypervisor
            // asks for an interrupt window to inject it (KVM enable_irq_window).
            Ledger.Exit(ExitReason.InterruptWindow);
        }
    }

    /// <summary>Whether hardware delivers fixed interrupts to <paramref name="vcpu"/> itself (virtual-interrupt delivery).</summary>
    protected virtual bool AcceleratesFixedDelivery(Vcpu vcpu) => false;

    /// <inheritdoc/>
    public virtual void OnHostStateChanged(Vcpu vcpu, VcpuHostState previous)
    {
    }

    /// <summary>
    /// The nested layer (<c>Nested.NestedVmx</c>) tells the mode that <paramref name="vcpu"/> entered
    /// L2 (<paramref name="inL2"/>: a successful VM entry) or is back in L1 (an exit to L1, an entry
    /// that failed or stopped the vCPU); called only when that changes. Nothing by default: only a
    /// vendor with a per-vCPU inhibit for guest mode reacts (SVM's NESTED, KVM
    /// <c>avic_vcpu_get_apicv_inhibit_reasons</c>; VMX has none).
    /// </summary>
    public virtual void OnGuestModeChanged(Vcpu vcpu, bool inL2)
    {
    }

    /// <summary>
    /// The per-vCPU inhibit reasons of <paramref name="vcpu"/> (KVM <c>vcpu_get_apicv_inhibit_reasons</c>),
    /// which count with <see cref="Inhibits"/> for that vCPU alone and never enter the VM-wide set;
    /// none by default.
    /// </summary>
    public virtual ApicvInhibitMask GetVcpuInhibits(Vcpu vcpu) => ApicvInhibitMask.None;

    /// <summary>
    /// Emulated notification: an event is pending for <paramref name="target"/> in its LAPIC;
    /// kick it out of the guest if it runs elsewhere, wake it if it is blocked; a preempted vCPU
    /// gets it injected at its next entry.
    /// </summary>
    protected void NotifyEmulated(Vcpu target, bool fromHostTimer = false)
    {
        if (target.Index == _currentVcpu && !fromHostTimer)
        {
            // The sender is the target and is already out of the guest for its own access.
            return;
        }

        switch (target.HostState)
        {
            case VcpuHostState.Running:
                if (!_kickPending[target.Index])
                {
                    _kickPending[target.Index] = true;
                    Ledger.Exit(ExitReason.ExternalInterrupt);
                }

                break;
            case VcpuHostState.Halted:
                Wake(target);
                break;
        }
    }

    /// <summary>Wakes a halted vCPU: the host schedules it and it enters the guest.</summary>
    protected void Wake(Vcpu target)
    {
        Ledger.Event(CostEvent.WakeupBlockedVcpu);
        target.SetHostState(VcpuHostState.Running);
        _kickPending[target.Index] = true;
    }

    /// <summary>Whether <paramref name="target"/> was kicked or woken and has not re-entered the guest since (it is not in guest mode).</summary>
    protected bool IsKickPending(Vcpu target) => _kickPending[target.Index];

    /// <summary>Marks that <paramref name="target"/> was kicked (so further kicks before it re-enters are free).</summary>
    protected bool TryMarkKick(Vcpu target)
    {
        if (_kickPending[target.Index])
        {
            return false;
        }

        _kickPending[target.Index] = true;
        return true;
    }

    /// <summary>Sets or clears an inhibit reason (for callers: trace commands, nested virtualization, the harness).</summary>
    public void SetInhibit(ApicvInhibit reason, bool set) => Inhibits.Update(reason, set);

    /// <summary>
    /// Why this mode cannot run the guest it has observed (an x2APIC-only mode that saw xAPIC MMIO,
    /// say), or null. Once set, the guest-visible results need not match emulation: a replay stops
    /// and reports the trace as skipped in this mode (trace format, <c>--mode all</c>).
    /// </summary>
    public virtual string? InapplicableReason => null;

    /// <summary>
    /// The hypervisor injects fixed edge <paramref name="vector"/> into <paramref name="target"/> on its
    /// own initiative (trace <c>hv inject</c>). By default it is delivered like a device interrupt
    /// sent to that vCPU alone; a mode whose hardware filters injections overrides this.
    /// </summary>
    public virtual void InjectFromHypervisor(Vcpu target, byte vector) =>
        Machine.Deliver(HypervisorMessage(target, DeliveryMode.Fixed, vector));

    /// <summary>The hypervisor injects an NMI into <paramref name="target"/> (trace <c>hv nmi</c>); by default delivered like a device NMI.</summary>
    public virtual void InjectNmiFromHypervisor(Vcpu target) =>
        Machine.Deliver(HypervisorMessage(target, DeliveryMode.Nmi, 0));

    /// <summary>
    /// A message from the hypervisor to <paramref name="target"/> alone: the self shorthand with the
    /// target as source, so that no APIC ID lookup can miss or alias it.
    /// </summary>
    protected static InterruptMessage HypervisorMessage(Vcpu target, DeliveryMode mode, byte vector) =>
        new(vector, mode, DestinationMode.Physical, target.Apic.Id, DestinationShorthand.Self, LevelTriggered: false, Assert: true,
            RedirectionHint: false, InterruptSource.External, SourceVcpu: target.Index);

    /// <summary>
    /// The mode's own counters (refusals, translations, filtered injections...) as name/value
    /// rows, for <c>vapic replay --stats</c>; none by default.
    /// </summary>
    public virtual IReadOnlyList<KeyValuePair<string, long>> ModeCounters => [];

    /// <summary>Acceleration was switched on or off: move held interrupts into the LAPICs, reprogram hardware state.</summary>
    protected virtual void OnActivationChanged(bool active)
    {
    }

    /// <summary>
    /// Before a save: the base class holds no interrupt (plain emulation keeps everything in the
    /// LAPICs), so there is nothing to move and the save may go ahead. A mode that holds interrupts
    /// elsewhere moves them into the LAPICs here; one whose host cannot read the guest's interrupt
    /// state refuses.
    /// </summary>
    public virtual SavedStateResult PrepareForSave() => SavedStateResult.Success;

    /// <summary>Whether a saved state may be restored under this mode: yes, unless a mode's host cannot write the guest's interrupt state.</summary>
    public virtual SavedStateResult CheckRestore() => SavedStateResult.Success;

    /// <summary>
    /// After a restore: no vCPU is in guest mode or kicked, no guest access is in progress, and the
    /// identity inhibits are re-derived from the restored LAPICs, sticky ones included (a restored
    /// machine is judged by the IDs and bases it has, as a machine attached in that state would be;
    /// KVM's <c>kvm_apic_set_state</c> recalculates the APIC map). Inhibits callers set
    /// (<see cref="SetInhibit"/>) describe this host and are kept. Modes override it to rebuild
    /// their own structures and call the base first or last as their order requires.
    /// </summary>
    public virtual void OnStateRestored()
    {
        _restoring = true;
        Array.Clear(_kickPending);
        _currentVcpu = -1;
        RecomputeIdentityInhibits();
        _restoring = false;
    }

    /// <summary>
    /// True while <see cref="OnStateRestored"/> re-derives the inhibits: userspace restores stopped
    /// vCPUs, so an activation change then kicks nobody and sticky reasons may clear.
    /// </summary>
    protected bool IsRestoring => _restoring;

    private static bool AffectsIdentity(Vcpu vcpu, in GuestAccess access) => access.Kind switch
    {
        GuestAccessKind.MsrWrite => access.Address == 0x1B,
        GuestAccessKind.MmioWrite => IsApicWindow(vcpu, access.Address) && (access.Address & 0xFFF) is 0x020 or 0x0D0 or 0x0E0 or 0x0F0,
        _ => false,
    };

    /// <summary>
    /// Recomputes the inhibits the guest's own APIC programming causes (KVM
    /// <c>kvm_recalculate_apic_map</c> and friends): a changed xAPIC ID (sticky), a relocated APIC
    /// base (sticky), physical IDs that alias, and the vendor's own identity checks.
    /// </summary>
    protected virtual void RecomputeIdentityInhibits()
    {
        VirtualMachine machine = Machine;
        bool idModified = false, baseModified = false, aliased = false;
        var seen = new HashSet<uint>();
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            LocalApic apic = vcpu.Apic;
            if (apic.Mode == ApicMode.Disabled)
            {
                continue;
            }

            if (apic.Mode == ApicMode.XApic && apic.Id != (apic.Options.InitialId & 0xFF))
            {
                idModified = true;
            }

            if (apic.MmioBase != LocalApic.DefaultBase)
            {
                baseModified = true;
            }

            if (!seen.Add(apic.Id))
            {
                aliased = true;
            }
        }

        // Sticky while the guest runs (once set, later writes never clear them); a restore re-derives
        // them from the restored IDs and bases.
        if (idModified || _restoring)
        {
            Inhibits.Update(ApicvInhibit.ApicIdModified, idModified);
        }

        if (baseModified || _restoring)
        {
            Inhibits.Update(ApicvInhibit.ApicBaseModified, baseModified);
        }

        Inhibits.Update(ApicvInhibit.PhysicalIdAliased, aliased);
    }
}

/// <summary>
/// Plain emulation: every access to the LAPIC (MMIO page or x2APIC MSRs, CR8) exits to the
/// hypervisor, interrupts are injected at VM entry, and a running target is kicked out of the
/// guest so that the injection can happen. It holds nothing outside the LAPICs and derives
/// nothing from them, so a save takes them as they are and a restore only resets the base class's
/// kick bookkeeping and inhibits (none of which it honors).
/// </summary>
public sealed class EmulatedMode : VirtualizationMode
{
    /// <summary>Creates the mode.</summary>
    public EmulatedMode(CostModel? costModel = null)
        : base(costModel ?? CostModel.Default, ApicvInhibitMask.None)
    {
    }

    /// <inheritdoc/>
    public override string Name => "emulated";

    /// <inheritdoc/>
    public override bool IsAccelerated => false;
}
