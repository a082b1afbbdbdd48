using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.SecureAvic;

/// <summary>Which kernel the Secure AVIC guest runs.</summary>
public enum SecureAvicGuestKernel : byte
{
    /// <summary>A kernel with the Secure AVIC driver (Linux <c>x2apic_savic.c</c>): it sets up, allows and tears down.</summary>
    SecureAvicDriver,

    /// <summary>A kernel that knows nothing of Secure AVIC (a kexec target): it programs its APIC natively and allows nothing.</summary>
    Unaware,
}

/// <summary>
/// AMD Secure AVIC for SEV-SNP guests (virtualization-reference §7), modelled from both sides: the
/// guest's Secure AVIC driver, which owns a backing page per vCPU and decides in ALLOWED_IRR which
/// vectors the hypervisor may inject, and the untrusted hypervisor, whose injections (device
/// interrupts, its emulated timer and other LVTs, and anything it tries on its own through
/// <see cref="VirtualizationMode.InjectFromHypervisor"/>) go through REQUESTED_IRR and reach the
/// guest only where ALLOWED_IRR allows; its NMIs (device, LVT, its own) need ALLOWEDNMI.
/// </summary>
/// <remarks>
/// <para>
/// The machine's <see cref="LocalApic"/> stays the architectural state the guest sees (the
/// registers of the backing page); the mode adds ALLOWED_IRR, the NMI request, the control MSR and
/// the hypervisor's record of the registered page, and accounts every access: TPR, edge EOI,
/// SELF_IPI and self-shorthand ICR writes are accelerated; every other x2APIC access raises #VC,
/// which the driver handles from the page or forwards with an MSR-protocol VMGEXIT
/// (<see cref="ExitReason.Vmgexit"/>) — the timer registers, IPIs to other vCPUs (after writing the
/// targets' IRR) and EOIs of level vectors.
/// </para>
/// <para>
/// Secure AVIC is x2APIC only and the driver sends physical-destination IPIs only: a guest that
/// uses the xAPIC MMIO page, touches its LAPIC before entering x2APIC, or sends a logical IPI
/// (refused and counted) makes <see cref="InapplicableReason"/> non-null; so does the first LVT
/// interrupt or device NMI the hardware refuses (the guest then sees less than emulation shows, as
/// a guest with the Linux driver never does). The hypervisor cannot
/// turn Secure AVIC off (it is the guest's), so no inhibit is honored.
/// </para>
/// </remarks>
public sealed partial class SecureAvicMode : VirtualizationMode
{
    /// <summary>Where the model's guest allocates its backing pages: vCPU i's page is at this GPA + i × 4 KiB.</summary>
    public const ulong DefaultBackingPageBase = 0x1_0000_0000;

    private SecureAvicVcpu[] _vcpus = [];
    private ApicEvents[] _pendingBeforeAccess = [];
    private string? _inapplicable;
    private bool _suppressIpi;
    private bool _hypervisorNmiChecked;
    private SecureAvicGuestKernel _kernel = SecureAvicGuestKernel.SecureAvicDriver;

    /// <summary>Creates the mode; the guest runs a kernel with the Secure AVIC driver.</summary>
    public SecureAvicMode(CostModel? costModel = null)
        : base(costModel ?? CostModel.Default, ApicvInhibitMask.None)
    {
    }

    /// <inheritdoc/>
    public override string Name => "savic";

    /// <summary>The driver's work, its #VC exceptions and the hypervisor's injection attempts.</summary>
    public SecureAvicCounters Counters { get; } = new();

    /// <summary>The kernel the guest runs now.</summary>
    public SecureAvicGuestKernel Kernel => _kernel;

    /// <inheritdoc/>
    public override string? InapplicableReason => _inapplicable;

    /// <summary>The Secure AVIC state of vCPU <paramref name="index"/>, with ALLOWED_IRR brought up to date with what the guest programmed.</summary>
    public SecureAvicVcpu GetVcpu(int index)
    {
        SyncDriverSources();
        return _vcpus[index];
    }

    /// <inheritdoc/>
    public override void Attach(VirtualMachine machine)
    {
        int n = machine.VcpuCount;
        var states = new SecureAvicVcpu[n];
        for (int i = 0; i < n; i++)
        {
            var page = new SecureAvicBackingPage(machine.GetVcpu(i).Apic, DefaultBackingPageBase + ((ulong)i * SecureAvicBackingPage.Size));
            states[i] = new SecureAvicVcpu(i, page);
        }

        _vcpus = states;
        _pendingBeforeAccess = new ApicEvents[n];
        base.Attach(machine);
        AttachDriverSources(machine);
    }

    /// <inheritdoc/>
    public override void OnGuestEntry(Vcpu vcpu)
    {
        base.OnGuestEntry(vcpu);
        SecureAvicVcpu state = _vcpus[vcpu.Index];
        if (vcpu.Apic.Mode == ApicMode.X2Apic)
        {
            state.HasEnteredX2Apic = true;
            SetUpIfDue(vcpu, state);
        }
    }

    /// <inheritdoc/>
    protected override void ClassifyAccess(Vcpu vcpu, in GuestAccess access)
    {
        SecureAvicVcpu state = _vcpus[vcpu.Index];
        _suppressIpi = false;
        if (_inapplicable is null)
        {
            CheckApplicability(vcpu, state, in access);
        }

        switch (access.Kind)
        {
            case GuestAccessKind.MsrRead:
            case GuestAccessKind.MsrWrite:
            {
                uint msr = (uint)access.Address;
                if (state.Enabled && vcpu.Apic.Mode == ApicMode.X2Apic && SecureAvicRegisterAccess.IsX2ApicMsr(msr))
                {
                    if (_kernel == SecureAvicGuestKernel.SecureAvicDriver)
                    {
                        AccountDriverAccess(vcpu, msr, access.IsWrite, access.Value);
                    }
                    else
                    {
                        AccountUnawareAccess(msr, access.IsWrite, access.Value);
                    }
                }
                else if (access.IsWrite || msr != Vcpu.MsrTsc)
                {
                    // Every other intercepted MSR of an SEV-SNP guest (IA32_APIC_BASE, the TSC
                    // deadline, the x2APIC MSRs while Secure AVIC is off) raises #VC, and the #VC
                    // handler asks the hypervisor through the GHCB MSR protocol. RDTSC-style TSC
                    // reads are not intercepted.
                    MsrProtocolVmgexit();
                }

                break;
            }

            case GuestAccessKind.Cr8Read:
            case GuestAccessKind.Cr8Write:
                if (state.Enabled)
                {
                    // CR8 is the backing page's TPR[7:4], which Secure AVIC accelerates like a TPR
                    // write (UNVERIFIED: AVIC maps CR8 onto the page TPR; assumed kept by Secure AVIC).
                    Accelerated();
                }
                else
                {
                    AccountEmulatedAccess(vcpu, in access);
                }

                break;
            default:
                // MMIO: the IOAPIC window and unbacked memory are emulated by the hypervisor.
                AccountEmulatedAccess(vcpu, in access);
                break;
        }
    }

    private void AccountDriverAccess(Vcpu vcpu, uint msr, bool write, ulong value)
    {
        switch (SecureAvicRegisterAccess.Classify(vcpu.Apic, msr, write, value))
        {
            case SecureAvicAccessKind.Accelerated:
                Accelerated();
                break;
            case SecureAvicAccessKind.BackingPage:
                Counters.VcExceptions++;
                break;
            case SecureAvicAccessKind.Forwarded:
                // TV62: the hypervisor emulates the timer; its registers are read and written
                // through the MSR protocol (savic_ghcb_msr_read/write).
                Counters.VcExceptions++;
                MsrProtocolVmgexit();
                break;
            case SecureAvicAccessKind.LevelEoi:
                // TV63: savic_eoi clears ISR in the page itself and forwards the EOI, so that the
                // hypervisor can complete it at the IOAPIC; the driver takes no #VC for it.
                MsrProtocolVmgexit();
                break;
            case SecureAvicAccessKind.Ipi:
                // TV61: the vector goes into each target's page IRR (DeliverFixed below), then one
                // MSR-protocol write of the whole ICR lets the hypervisor kick the targets.
                Counters.VcExceptions++;
                Counters.IpisSent++;
                MsrProtocolVmgexit();
                break;
            case SecureAvicAccessKind.RefusedLogicalIpi:
                Counters.VcExceptions++;
                Counters.LogicalIpisRefused++;
                if (_inapplicable is null)
                {
                    SetInapplicable($"physical destinations only: vCPU {vcpu.Index} sent a logical-destination IPI, which the Secure AVIC driver refuses");
                }
                SuppressIpi();
                break;
        }
    }

    /// <summary>
    /// A kernel without the driver on a vCPU whose Secure AVIC is still enabled (kexec without
    /// teardown): the accelerated accesses work, every other one raises a #VC the kernel cannot
    /// handle (an SEV-SNP guest terminates on it); an ICR write that faults sends nothing.
    /// </summary>
    private void AccountUnawareAccess(uint msr, bool write, ulong value)
    {
        if (SecureAvicRegisterAccess.IsAcceleratedByHardware(msr, write, value))
        {
            Accelerated();
            return;
        }

        Counters.UnhandledVcExceptions++;
        if (write && SecureAvicRegisterAccess.VcErrorCode(msr, write) == SecureAvicControl.VcIncompleteIpi)
        {
            SuppressIpi();
        }
    }

    private void Accelerated()
    {
        Ledger.Event(CostEvent.AcceleratedAccess);
        Counters.AcceleratedAccesses++;
    }

    private void MsrProtocolVmgexit()
    {
        Ledger.Exit(ExitReason.Vmgexit);
        Counters.MsrProtocolVmgexits++;
    }

    /// <summary>The current ICR write sends nothing: remember what every vCPU had pending, so that what it latches can be withdrawn.</summary>
    private void SuppressIpi()
    {
        _suppressIpi = true;
        ReadOnlySpan<Vcpu> vcpus = Machine.Vcpus;
        for (int i = 0; i < vcpus.Length; i++)
        {
            _pendingBeforeAccess[i] = vcpus[i].Apic.PendingEvents;
        }
    }

    private void CheckApplicability(Vcpu vcpu, SecureAvicVcpu state, in GuestAccess access)
    {
        switch (access.Kind)
        {
            case GuestAccessKind.MmioRead:
            case GuestAccessKind.MmioWrite:
                if (IsApicWindow(vcpu, access.Address))
                {
                    SetInapplicable($"x2APIC only: vCPU {vcpu.Index} used the xAPIC MMIO page (0x{access.Address:x})");
                }

                break;
            case GuestAccessKind.MsrRead:
            case GuestAccessKind.MsrWrite:
            {
                uint msr = (uint)access.Address;
                if ((SecureAvicRegisterAccess.IsX2ApicMsr(msr) || msr == LocalApic.TscDeadlineMsr) && !state.HasEnteredX2Apic)
                {
                    SetInapplicable($"x2APIC only: vCPU {vcpu.Index} accessed its LAPIC (MSR 0x{msr:x}) before entering x2APIC mode");
                }

                break;
            }

            default:
                if (!state.HasEnteredX2Apic)
                {
                    SetInapplicable($"x2APIC only: vCPU {vcpu.Index} accessed its LAPIC (CR8) before entering x2APIC mode");
                }

                break;
        }
    }

    private void SetInapplicable(string reason) => _inapplicable ??= reason;

    /// <inheritdoc/>
    protected override void CompleteAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
        _suppressIpi = false;
        if (access.Kind == GuestAccessKind.MmioWrite && Machine.IoApic.Decodes(access.Address))
        {
            // The driver updates ALLOWED_IRR as it programs a redirection entry (vector.c calls
            // apic->update_vector when it assigns the vector).
            SyncDriverSources();
            return;
        }

        if (access.Kind != GuestAccessKind.MsrWrite || result != ApicAccessResult.Ok)
        {
            return;
        }

        SecureAvicVcpu state = _vcpus[vcpu.Index];
        if (access.Address == ApicBaseMsr.Msr)
        {
            if (vcpu.Apic.Mode == ApicMode.X2Apic)
            {
                // Entering x2APIC: the driver probes and runs its setup (savic_probe, savic_setup).
                state.HasEnteredX2Apic = true;
                SetUpIfDue(vcpu, state);
            }
            else if (state.Enabled && _kernel == SecureAvicGuestKernel.SecureAvicDriver)
            {
                // Leaving x2APIC goes through disable_local_APIC, which calls apic->teardown.
                TearDown(state);
            }
        }
        else if (access.Address == 0x832 && _kernel == SecureAvicGuestKernel.SecureAvicDriver)
        {
            UpdateTimerAllowance(vcpu, state);
        }
    }

    /// <inheritdoc/>
    public override bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message)
    {
        if (_suppressIpi && message.Source == InterruptSource.Ipi)
        {
            // A refused logical IPI, or the ICR write of a kernel that cannot handle its #VC.
            return false;
        }

        SecureAvicVcpu state = _vcpus[target.Index];
        switch (message.Source)
        {
            case InterruptSource.Ipi:
                if (!state.Enabled)
                {
                    return base.DeliverFixed(target, vector, levelTriggered, in message);
                }

                if (SenderWritesPages(message.SourceVcpu))
                {
                    // The sender's driver set the vector in the target's page IRR; hardware
                    // evaluates it there (self) or after the hypervisor's kick.
                    return AcceptIntoPage(target, vector, levelTriggered);
                }

                // A sender without Secure AVIC asks the hypervisor, which can only request it.
                return Request(state, target, vector, levelTriggered, RequestKind.Hypervisor);
            case InterruptSource.IoApic:
                SyncDriverSources();
                AllowDeliveredIoApicVector(target.Index, vector);
                return state.Enabled
                    ? Request(state, target, vector, levelTriggered, RequestKind.Device)
                    : base.DeliverFixed(target, vector, levelTriggered, in message);
            case InterruptSource.Msi:
                AllowMsiVector(target.Index, vector);
                return state.Enabled
                    ? Request(state, target, vector, levelTriggered, RequestKind.Device)
                    : base.DeliverFixed(target, vector, levelTriggered, in message);
            default:
                return state.Enabled
                    ? Request(state, target, vector, levelTriggered, RequestKind.Hypervisor)
                    : base.DeliverFixed(target, vector, levelTriggered, in message);
        }
    }

    private enum RequestKind : byte
    {
        Device,
        Hypervisor,
    }

    /// <summary>
    /// The hypervisor sets <paramref name="vector"/> in the target's REQUESTED_IRR (VMCB); the
    /// hardware merges IRR |= REQUESTED_IRR &amp; ALLOWED_IRR at the target's next evaluation and a
    /// disallowed request is dropped (§7.4, TV58; UNVERIFIED timing and fate, adopted). The model
    /// merges at once: the target observes nothing before its next entry either way.
    /// </summary>
    private bool Request(SecureAvicVcpu state, Vcpu target, byte vector, bool levelTriggered, RequestKind kind)
    {
        bool allowed = state.Page.IsAllowed(vector);
        if (kind == RequestKind.Device)
        {
            Counters.DeviceInterrupts++;
            if (!allowed)
            {
                Counters.DeviceInterruptsBlocked++;
            }
        }
        else
        {
            Counters.HypervisorInjections++;
            if (!allowed)
            {
                Counters.HypervisorInjectionsBlocked++;
            }
        }

        return allowed && AcceptIntoPage(target, vector, levelTriggered);
    }

    private bool AcceptIntoPage(Vcpu target, byte vector, bool levelTriggered)
    {
        bool accepted = target.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        if (accepted)
        {
            NotifyBackingPage(target);
        }

        return accepted;
    }

    /// <summary>Whether an IPI from vCPU <paramref name="sender"/> is sent by its Secure AVIC driver writing pages.</summary>
    private bool SenderWritesPages(int sender) =>
        _kernel == SecureAvicGuestKernel.SecureAvicDriver && (uint)sender < (uint)_vcpus.Length && _vcpus[sender].Enabled;

    /// <summary>
    /// The hypervisor makes a target re-evaluate its page: a doorbell to a running target (as AVIC
    /// does), a wake-up for a blocked one; a preempted one evaluates at its next VMRUN. The vCPU
    /// whose own access set the bit (self IPI) evaluates it without help.
    /// </summary>
    private void NotifyBackingPage(Vcpu target)
    {
        if (target.Index == CurrentVcpu)
        {
            return;
        }

        switch (target.HostState)
        {
            case VcpuHostState.Running:
                if (!IsKickPending(target))
                {
                    Ledger.Event(CostEvent.AvicDoorbell);
                }

                break;
            case VcpuHostState.Halted:
                Wake(target);
                break;
        }
    }

    /// <inheritdoc/>
    public override void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message)
    {
        if (_suppressIpi && message.Source == InterruptSource.Ipi)
        {
            // The IPI was never sent: withdraw what it latched (and only that).
            ApicEvents latched = target.Apic.PendingEvents & ~_pendingBeforeAccess[target.Index];
            target.Apic.ClearPendingEvents(latched);
            return;
        }

        SecureAvicVcpu state = _vcpus[target.Index];
        if (mode == DeliveryMode.Nmi && message.Source == InterruptSource.Ipi && state.Enabled && SenderWritesPages(message.SourceVcpu))
        {
            // The sender's driver sets the NMI request (0x278) in the target's page (send_ipi_dest).
            state.Page.NmiRequest = true;
            NotifyBackingPage(target);
            return;
        }

        base.OnEventLatched(target, mode, in message);
    }

    /// <summary>
    /// The hypervisor emulates every LVT of a Secure AVIC guest (the driver forwards the timer
    /// registers, and since v2 the other LVTs too, "for device emulation and NMIs"), so what
    /// an LVT raises reaches the guest the way any hypervisor injection does (§7.4, §7.5): a fixed
    /// vector through REQUESTED_IRR, merged only where ALLOWED_IRR allows it, and an NMI as a
    /// virtual NMI, taken only with ALLOWEDNMI. A refused one is dropped: it never reaches IRR or
    /// the pending events, while the LVT's own state (the timer's re-arm) goes on. A vCPU without
    /// Secure AVIC enabled is a plain SEV-SNP guest whose interrupts the hypervisor injects freely.
    /// </summary>
    /// <remarks>
    /// The driver allows its timer vector when it programs the timer (Linux <c>setup_APIC_timer</c>:
    /// <c>apic_update_vector(cpu, LOCAL_TIMER_VECTOR, true)</c>), so a guest with the driver gets
    /// every timer interrupt; what it did not allow (a kernel without the driver after kexec, a
    /// vector the guest withdrew from its page) is refused here. SMI, INIT and ExtINT are not
    /// filtered (AMD's host series: Secure AVIC cannot inject them at all; left as emulation).
    /// </remarks>
    public override bool AllowLocalInterrupt(Vcpu vcpu, LvtEntry source, DeliveryMode mode, byte vector)
    {
        SecureAvicVcpu state = _vcpus[vcpu.Index];
        if (!state.Enabled)
        {
            return true;
        }

        bool allowed;
        switch (mode)
        {
            case DeliveryMode.Fixed:
                allowed = state.Page.IsAllowed(vector);
                break;
            case DeliveryMode.Nmi:
                allowed = state.NmiAllowed;
                break;
            default:
                return true;
        }

        if (source == LvtEntry.Timer)
        {
            Counters.TimerInjections++;
        }
        else
        {
            Counters.LvtInterrupts++;
        }

        if (allowed)
        {
            return true;
        }

        if (source == LvtEntry.Timer)
        {
            Counters.TimerInterruptsBlocked++;
        }
        else
        {
            Counters.LvtInterruptsBlocked++;
        }

        if (_inapplicable is null)
        {
            // The guest no longer sees what emulation shows (nor what the Linux driver, which allows
            // its timer vector and sets ALLOWEDNMI, would have let through): a replay stops comparing.
            SetInapplicable(mode == DeliveryMode.Nmi
                ? $"vCPU {vcpu.Index}'s LVT {source} raised an NMI while ALLOWEDNMI is clear: the hypervisor's NMI was dropped"
                : $"vCPU {vcpu.Index}'s LVT {source} raised vector 0x{vector:x2}, which its ALLOWED_IRR does not hold (the Secure AVIC driver allows device vectors and its timer's): the interrupt was dropped");
        }

        return false;
    }

    /// <summary>
    /// A routed NMI for a vCPU with Secure AVIC enabled is either the guest's own or the
    /// hypervisor's. The guest's own NMI IPI is the NMI request its driver sets in the target's page
    /// (Linux <c>send_ipi_dest</c>; AMD's host series: "For NMIs, update NMI_REQUEST in target
    /// vCPUs' guest backing page"), which hardware honors whatever ALLOWEDNMI says, and a self NMI is
    /// an accelerated ICR write. Every other NMI (IOAPIC or MSI delivery mode NMI, an external
    /// source, an IPI the hypervisor sends for a vCPU without Secure AVIC) can only be injected as a
    /// virtual NMI, which needs ALLOWEDNMI in the target's control MSR (§7.5; Linux "Allow NMI to be
    /// injected from hypervisor for Secure AVIC"; host series: "NMI injection requires ALLOWED_NMI
    /// to be set ... by the guest"). Other delivery modes are not filtered.
    /// </summary>
    public override bool AllowEvent(Vcpu target, DeliveryMode mode, in InterruptMessage message)
    {
        if (mode != DeliveryMode.Nmi || _hypervisorNmiChecked)
        {
            return true;
        }

        SecureAvicVcpu state = _vcpus[target.Index];
        if (!state.Enabled || (message.Source == InterruptSource.Ipi && (_suppressIpi || SenderWritesPages(message.SourceVcpu))))
        {
            // A suppressed IPI is withdrawn in OnEventLatched, as the fixed and NMI IPIs it carries.
            return true;
        }

        Counters.DeviceNmis++;
        if (state.NmiAllowed)
        {
            return true;
        }

        Counters.DeviceNmisBlocked++;
        if (_inapplicable is null)
        {
            SetInapplicable($"vCPU {target.Index} was sent an NMI ({message.Source}) while ALLOWEDNMI is clear: the hypervisor's NMI was dropped");
        }

        return false;
    }

    /// <inheritdoc/>
    public override void OnEventTaken(Vcpu vcpu, CpuEvent taken)
    {
        base.OnEventTaken(vcpu, taken);
        if (taken.Kind == CpuEventKind.Nmi)
        {
            _vcpus[vcpu.Index].Page.NmiRequest = false;
        }
    }

    /// <inheritdoc/>
    protected override bool AcceleratesFixedDelivery(Vcpu vcpu) => _vcpus[vcpu.Index].Enabled;

    /// <inheritdoc/>
    public override void InjectFromHypervisor(Vcpu target, byte vector)
    {
        // The driver's allowances follow what the guest programmed up to now.
        SyncDriverSources();
        base.InjectFromHypervisor(target, vector);
    }

    /// <inheritdoc/>
    public override void InjectNmiFromHypervisor(Vcpu target)
    {
        SecureAvicVcpu state = _vcpus[target.Index];
        if (state.Enabled)
        {
            Counters.HypervisorNmis++;
            if (!state.NmiAllowed)
            {
                // Control MSR bit 1 (ALLOWEDNMI) clear: the hardware refuses the virtual NMI (§7.5).
                Counters.HypervisorNmisBlocked++;
                return;
            }
        }

        // Checked and counted here: AllowEvent lets the delivery through without counting it twice.
        _hypervisorNmiChecked = true;
        try
        {
            base.InjectNmiFromHypervisor(target);
        }
        finally
        {
            _hypervisorNmiChecked = false;
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, long>> ModeCounters => Counters.Rows;
}
