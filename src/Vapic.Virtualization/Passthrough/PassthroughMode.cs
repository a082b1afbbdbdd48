using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// ACRN-style LAPIC passthrough (<c>lapic_pt</c>, virtualization-reference §6). Each vCPU is pinned
/// to its own pCPU of a modelled host (<see cref="PassthroughHost"/>). While the guest's LAPIC is in
/// xAPIC mode it is an emulated vLAPIC and every access exits as in <see cref="EmulatedMode"/>; once
/// the guest switches to x2APIC, the pCPU's physical LAPIC is the guest's LAPIC: the x2APIC MSRs run
/// in the guest without exit, except reads of the ID (0x802) and LDR (0x80D), which are answered
/// with the virtual values, and writes to ICR (0x830), which the hypervisor validates and translates
/// into physical-mode unicasts to this VM's pCPUs only. Interrupts arriving at the pCPU (IPIs,
/// device MSIs, its own timer) reach the guest with no exit.
/// </summary>
/// <remarks>
/// <para>
/// The vCPU's <see cref="LocalApic"/> stands for the pinned pCPU's physical LAPIC, register for
/// register (passthrough is 1:1), so the guest sees exactly what emulation gives; the physical APIC
/// IDs and LDRs exist only in the host model. A per-vCPU Intel-format MSR bitmap
/// (<see cref="MsrBitmap"/>) is kept in step with the guest's mode and TSC offset and decides, on
/// every MSR access, whether it exits.
/// </para>
/// <para>
/// Deviations from ACRN, all so that guest-visible results equal emulation in every trace: a
/// logical ICR while some vCPU is still in xAPIC mode is delivered within the VM instead of
/// raising #GP (counted in <see cref="PassthroughCounters.LogicalWithXApicPeers"/>); the switch to
/// x2APIC keeps the LAPIC registers (SDM "x2APIC State Transitions") where ACRN resets its vLAPIC;
/// INIT keeps x2APIC mode and with it the passthrough (ACRN's vCPU reset goes back to xAPIC); an
/// SMI is never sent to a pCPU but emulated; lowest-priority IPIs are arbitrated within the VM and
/// sent as one fixed unicast (ACRN sends one per target). The MSR bitmap intercepts only 0x802,
/// 0x80D (read) and 0x830 (write) in 0x800-0x8FF by default; LVT thermal (0x833) is intercepted
/// with <see cref="PassthroughOptions.InterceptThermal"/>.
/// </para>
/// </remarks>
public sealed class PassthroughMode : VirtualizationMode
{
    /// <summary>The first x2APIC MSR.</summary>
    public const uint X2ApicMsrFirst = 0x800;

    /// <summary>The last MSR of the x2APIC range the MSR bitmap passes through.</summary>
    public const uint X2ApicMsrLast = 0x8FF;

    /// <summary>x2APIC ID register: reads trapped and answered with the virtual ID.</summary>
    public const uint X2ApicIdMsr = 0x802;

    /// <summary>x2APIC LDR: reads trapped and answered with the virtual LDR.</summary>
    public const uint LogicalDestinationMsr = 0x80D;

    /// <summary>x2APIC ICR: writes trapped, validated and translated.</summary>
    public const uint InterruptCommandMsr = 0x830;

    /// <summary>x2APIC LVT thermal sensor register (intercepted only with <see cref="PassthroughOptions.InterceptThermal"/>).</summary>
    public const uint LvtThermalMsr = 0x833;

    /// <summary>IA32_TSC_ADJUST.</summary>
    public const uint TscAdjustMsr = 0x3B;

    /// <summary>IA32_TSC_DEADLINE.</summary>
    public const uint TscDeadlineMsr = LocalApic.TscDeadlineMsr;

    private const uint PhysicalIcrClearedBits = InterruptCommand.ShorthandMask | InterruptCommand.LogicalDestination | InterruptCommand.DeliveryStatus;

    private PassthroughHost? _host;
    private MsrBitmap[] _bitmaps = [];
    private bool[] _passthrough = [];
    private bool[] _tscIntercepted = [];
    private ulong[] _physicalIcr = [];

    // The trapped ICR write being translated: its sender (-1: none), the low word the hypervisor
    // writes to the physical ICR, whether a target is expected, and how many were reached.
    private int _icrSender = -1;
    private uint _icrPhysicalLow;
    private bool _icrExpectsTarget;
    private int _icrTargets;

    /// <summary>Creates the mode with <paramref name="options"/> (default: a host of 2 × vCPUs, every other pCPU pinned).</summary>
    public PassthroughMode(PassthroughOptions? options = null, CostModel? costModel = null)
        : base(costModel ?? CostModel.Default, ApicvInhibitMask.None)
    {
        Options = options ?? PassthroughOptions.Default;
    }

    /// <inheritdoc/>
    public override string Name => "passthrough";

    /// <summary>The host shape and the hypervisor's interception choices.</summary>
    public PassthroughOptions Options { get; }

    /// <summary>Translations, refusals and the guards that must stay at zero.</summary>
    public PassthroughCounters Counters { get; } = new();

    /// <summary>The host model (pCPUs, physical IDs, physical IPIs), built when the mode is attached.</summary>
    public PassthroughHost Host => _host ?? throw new InvalidOperationException("the mode is not attached to a machine");

    /// <summary>Whether vCPU <paramref name="vcpu"/>'s x2APIC is passed through to its pCPU (its guest is in x2APIC mode).</summary>
    public bool IsPassthroughActive(int vcpu)
    {
        Sync(Machine.GetVcpu(vcpu));
        return _passthrough[vcpu];
    }

    /// <summary>The MSR bitmap of vCPU <paramref name="vcpu"/>, as the VMCS would point to it now.</summary>
    public MsrBitmap GetMsrBitmap(int vcpu)
    {
        Sync(Machine.GetVcpu(vcpu));
        return _bitmaps[vcpu];
    }

    /// <summary>
    /// What the physical ICR of vCPU <paramref name="vcpu"/>'s pCPU holds: the last translated
    /// message the hypervisor wrote there (physical ID in bits 63:32), or 0 if none.
    /// </summary>
    public ulong PhysicalInterruptCommand(int vcpu) => _physicalIcr[vcpu];

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The options do not fit the machine (see <see cref="PassthroughOptions.Validate"/>).</exception>
    public override void Attach(VirtualMachine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        string? error = Options.Validate(machine.VcpuCount);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(machine));
        }

        int n = machine.VcpuCount;
        _host = new PassthroughHost(n, Options);
        _bitmaps = new MsrBitmap[n];
        _passthrough = new bool[n];
        _tscIntercepted = new bool[n];
        _physicalIcr = new ulong[n];
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            _bitmaps[vcpu.Index] = new MsrBitmap();
            (_passthrough[vcpu.Index], _tscIntercepted[vcpu.Index]) = WantedState(vcpu);
            Program(vcpu.Index);
        }

        base.Attach(machine);
    }

    /// <inheritdoc/>
    public override void OnGuestEntry(Vcpu vcpu)
    {
        base.OnGuestEntry(vcpu);
        Sync(vcpu);
    }

    /// <inheritdoc/>
    protected override void ClassifyAccess(Vcpu vcpu, in GuestAccess access)
    {
        Sync(vcpu);
        if (!_passthrough[vcpu.Index])
        {
            // The emulated vLAPIC of the xAPIC boot phase (§6.1 step 1).
            AccountEmulatedAccess(vcpu, in access);
            return;
        }

        switch (access.Kind)
        {
            case GuestAccessKind.MsrRead:
                ClassifyMsrRead(vcpu, (uint)access.Address);
                break;
            case GuestAccessKind.MsrWrite:
                ClassifyMsrWrite(vcpu, (uint)access.Address, access.Value);
                break;
            case GuestAccessKind.Cr8Read:
            case GuestAccessKind.Cr8Write:
                // TPR shadow and CR8 exiting are off after the switch (§6.1): CR8 is the physical TPR.
                Ledger.Event(CostEvent.AcceleratedAccess);
                break;
            default:
                // MMIO: the xAPIC window no longer decodes in x2APIC mode, and the IOAPIC stays emulated.
                AccountEmulatedAccess(vcpu, in access);
                break;
        }
    }

    private void ClassifyMsrRead(Vcpu vcpu, uint msr)
    {
        int i = vcpu.Index;
        if (_bitmaps[i].IsReadIntercepted(msr))
        {
            Ledger.Exit(ExitReason.MsrRead);
            if (msr is X2ApicIdMsr or LogicalDestinationMsr)
            {
                // ACRN vlapic_x2apic_read: answered from the vLAPIC, whose ID and LDR are the virtual ones.
                Counters.IdentityReadsVirtualized++;
            }

            return;
        }

        // Passed through: the physical LAPIC answers. For ID and LDR that would be the pCPU's
        // physical values; for ICR, whatever the hypervisor last wrote there when translating.
        if (msr is X2ApicIdMsr or LogicalDestinationMsr)
        {
            Counters.PhysicalIdentityLeaks++;
        }
        else if (msr == InterruptCommandMsr && _physicalIcr[i] != 0 && _physicalIcr[i] != vcpu.Apic.InterruptCommandValue)
        {
            Counters.PhysicalIcrReadbacks++;
        }

        if (msr != Vcpu.MsrTsc)
        {
            Ledger.Event(CostEvent.AcceleratedAccess);
        }
    }

    private void ClassifyMsrWrite(Vcpu vcpu, uint msr, ulong value)
    {
        if (_bitmaps[vcpu.Index].IsWriteIntercepted(msr))
        {
            Ledger.Exit(ExitReason.MsrWrite);
            if (msr == InterruptCommandMsr)
            {
                BeginIcrTranslation(vcpu, value);
            }

            return;
        }

        if (msr == InterruptCommandMsr)
        {
            Counters.UntranslatedIcrWrites++;
        }
        else if (msr == TscDeadlineMsr)
        {
            // TSC offset 0: the guest arms the physical timer itself (§6.4).
            Host.ProgramTscDeadline(Host.PcpuOf(vcpu.Index), value);
        }

        Ledger.Event(CostEvent.AcceleratedAccess);
    }

    /// <summary>
    /// ACRN <c>vlapic_x2apic_pt_icr_access</c> (§6.3): validate, then let the machine resolve the
    /// destination over the VM's virtual IDs (shorthand, physical, logical, broadcast); each target
    /// it reaches is translated in <see cref="DeliverFixed"/> or <see cref="OnEventLatched"/>.
    /// </summary>
    private void BeginIcrTranslation(Vcpu sender, ulong value)
    {
        Counters.TrappedIcrWrites++;
        uint low = (uint)value;
        if ((low & InterruptCommand.ReservedBits) != 0)
        {
            // The WRMSR raises #GP (SDM "ICR Operation in x2APIC Mode"): nothing is sent.
            Counters.IcrFaults++;
            return;
        }

        var mode = (DeliveryMode)((low & InterruptCommand.DeliveryModeMask) >> 8);
        if (mode is DeliveryMode.Reserved3 or DeliveryMode.ExtInt)
        {
            // Not an IPI: the LAPIC drops it and so does the hypervisor.
            Counters.ReservedModesRefused++;
            return;
        }

        var shorthand = (DestinationShorthand)((low & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift);
        if (shorthand != DestinationShorthand.None)
        {
            // Cleared before sending: 11B once went to every pCPU of the platform (§6.3 step 4).
            Counters.ShorthandsExpanded++;
        }
        else if ((low & InterruptCommand.LogicalDestination) != 0)
        {
            Counters.LogicalResolved++;
            if (!AllVcpusInX2Apic())
            {
                Counters.LogicalWithXApicPeers++;
            }
        }

        bool initDeassert = mode == DeliveryMode.Init && (low & InterruptCommand.LevelAssert) == 0 && (low & InterruptCommand.LevelTriggered) != 0;
        _icrSender = sender.Index;
        _icrPhysicalLow = low & ~PhysicalIcrClearedBits;
        _icrExpectsTarget = mode != DeliveryMode.StartUp && !initDeassert;
        _icrTargets = 0;
    }

    private bool AllVcpusInX2Apic()
    {
        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            if (vcpu.Apic.Mode != ApicMode.X2Apic)
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    protected override void CompleteAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
        if (_icrSender >= 0)
        {
            if (result == ApicAccessResult.Ok && _icrExpectsTarget && _icrTargets == 0)
            {
                // The destination named nothing in this VM (another VM's or the host's ID, say).
                Counters.IcrWithoutTargetInVm++;
            }

            _icrSender = -1;
        }

        if (access.Kind == GuestAccessKind.MsrWrite && result == ApicAccessResult.Ok &&
            (uint)access.Address == TscDeadlineMsr && _passthrough[vcpu.Index] && _tscIntercepted[vcpu.Index])
        {
            Host.ProgramTscDeadline(Host.PcpuOf(vcpu.Index), PhysicalTscDeadline(vcpu, access.Value));
        }

        // A base MSR write (the x2APIC switch, leaving it) or a TSC write (a new offset) reprograms the bitmap.
        Sync(vcpu);
    }

    /// <summary>
    /// ACRN <c>set_tsc_deadline</c> with a TSC offset: the physical MSR gets v − offset, where a
    /// non-zero v never becomes 0 (which would disarm the timer); 0 stays 0 (§6.4, TV57).
    /// </summary>
    private static ulong PhysicalTscDeadline(ulong guestDeadline, long tscOffset)
    {
        ulong physical = guestDeadline == 0 ? 0 : guestDeadline - (ulong)tscOffset;
        return guestDeadline != 0 && physical == 0 ? 1 : physical;
    }

    /// <summary>
    /// The physical IA32_TSC_DEADLINE for guest deadline <paramref name="guestDeadline"/> of
    /// <paramref name="vcpu"/>. The host TSC counts virtual nanoseconds (1 GHz). A guest TSC at that
    /// rate differs by the offset only (ACRN's v − offset); at another rate (TSC scaling) the host
    /// deadline is the instant the guest TSC reaches v, which the vLAPIC already computed: its timer
    /// deadline. A deadline already reached (the vLAPIC fired it at the write) is programmed as 1,
    /// in the past, and one never reached within virtual time as the largest value.
    /// </summary>
    private static ulong PhysicalTscDeadline(Vcpu vcpu, ulong guestDeadline)
    {
        if (GuestTscRunsAtHostRate(vcpu) || guestDeadline == 0)
        {
            return PhysicalTscDeadline(guestDeadline, vcpu.Apic.TscOffset);
        }

        if (vcpu.Apic.TscDeadline == 0)
        {
            return 1;
        }

        long deadline = vcpu.Apic.TimerDeadline;
        return deadline == long.MaxValue ? ulong.MaxValue : Math.Max(1UL, (ulong)deadline);
    }

    // The host TSC counts virtual ns; a guest TSC at another rate needs TSC scaling.
    private static bool GuestTscRunsAtHostRate(Vcpu vcpu) => vcpu.Apic.Options.TscFrequencyHz == LocalApic.NanosecondsPerSecond;

    /// <summary>
    /// After a restore: the restored LAPICs stand for the physical LAPICs of the pinned pCPUs
    /// (the hypervisor writes them there, as it reads them on a save, which needs nothing beyond
    /// the base class: nothing is held outside them). Each MSR bitmap is reprogrammed for the
    /// restored APIC mode and TSC offset, each passed-through pCPU's TSC deadline is armed with the
    /// restored one (translated as the guest's own WRMSR would be; 0 in the xAPIC phase, where the
    /// emulated vLAPIC owns the timer), and no translated ICR is left in a physical ICR.
    /// </summary>
    public override void OnStateRestored()
    {
        base.OnStateRestored();
        _icrSender = -1;
        PassthroughHost host = Host;
        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            int i = vcpu.Index;
            Sync(vcpu);
            _physicalIcr[i] = 0;
            ulong deadline = !_passthrough[i] ? 0 :
                _tscIntercepted[i] ? PhysicalTscDeadline(vcpu, vcpu.Apic.TscDeadline) : vcpu.Apic.TscDeadline;
            host.ProgramTscDeadline(host.PcpuOf(i), deadline);
        }
    }

    /// <inheritdoc/>
    public override bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message)
    {
        Sync(target);
        bool accepted = target.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        bool translated = IsTranslating(in message);
        if (!_passthrough[target.Index])
        {
            // A vCPU still in xAPIC mode has an emulated vLAPIC: injection at entry, kick if running.
            if (translated)
            {
                _icrTargets++;
                Counters.EmulatedTargets++;
            }

            if (accepted)
            {
                NotifyEmulated(target);
            }

            return accepted;
        }

        // The message goes to the pCPU's physical LAPIC and from there to the guest IDT without
        // exit (external-interrupt exiting is off, §6.1): no kick, no wake, no injection. HLT
        // exiting is off too, so a halted vCPU sits in HLT inside the guest on its own pCPU and the
        // physical interrupt resumes it directly (no host wake-up to pay for).
        SendPhysical(target, vector, DeliveryMode.Fixed, in message, translated);
        if (accepted && target.HostState == VcpuHostState.Halted)
        {
            target.SetHostState(VcpuHostState.Running);
        }

        return accepted;
    }

    /// <inheritdoc/>
    public override void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message)
    {
        Sync(target);
        bool translated = IsTranslating(in message);
        if (!_passthrough[target.Index])
        {
            if (translated)
            {
                _icrTargets++;
                Counters.EmulatedTargets++;
            }

            NotifyEmulated(target);
            return;
        }

        switch (mode)
        {
            case DeliveryMode.Nmi:
                SendPhysical(target, message.Vector, DeliveryMode.Nmi, in message, translated);
                if (target.HostState == VcpuHostState.Halted)
                {
                    // As for a fixed vector: HLT exiting is off, so the vCPU halts inside the guest on
                    // its pCPU, and an NMI resumes a halted processor (SDM "HLT—Halt").
                    target.SetHostState(VcpuHostState.Running);
                }

                break;
            case DeliveryMode.Smi:
                // Never to a pCPU: a physical SMI would run the host's SMM handler. The hypervisor
                // emulates it for the vCPU instead.
                if (translated)
                {
                    _icrTargets++;
                }

                Counters.SmiRefused++;
                Kick(target);
                break;
            case DeliveryMode.Init:
            case DeliveryMode.StartUp:
                // Emulated within the VM (ACRN vlapic_process_init_sipi): the vCPU is reset by the
                // hypervisor, never by an INIT or SIPI on the host bus.
                if (translated)
                {
                    _icrTargets++;
                    Counters.InitSipiEmulated++;
                }

                Kick(target);
                break;
            default:
                // ExtINT comes from the emulated PIC and must be injected.
                Kick(target);
                break;
        }
    }

    private bool IsTranslating(in InterruptMessage message) =>
        _icrSender >= 0 && message.Source == InterruptSource.Ipi && message.SourceVcpu == _icrSender;

    /// <summary>Puts one physical-mode unicast for <paramref name="target"/> on the host bus, addressed by its pCPU's physical ID.</summary>
    private void SendPhysical(Vcpu target, byte vector, DeliveryMode mode, in InterruptMessage message, bool translated)
    {
        PassthroughHost host = Host;
        int destination = host.PcpuOf(target.Index);
        uint physicalId = PassthroughHost.PhysicalApicIdOf(destination);
        int source;
        PhysicalIpiOrigin origin;
        if (translated)
        {
            // §6.3 step 5, re-sent in physical mode: (physical ID << 32) | low word without shorthand.
            _icrTargets++;
            source = host.PcpuOf(_icrSender);
            origin = PhysicalIpiOrigin.GuestIcr;
            _physicalIcr[_icrSender] = ((ulong)physicalId << 32) | _icrPhysicalLow;
        }
        else if (message.Source == InterruptSource.Msi)
        {
            source = -1;
            origin = PhysicalIpiOrigin.DeviceMsi;
        }
        else if (message.Source == InterruptSource.Ipi && message.Shorthand == DestinationShorthand.Self && message.SourceVcpu == target.Index)
        {
            source = destination;
            origin = PhysicalIpiOrigin.GuestSelfIpi;
        }
        else
        {
            source = CurrentVcpu >= 0 ? host.PcpuOf(CurrentVcpu) : -1;
            origin = PhysicalIpiOrigin.Hypervisor;
        }

        host.Send(source, physicalId, vector, mode, origin);
    }

    /// <summary>
    /// Forces a passthrough vCPU out of the guest so that the hypervisor can emulate an event for it:
    /// ACRN kicks a lapic_pt pCPU with an INIT signal, which exits and is then ignored (§6.5). A
    /// halted vCPU halts inside the guest (HLT exiting is off) and is kicked the same way; a
    /// preempted one gets the event at its next entry.
    /// </summary>
    private void Kick(Vcpu target)
    {
        if (target.Index == CurrentVcpu || target.HostState == VcpuHostState.Preempted)
        {
            return;
        }

        if (TryMarkKick(target))
        {
            Ledger.Exit(ExitReason.ExternalInterrupt);
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, long>> ModeCounters =>
        [.. Counters.Rows, new("physical IPIs sent", Host.PhysicalIpiCount), new("physical IPIs blocked (outside the VM)", Host.BlockedIpis)];

    /// <inheritdoc/>
    public override void OnTimerExpiry(Vcpu vcpu)
    {
        Sync(vcpu);
        if (_passthrough[vcpu.Index])
        {
            // The LVT timer and TSC deadline are the pCPU's own: the interrupt reaches the guest
            // directly, and resumes a vCPU halted in the guest (HLT exiting is off).
            if (vcpu.HostState == VcpuHostState.Halted)
            {
                vcpu.SetHostState(VcpuHostState.Running);
            }

            return;
        }

        base.OnTimerExpiry(vcpu);
    }

    /// <inheritdoc/>
    public override void OnEventTaken(Vcpu vcpu, CpuEvent taken)
    {
        if (_passthrough[vcpu.Index] && taken.Kind is CpuEventKind.Fixed or CpuEventKind.Nmi)
        {
            // Taken through the guest IDT from the physical LAPIC, with nothing to inject.
            Ledger.Delivered();
            Ledger.Event(CostEvent.VirtualInterruptDelivery);
            return;
        }

        base.OnEventTaken(vcpu, taken);
    }

    /// <summary>Whether <paramref name="vcpu"/> should be passed through and whether its TSC MSRs must be intercepted.</summary>
    private static (bool Passthrough, bool InterceptTsc) WantedState(Vcpu vcpu)
    {
        bool x2Apic = vcpu.Apic.Mode == ApicMode.X2Apic;

        // Before the switch the emulated vLAPIC owns the TSC deadline; after it, the MSRs are
        // intercepted exactly when the guest TSC is not the host's: a TSC offset other than 0 (ACRN
        // set_tsc_msr_interception), or a guest TSC rate other than the host's (TSC scaling).
        return (x2Apic, !x2Apic || vcpu.Apic.TscOffset != 0 || !GuestTscRunsAtHostRate(vcpu));
    }

    /// <summary>Brings the bitmap of <paramref name="vcpu"/> in step with its guest's mode and TSC offset.</summary>
    private void Sync(Vcpu vcpu)
    {
        (bool passthrough, bool interceptTsc) = WantedState(vcpu);
        int i = vcpu.Index;
        if (passthrough == _passthrough[i] && interceptTsc == _tscIntercepted[i])
        {
            return;
        }

        _passthrough[i] = passthrough;
        _tscIntercepted[i] = interceptTsc;
        Program(i);
        Counters.BitmapUpdates++;
    }

    /// <summary>
    /// Writes the bitmap of vCPU <paramref name="i"/>: everything intercepted in the xAPIC phase;
    /// after the switch ACRN <c>update_msr_bitmap_x2apic_passthru</c> (§6.2). Reads of IA32_TSC run
    /// in the guest in both phases.
    /// </summary>
    private void Program(int i)
    {
        MsrBitmap bitmap = _bitmaps[i];
        bitmap.InterceptAll();
        bitmap.SetIntercept(Vcpu.MsrTsc, read: true, write: false, intercept: false);
        if (!_passthrough[i])
        {
            return;
        }

        bitmap.SetIntercept(X2ApicMsrFirst, X2ApicMsrLast, read: true, write: true, intercept: false);
        bitmap.SetIntercept(X2ApicIdMsr, read: true, write: false, intercept: true);
        bitmap.SetIntercept(LogicalDestinationMsr, read: true, write: false, intercept: true);
        bitmap.SetIntercept(InterruptCommandMsr, read: Options.InterceptIcrRead, write: true, intercept: true);
        if (Options.InterceptThermal)
        {
            bitmap.SetIntercept(LvtThermalMsr, read: true, write: true, intercept: true);
        }

        if (!_tscIntercepted[i])
        {
            bitmap.SetIntercept(TscDeadlineMsr, read: true, write: true, intercept: false);
            bitmap.SetIntercept(TscAdjustMsr, read: true, write: true, intercept: false);
        }
    }
}
