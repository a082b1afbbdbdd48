using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine;

namespace Vapic.Virtualization.Apicv;

/// <summary>
/// Intel APICv as KVM drives it (virtualization-reference §2): the TPR shadow, the APIC-access
/// page and x2APIC MSR virtualization decide which guest accesses exit; virtual-interrupt
/// delivery takes fixed interrupts without an exit; posted interrupts reach a running vCPU
/// without an exit, wait in the PIR of a preempted one and wake a halted one; IPI
/// virtualization sends unicast physical fixed IPIs without a sender exit. While an honored
/// inhibit is set everything is accounted as plain emulation.
/// </summary>
public sealed partial class ApicvMode : VirtualizationMode
{
    private ApicvVcpuState[] _vcpus = [];
    private PidPointerTable _pidTable = PidPointerTable.Empty;

    // Per guest access (between BeforeAccess and AfterAccess): how an IPI it sends is virtualized,
    // and whether the access took an exit (the vCPU is then in root mode until it re-enters).
    private SendPath _send;
    private bool _accessExited;

    /// <summary>How the current access's IPI reaches its targets.</summary>
    private enum SendPath : byte
    {
        /// <summary>No virtualized send: the hypervisor sends it (after an exit) or it is not an IPI.</summary>
        Hypervisor,

        /// <summary>Self-IPI virtualization: the vector goes straight into VIRR.</summary>
        SelfIpiVirtualized,

        /// <summary>IPI virtualization: the processor posts into the target's PID.</summary>
        IpiVirtualized,
    }

    /// <summary>Creates the mode with <paramref name="features"/> (all on by default).</summary>
    /// <exception cref="ArgumentException">The features fail the VM-entry checks of virtualization-reference §2.1.</exception>
    public ApicvMode(ApicvFeatures? features = null, CostModel? costModel = null)
        : base(costModel ?? CostModel.Default, ApicvInhibitMask.Vmx)
    {
        features ??= ApicvFeatures.Default;
        string? error = features.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(features));
        }

        Features = features;
    }

    /// <inheritdoc/>
    public override string Name => "apicv";

    /// <summary>The VM-execution controls in use.</summary>
    public ApicvFeatures Features { get; }

    /// <summary>The IPIv PID-pointer table (valid entries at every vCPU's initial APIC ID).</summary>
    public PidPointerTable PidTable => _pidTable;

    /// <summary>The APICv state of vCPU <paramref name="index"/>.</summary>
    public ApicvVcpuState GetVcpuState(int index) => _vcpus[index];

    /// <summary>
    /// Places vCPU <paramref name="vcpuIndex"/> on the pCPU with host APIC ID
    /// <paramref name="hostApicId"/> (the model's default is host pCPU = vCPU index). NDST follows
    /// at once if the vCPU is loaded, as KVM's <c>vmx_vcpu_pi_load</c> rewrites it on migration.
    /// </summary>
    public void PlaceVcpu(int vcpuIndex, uint hostApicId)
    {
        ApicvVcpuState state = _vcpus[vcpuIndex];
        state.HostApicId = hostApicId;
        if (Machine.GetVcpu(vcpuIndex).HostState == VcpuHostState.Running)
        {
            state.Descriptor.NotificationDestination = hostApicId;
        }
    }

    /// <inheritdoc/>
    public override void Attach(VirtualMachine machine)
    {
        int n = machine.VcpuCount;
        var states = new ApicvVcpuState[n];
        var descriptors = new PostedInterruptDescriptor[n];
        var ids = new uint[n];
        for (int i = 0; i < n; i++)
        {
            Vcpu vcpu = machine.GetVcpu(i);
            descriptors[i] = new PostedInterruptDescriptor(i, hostApicId: (uint)i);
            states[i] = new ApicvVcpuState(vcpu, descriptors[i], Features.VirtualInterruptDelivery);
            ids[i] = vcpu.Apic.Options.InitialId;
            LoadDescriptor(vcpu, states[i]);
        }

        _vcpus = states;
        _pidTable = new PidPointerTable(ids, descriptors);
        base.Attach(machine);
    }

    /// <inheritdoc/>
    protected override bool AcceleratesFixedDelivery(Vcpu vcpu) => Features.VirtualInterruptDelivery;

    /// <inheritdoc/>
    public override void OnGuestEntry(Vcpu vcpu)
    {
        ApicvVcpuState state = _vcpus[vcpu.Index];

        // Entering from preempted or halted loads the descriptor and merges the PIR (OnHostStateChanged).
        base.OnGuestEntry(vcpu);
        if (IsAccelerated && !state.Descriptor.Pir.IsEmpty)
        {
            MergePir(vcpu, state.Descriptor, CostEvent.PostedMergeOnEntry);
        }
    }

    /// <inheritdoc/>
    public override bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message)
    {
        ApicvVcpuState state = _vcpus[target.Index];
        state.MarkReentry();
        if (!IsAccelerated)
        {
            return base.DeliverFixed(target, vector, levelTriggered, in message);
        }

        LocalApic apic = target.Apic;
        bool toSender = target.Index == CurrentVcpu;
        if (toSender && _send == SendPath.SelfIpiVirtualized)
        {
            // SDM "Self-IPI Virtualization": VIRR[v] = 1, RVI = max(RVI, v), evaluate; no PIR, no exit.
            return apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        }

        if (!Features.PostedInterrupts || vector < 16 || apic.Mode == ApicMode.Disabled || !apic.SoftwareEnabled)
        {
            // Without posted interrupts KVM sets IRR and kicks. An interrupt the LAPIC refuses
            // (illegal vector, software- or globally disabled) takes the same path, so that it is
            // refused exactly as in emulation; the PIR goes first so the LAPIC sees arrivals in order.
            SyncPir(target, state.Descriptor);
            return base.DeliverFixed(target, vector, levelTriggered, in message);
        }

        if (toSender && _send != SendPath.IpiVirtualized)
        {
            // The sender is in root mode handling its own exit: KVM sends no notification to the
            // running vCPU (kvm_vcpu_trigger_posted_interrupt) and merges the PIR before the next
            // entry (vmx_sync_pir_to_irr). TV26.
            Ledger.Event(CostEvent.PostedMergeOnEntry);
            return apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        }

        // IPIv and IOMMU posting (MSIs) are done by hardware; IOAPIC routes, emulated IPIs and
        // hypervisor injections by KVM's __vmx_deliver_posted_interrupt.
        bool byHardware = message.Source == InterruptSource.Msi ||
            (message.Source == InterruptSource.Ipi && _send == SendPath.IpiVirtualized);
        Post(target, state.Descriptor, vector, levelTriggered, byHardware);
        return true;
    }

    /// <summary>
    /// Posts <paramref name="vector"/> into <paramref name="target"/>'s descriptor (the sender
    /// protocol of virtualization-reference §2.7): PIR test-and-set (a set bit coalesces), ON
    /// test-and-set, and a notification only when ON was clear and SN is clear. A running target
    /// processes the notification without exit; a halted one is woken through the wakeup vector
    /// (KVM posted_intr.c); a preempted one (SN = 1) merges the PIR at its next entry.
    /// </summary>
    private void Post(Vcpu target, PostedInterruptDescriptor descriptor, byte vector, bool levelTriggered, bool byHardware)
    {
        if (descriptor.Request(vector, levelTriggered))
        {
            return;
        }

        // VT-d and IPIv set ON only when SN is clear; KVM's software sender sets it regardless
        // (and then notifies only a vCPU in guest mode).
        if (descriptor.SuppressNotification)
        {
            if (!byHardware)
            {
                descriptor.OutstandingNotification = true;
            }

            return;
        }

        if (descriptor.TestAndSetOutstandingNotification())
        {
            return;
        }

        switch (target.HostState)
        {
            case VcpuHostState.Running:
                // Notification IPI with NV to NDST; the target acknowledges it in non-root mode,
                // merges PIR into VIRR, updates RVI and evaluates (SDM "Posted-Interrupt Processing").
                Ledger.Event(CostEvent.PostedNotify);
                Ledger.Event(CostEvent.PostedReceive);
                MergePir(target, descriptor, costPerVector: null);
                break;
            case VcpuHostState.Halted:
                if (byHardware)
                {
                    // NV is the wakeup vector: the host's handler wakes the vCPU.
                    Ledger.Event(CostEvent.PostedNotify);
                }

                // Waking loads the descriptor and merges the PIR (OnHostStateChanged).
                Wake(target);
                break;
        }
    }

    /// <summary>
    /// Moves every PIR request into the LAPIC (VIRR, and TMR for a level-triggered request) and
    /// clears ON, charging <paramref name="costPerVector"/> for each merged vector.
    /// </summary>
    private void MergePir(Vcpu vcpu, PostedInterruptDescriptor descriptor, CostEvent? costPerVector)
    {
        LocalApic apic = vcpu.Apic;
        for (int word = 0; word < 4; word++)
        {
            ulong bits = descriptor.Pir.GetWord(word);
            while (bits != 0)
            {
                int vector = (word << 6) + System.Numerics.BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                apic.AcceptInterrupt(DeliveryMode.Fixed, (byte)vector, descriptor.LevelTriggered.Get(vector));
                if (costPerVector is { } cost)
                {
                    Ledger.Event(cost);
                }
            }
        }

        descriptor.Clear();
    }

    /// <summary>Merges a non-empty PIR before the LAPIC takes an interrupt by another path, keeping arrival order.</summary>
    private void SyncPir(Vcpu vcpu, PostedInterruptDescriptor descriptor)
    {
        if (!descriptor.Pir.IsEmpty)
        {
            MergePir(vcpu, descriptor, CostEvent.PostedMergeOnEntry);
        }
    }

    /// <inheritdoc/>
    public override void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message)
    {
        // NMI, SMI, INIT and SIPI are not posted: KVM kicks the vCPU and injects them (or, for
        // INIT/SIPI, emulates them) at the next entry.
        _vcpus[target.Index].MarkReentry();
        base.OnEventLatched(target, mode, in message);
    }

    /// <inheritdoc/>
    public override void OnTimerExpiry(Vcpu vcpu)
    {
        // The LAPIC timer is a host hrtimer: a running vCPU takes an external-interrupt exit, a
        // halted one is woken (as in emulation). The timer vector then enters IRR directly, so a
        // held PIR is merged first.
        ApicvVcpuState state = _vcpus[vcpu.Index];
        state.MarkReentry();
        if (IsAccelerated)
        {
            SyncPir(vcpu, state.Descriptor);
        }

        base.OnTimerExpiry(vcpu);
    }

    /// <inheritdoc/>
    public override void OnEventTaken(Vcpu vcpu, CpuEvent taken)
    {
        base.OnEventTaken(vcpu, taken);
        _vcpus[vcpu.Index].MarkReentry();
    }

    /// <inheritdoc/>
    public override void OnHostStateChanged(Vcpu vcpu, VcpuHostState previous)
    {
        base.OnHostStateChanged(vcpu, previous);
        if (_vcpus.Length == 0)
        {
            return;
        }

        ApicvVcpuState state = _vcpus[vcpu.Index];
        state.MarkReentry();
        LoadDescriptor(vcpu, state);
        PostedInterruptDescriptor descriptor = state.Descriptor;
        if (descriptor.Pir.IsEmpty || !IsAccelerated)
        {
            return;
        }

        switch (vcpu.HostState)
        {
            case VcpuHostState.Running:
                // vmx_vcpu_pi_load set ON for the non-empty PIR; the entry merges it (vmx_sync_pir_to_irr).
                MergePir(vcpu, descriptor, CostEvent.PostedMergeOnEntry);
                break;
            case VcpuHostState.Halted:
                // KVM does not block a vCPU with a pending posted interrupt: pi_enable_wakeup_handler
                // sends itself the wakeup vector when ON is set, and a non-empty PIR means it must.
                descriptor.OutstandingNotification = true;
                Wake(vcpu);
                break;
        }
    }

    /// <summary>
    /// Sets SN and NV for the vCPU's host state (KVM posted_intr.c): running, SN = 0 and NV =
    /// 0xF2 with NDST = its pCPU (ON set if the PIR is non-empty); preempted, SN = 1; halted,
    /// SN = 0 and NV = the wakeup vector 0xF1.
    /// </summary>
    private static void LoadDescriptor(Vcpu vcpu, ApicvVcpuState state)
    {
        PostedInterruptDescriptor descriptor = state.Descriptor;
        switch (vcpu.HostState)
        {
            case VcpuHostState.Running:
                descriptor.SuppressNotification = false;
                descriptor.NotificationVector = PostedInterruptDescriptor.PostedInterruptVector;
                descriptor.NotificationDestination = state.HostApicId;
                if (!descriptor.Pir.IsEmpty)
                {
                    descriptor.OutstandingNotification = true;
                }

                break;
            case VcpuHostState.Preempted:
                descriptor.SuppressNotification = true;
                descriptor.NotificationVector = PostedInterruptDescriptor.PostedInterruptVector;
                break;
            case VcpuHostState.Halted:
                descriptor.SuppressNotification = false;
                descriptor.NotificationVector = PostedInterruptDescriptor.WakeupVector;
                break;
        }
    }

    /// <summary>
    /// Before a save, as KVM's <c>KVM_GET_LAPIC</c> (<c>kvm_apic_get_state</c> syncs the PIR into
    /// IRR first): every vector a descriptor holds (posted to a preempted vCPU) is accepted into its
    /// LAPIC with its trigger mode, exactly as the merge at its next entry would, and ON is cleared.
    /// The guest observes nothing: it cannot see IRR before that entry, which now finds the PIR
    /// empty. A save is no guest event, so nothing is charged.
    /// </summary>
    public override SavedStateResult PrepareForSave()
    {
        VirtualMachine machine = Machine;
        for (int i = 0; i < _vcpus.Length; i++)
        {
            ApicvVcpuState state = _vcpus[i];
            if (!state.Descriptor.Pir.IsEmpty)
            {
                MergePir(machine.GetVcpu(i), state.Descriptor, costPerVector: null);
                state.MarkReentry();
            }
        }

        return base.PrepareForSave();
    }

    /// <summary>
    /// After a restore, as KVM's <c>KVM_SET_LAPIC</c> (<c>kvm_apic_set_state</c>): the PIR and ON
    /// of the replaced state are dropped (<c>vmx_apicv_pre_state_restore</c>; every pending request
    /// of the restored state is in its IRR), the inhibits are re-derived (base class), each
    /// descriptor's SN, NV and NDST are loaded for the restored host state, and the TPR threshold is
    /// reprogrammed at the next entry. RVI/SVI and the EOI-exit bitmap are read from the restored
    /// IRR, ISR and TMR; the PID-pointer table follows the initial APIC IDs, which the
    /// configuration check keeps equal.
    /// </summary>
    public override void OnStateRestored()
    {
        foreach (ApicvVcpuState state in _vcpus)
        {
            state.Descriptor.Clear();
        }

        base.OnStateRestored();
        _send = SendPath.Hypervisor;
        _accessExited = false;
        VirtualMachine machine = Machine;
        for (int i = 0; i < _vcpus.Length; i++)
        {
            ApicvVcpuState state = _vcpus[i];
            state.MarkReentry();
            LoadDescriptor(machine.GetVcpu(i), state);
        }
    }

    /// <inheritdoc/>
    protected override void OnActivationChanged(bool active)
    {
        if (_vcpus.Length == 0)
        {
            return;
        }

        VirtualMachine machine = Machine;
        for (int i = 0; i < _vcpus.Length; i++)
        {
            Vcpu vcpu = machine.GetVcpu(i);
            ApicvVcpuState state = _vcpus[i];
            state.MarkReentry();
            if (!active)
            {
                // Emulation injects from IRR: every held request moves there at once.
                SyncPir(vcpu, state.Descriptor);
            }

            // KVM_REQ_APICV_UPDATE goes to every vCPU (kvm_make_all_cpus_request): one in guest
            // mode is kicked out to reload its controls. During a restore no vCPU is in guest mode.
            if (!IsRestoring && i != CurrentVcpu && vcpu.HostState == VcpuHostState.Running && TryMarkKick(vcpu))
            {
                Ledger.Exit(ExitReason.ExternalInterrupt);
            }
        }
    }
}
