using System.Numerics;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Avic;

/// <summary>
/// AMD AVIC with x2AVIC as KVM drives it (virtualization-reference §3 and §4). The LAPIC register
/// state is the backing page; the mode adds the VM's physical and logical APIC ID tables and
/// accounts what the hardware does with each access: most backing-page reads, TPR, edge EOI and
/// fixed edge IPIs to running targets complete without exit (IRR set in the target's page plus a
/// doorbell), everything else takes AVIC_NOACCEL or AVIC_INCOMPLETE_IPI. AVIC has no
/// posted-interrupt descriptor: every interrupt reaches the backing-page IRR at once, so nothing
/// is ever held back and turning acceleration off moves nothing.
/// </summary>
/// <remarks>
/// <para>
/// Inhibits are VM-wide (<see cref="VirtualizationMode.Inhibits"/>) except NESTED, which is
/// per-vCPU (virtualization-reference §4.2, §5.3; TV44): while a vCPU runs L2 KVM
/// (<c>avic_vcpu_get_apicv_inhibit_reasons</c> returns NESTED for <c>is_guest_mode</c>) turns AVIC
/// off for that vCPU alone (<c>avic_refresh_apicv_exec_ctrl</c> → <c>avic_vcpu_put</c>): its
/// physical-table entry stays valid with IsRunning clear, so a peer's IPI to it takes
/// AVIC_INCOMPLETE_IPI with TARGET_NOT_RUNNING, and everything addressed to it (IRR set, kick or
/// wake-up, injection) is handled as in emulation. Back in L1 its AVIC is active again. The
/// nested layer reports the transitions through <see cref="OnGuestModeChanged"/>.
/// </para>
/// <para>
/// Not modelled: the IRQWIN, PIT_REINJ and SEV reasons, which only callers can set through
/// <see cref="VirtualizationMode.SetInhibit"/> (VM-wide); the IOMMU GA log for device interrupts to
/// a non-running vCPU (modelled as KVM's software wake-up).
/// </para>
/// </remarks>
public sealed class AvicMode : VirtualizationMode
{
    private const uint X2ApicMsrBase = 0x800;
    private const uint X2ApicSpuriousVectorMsr = 0x80F;

    private readonly AvicPhysicalIdTable _physical;
    private readonly AvicLogicalIdTable _logical = new();
    private readonly bool[] _logicalSlotUsed = new bool[64];
    private readonly long[] _incompleteIpis = new long[5];
    private bool[] _inGuestMode = [];
    private long _nestedInhibitsSet;
    private bool _attached;

    /// <summary>Creates the mode with <paramref name="features"/> (default: x2AVIC, 512-entry table, IsRunning exposed).</summary>
    /// <exception cref="ArgumentException">The features are inconsistent (see <see cref="AvicFeatures.Validate"/>).</exception>
    public AvicMode(AvicFeatures? features = null, CostModel? costModel = null)
        : base(costModel ?? CostModel.Default, ApicvInhibitMask.Svm)
    {
        Features = features ?? AvicFeatures.Default;
        string? error = Features.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(features));
        }

        _physical = new AvicPhysicalIdTable(Features.MaxPhysicalIdIndex);
    }

    /// <inheritdoc/>
    public override string Name => "avic";

    /// <summary>The hardware features and KVM settings this mode models.</summary>
    public AvicFeatures Features { get; }

    /// <summary>The physical APIC ID table.</summary>
    public AvicPhysicalIdTable PhysicalIdTable => _physical;

    /// <summary>The logical APIC ID table (xAVIC).</summary>
    public AvicLogicalIdTable LogicalIdTable => _logical;

    /// <summary>The exit information of the last AVIC_INCOMPLETE_IPI, or null.</summary>
    public AvicIncompleteIpiInfo? LastIncompleteIpi { get; private set; }

    /// <summary>The exit information of the last AVIC_NOACCEL, or null.</summary>
    public AvicNoAccelInfo? LastNoAccel { get; private set; }

    /// <summary>AVIC_NOACCEL exits that were trap-like.</summary>
    public long NoAccelTraps { get; private set; }

    /// <summary>AVIC_NOACCEL exits that were fault-like.</summary>
    public long NoAccelFaults { get; private set; }

    /// <summary>AVIC_INCOMPLETE_IPI exits with <paramref name="cause"/>.</summary>
    public long IncompleteIpis(AvicIncompleteIpiCause cause) => _incompleteIpis[(int)cause];

    /// <summary>How many times a vCPU entered L2 and so had the per-vCPU NESTED inhibit set.</summary>
    public long NestedInhibitsSet => _nestedInhibitsSet;

    /// <summary>
    /// Whether AVIC is active for <paramref name="vcpu"/>: no honored VM-wide inhibit and none of
    /// its own (KVM <c>kvm_vcpu_apicv_active</c>: the VM's and the vCPU's reasons OR-ed).
    /// </summary>
    public bool IsAcceleratedFor(Vcpu vcpu) => IsAccelerated && !IsNestedInhibited(vcpu);

    /// <inheritdoc/>
    public override ApicvInhibitMask GetVcpuInhibits(Vcpu vcpu) =>
        IsNestedInhibited(vcpu) ? ApicvInhibitMask.Nested : ApicvInhibitMask.None;

    /// <inheritdoc/>
    public override IReadOnlyList<KeyValuePair<string, long>> ModeCounters =>
    [
        new("NESTED inhibit set (per-vCPU, L2 entries)", _nestedInhibitsSet),
        new("vCPUs NESTED-inhibited at the end", CountNestedInhibited()),
        new("VM-wide inhibit toggles", Inhibits.Toggles),
        new("incomplete IPI: invalid int type", IncompleteIpis(AvicIncompleteIpiCause.InvalidIntType)),
        new("incomplete IPI: target not running", IncompleteIpis(AvicIncompleteIpiCause.TargetNotRunning)),
        new("incomplete IPI: invalid target", IncompleteIpis(AvicIncompleteIpiCause.InvalidTarget)),
        new("incomplete IPI: invalid vector", IncompleteIpis(AvicIncompleteIpiCause.InvalidIpiVector)),
    ];

    /// <summary>
    /// <paramref name="vcpu"/> entered L2 or returned to L1. SVM honors NESTED
    /// (<see cref="ApicvInhibitMask.Svm"/>) as a per-vCPU reason: KVM requests an APICv update when
    /// the vCPU enters guest mode (<c>enter_svm_guest_mode</c>) and when it leaves it
    /// (<c>nested_svm_vmexit</c>), and the update puts or loads the vCPU's AVIC state. Only its own
    /// IsRunning bit changes; the VM-wide set and every other vCPU are untouched. AVIC holds
    /// nothing outside the backing page, so nothing moves: an IRR bit set while the vCPU ran L2
    /// is evaluated by the hardware at its next VMRUN in L1.
    /// </summary>
    public override void OnGuestModeChanged(Vcpu vcpu, bool inL2)
    {
        if ((Inhibits.VendorMask & ApicvInhibitMask.Nested) == 0 || _inGuestMode[vcpu.Index] == inL2)
        {
            return;
        }

        _inGuestMode[vcpu.Index] = inL2;
        if (inL2)
        {
            _nestedInhibitsSet++;
        }

        _physical.SetRunning(vcpu.Index, IsRunningFor(vcpu));
    }

    private bool IsNestedInhibited(Vcpu vcpu) => (uint)vcpu.Index < (uint)_inGuestMode.Length && _inGuestMode[vcpu.Index];

    private long CountNestedInhibited()
    {
        long count = 0;
        foreach (bool inL2 in _inGuestMode)
        {
            count += inL2 ? 1 : 0;
        }

        return count;
    }

    /// <summary>
    /// Whether <paramref name="vcpu"/>'s IsRunning bit is set: the host runs it, its AVIC is active
    /// (KVM puts the AVIC state when it deactivates, VM-wide or for this vCPU) and <c>enable_ipiv</c>.
    /// </summary>
    private bool IsRunningFor(Vcpu vcpu) =>
        Features.ExposeIsRunning && vcpu.HostState == VcpuHostState.Running && IsAcceleratedFor(vcpu);

    /// <summary>Sets every IsRunning bit from <see cref="IsRunningFor"/>.</summary>
    private void RefreshIsRunning()
    {
        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            _physical.SetRunning(vcpu.Index, IsRunningFor(vcpu));
        }
    }

    /// <inheritdoc/>
    public override void Attach(VirtualMachine machine)
    {
        _physical.Attach(machine.VcpuCount);
        _inGuestMode = new bool[machine.VcpuCount];
        _attached = true;
        base.Attach(machine);

        // KVM refuses AVIC for the whole VM when a vCPU's ID is beyond what the physical table can
        // index (APICV_INHIBIT_REASON_PHYSICAL_ID_TOO_BIG, set at vCPU creation, TV39).
        bool tooBig = false;
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            tooBig |= vcpu.Apic.Options.InitialId > (uint)Features.MaxPhysicalIdIndex;
        }

        if (tooBig)
        {
            Inhibits.Update(ApicvInhibit.PhysicalIdTooBig, true);
        }
    }

    /// <inheritdoc/>
    protected override void ClassifyAccess(Vcpu vcpu, in GuestAccess access)
    {
        if (!IsAcceleratedFor(vcpu))
        {
            AccountEmulatedAccess(vcpu, in access);
            return;
        }

        switch (access.Kind)
        {
            case GuestAccessKind.MmioRead:
            case GuestAccessKind.MmioWrite:
                if (IsApicWindow(vcpu, access.Address))
                {
                    int offset = (int)(access.Address - vcpu.Apic.MmioBase);
                    AvicAccessKind kind = access.IsWrite ? AvicRegisterAccess.ClassifyWrite(offset) : AvicRegisterAccess.ClassifyRead(offset);
                    Account(vcpu, kind, offset, in access, x2Apic: false);
                }
                else
                {
                    AccountEmulatedAccess(vcpu, in access);
                }

                break;
            case GuestAccessKind.MsrRead:
            case GuestAccessKind.MsrWrite:
                // x2AVIC: KVM clears the intercepts of most x2APIC MSRs and the hardware applies the
                // backing-page rules to them (§3.7). Without x2AVIC ("hybrid AVIC") every x2APIC MSR,
                // and in any case IA32_APIC_BASE, IA32_TSC_DEADLINE and the LVT timer, exits.
                uint msr = (uint)access.Address;
                if (Features.X2Avic && vcpu.Apic.Mode == ApicMode.X2Apic && AvicRegisterAccess.IsX2AvicPassthrough(msr))
                {
                    Account(vcpu, AvicRegisterAccess.ClassifyX2ApicMsr(msr, access.IsWrite), (int)(msr - X2ApicMsrBase) << 4, in access, x2Apic: true);
                }
                else
                {
                    AccountEmulatedAccess(vcpu, in access);
                }

                break;
            default:
                // AVIC maps CR8 onto the backing-page TPR; KVM clears the CR8-write intercept while
                // AVIC is active (init_vmcb, avic_activate_vmcb) and never intercepts CR8 reads.
                Ledger.Event(CostEvent.AcceleratedAccess);
                break;
        }
    }

    private void Account(Vcpu vcpu, AvicAccessKind kind, int offset, in GuestAccess access, bool x2Apic)
    {
        switch (kind)
        {
            case AvicAccessKind.Accelerated:
                Ledger.Event(CostEvent.AcceleratedAccess);
                break;
            case AvicAccessKind.Trap:
                NoAccel(offset, access.IsWrite, trap: true, vector: 0);
                break;
            case AvicAccessKind.Fault:
                NoAccel(offset, access.IsWrite, trap: false, vector: 0);
                break;
            case AvicAccessKind.Eoi:
            {
                // Hardware completes the EOI only for an edge vector; a level vector (TMR set) traps so
                // that the hypervisor can forward the EOI to the IOAPIC (§3.6, TV38).
                LocalApic apic = vcpu.Apic;
                int vector = apic.Isr.Highest();
                if (vector >= 0 && apic.Tmr.Get(vector))
                {
                    NoAccel(offset, write: true, trap: true, vector: (byte)vector);
                }
                else
                {
                    Ledger.Event(CostEvent.AcceleratedAccess);
                }

                break;
            }

            case AvicAccessKind.Icr:
                ClassifyIcrWrite(vcpu, in access, x2Apic);
                break;
        }
    }

    private void NoAccel(int offset, bool write, bool trap, byte vector)
    {
        Ledger.Exit(ExitReason.AvicNoAccel);
        if (trap)
        {
            NoAccelTraps++;
        }
        else
        {
            NoAccelFaults++;
        }

        LastNoAccel = AvicNoAccelInfo.Create(offset, write, trap, vector);
    }

    /// <summary>
    /// A guest ICR write: hardware sends a fixed edge IPI itself when every target's physical
    /// entry is valid and running, else it takes AVIC_INCOMPLETE_IPI (§3.4, §3.5). Either way the
    /// IRR bits are set by the machine's delivery that follows, which calls <see cref="DeliverFixed"/>.
    /// </summary>
    private void ClassifyIcrWrite(Vcpu sender, in GuestAccess access, bool x2Apic)
    {
        uint low = (uint)access.Value;
        ulong icr;
        uint destination;
        if (x2Apic)
        {
            if ((low & InterruptCommand.ReservedBits) != 0)
            {
                // The WRMSR raises #GP (SDM "ICR Operation in x2APIC Mode"): no IPI is sent.
                NoAccel(ApicRegister.InterruptCommandOffset, write: true, trap: false, vector: 0);
                return;
            }

            icr = access.Value;
            destination = (uint)(access.Value >> 32);
        }
        else
        {
            uint high = (uint)(sender.Apic.InterruptCommandValue >> 32);
            icr = ((ulong)high << 32) | low;
            destination = high >> InterruptCommand.XApicDestinationShift;
        }

        if (FindIncompleteIpiCause(sender, low, destination, x2Apic, out AvicIncompleteIpiCause cause, out uint index))
        {
            Ledger.Exit(ExitReason.AvicIncompleteIpi);
            _incompleteIpis[(int)cause]++;
            LastIncompleteIpi = AvicIncompleteIpiInfo.Create(icr, cause, index);
        }
        else
        {
            Ledger.Event(CostEvent.AcceleratedAccess);
        }
    }

    /// <summary>
    /// Decides whether the hardware completes the IPI. Checks in order: message type (fixed and
    /// edge only), vector (16 and up), then every target: an invalid entry anywhere makes it
    /// INVALID_TARGET (KVM emulates the whole IPI), else a target whose IsRunning is clear makes it
    /// TARGET_NOT_RUNNING (IRR already set everywhere, KVM wakes/kicks).
    /// </summary>
    private bool FindIncompleteIpiCause(Vcpu sender, uint low, uint destination, bool x2Apic, out AvicIncompleteIpiCause cause, out uint index)
    {
        index = 0;
        var mode = (DeliveryMode)((low & InterruptCommand.DeliveryModeMask) >> 8);
        if (mode != DeliveryMode.Fixed || (low & InterruptCommand.LevelTriggered) != 0)
        {
            cause = AvicIncompleteIpiCause.InvalidIntType;
            return true;
        }

        if ((byte)low < 16)
        {
            cause = AvicIncompleteIpiCause.InvalidIpiVector;
            return true;
        }

        var targets = new TargetCheck(uint.MaxValue, uint.MaxValue);
        switch ((DestinationShorthand)((low & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift))
        {
            case DestinationShorthand.Self:
                // The sender's own backing page: no table lookup, and the sender is in guest mode.
                cause = default;
                return false;
            case DestinationShorthand.AllIncludingSelf:
                CheckAll(sender, includeSelf: true, ref targets);
                break;
            case DestinationShorthand.AllExcludingSelf:
                CheckAll(sender, includeSelf: false, ref targets);
                break;
            default:
                if (destination == (x2Apic ? InterruptMessage.X2ApicBroadcast : InterruptMessage.XApicBroadcast))
                {
                    // Broadcast (physical or logical) goes to every valid entry; invalid ones are skipped.
                    CheckAll(sender, includeSelf: true, ref targets);
                }
                else if ((low & InterruptCommand.LogicalDestination) == 0)
                {
                    CheckPhysical(destination, ref targets);
                }
                else if (x2Apic)
                {
                    CheckX2ApicLogical(destination, ref targets);
                }
                else
                {
                    CheckXApicLogical(sender, destination, ref targets);
                }

                break;
        }

        if (targets.FirstInvalid != uint.MaxValue)
        {
            cause = AvicIncompleteIpiCause.InvalidTarget;
            index = targets.FirstInvalid;
            return true;
        }

        if (targets.FirstNotRunning != uint.MaxValue)
        {
            cause = AvicIncompleteIpiCause.TargetNotRunning;
            index = targets.FirstNotRunning;
            return true;
        }

        cause = default;
        return false;
    }

    /// <summary>The first table index found invalid and the first found not running (uint.MaxValue: none).</summary>
    private record struct TargetCheck(uint FirstInvalid, uint FirstNotRunning)
    {
        public void Invalid(uint index) => FirstInvalid = Math.Min(FirstInvalid, index);

        public void NotRunning(uint index) => FirstNotRunning = Math.Min(FirstNotRunning, index);
    }

    private void CheckAll(Vcpu sender, bool includeSelf, ref TargetCheck targets)
    {
        foreach (Vcpu vcpu in Machine.Vcpus)
        {
            int index = _physical.IndexOf(vcpu.Index);
            if (index < 0 || (!includeSelf && vcpu.Index == sender.Index))
            {
                continue;
            }

            if (!_physical[(uint)index].IsRunning)
            {
                targets.NotRunning((uint)index);
            }
        }
    }

    private void CheckPhysical(uint guestPhysicalId, ref TargetCheck targets)
    {
        AvicPhysicalIdEntry entry = _physical[guestPhysicalId];
        if (!entry.Valid)
        {
            targets.Invalid(guestPhysicalId);
        }
        else if (!entry.IsRunning)
        {
            targets.NotRunning(guestPhysicalId);
        }
    }

    /// <summary>
    /// xAVIC logical destination: each set bit of the MDA selects a logical table entry (flat or
    /// cluster per the sender's DFR, §3.3), which names the physical entry to use.
    /// </summary>
    private void CheckXApicLogical(Vcpu sender, uint destination, ref TargetCheck targets)
    {
        uint mda = destination & 0xFF;
        uint bits = mda;
        int first = 0;
        if (!AvicLogicalIdTable.IsFlat(sender.Apic.DestinationFormat))
        {
            bits = mda & 0xF;
            first = (int)(mda >> 4) << 2;
        }

        for (; bits != 0; bits &= bits - 1)
        {
            int slot = first + BitOperations.TrailingZeroCount(bits);
            AvicLogicalIdEntry entry = _logical[slot];
            if (!entry.Valid)
            {
                targets.Invalid((uint)slot);
            }
            else
            {
                CheckPhysical(entry.GuestPhysicalApicId, ref targets);
            }
        }
    }

    /// <summary>
    /// x2AVIC logical destination: the x2APIC logical ID is derived from the physical one
    /// (cluster = ID[19:4], member bit = ID[3:0]), so each member bit names physical ID
    /// cluster × 16 + bit directly.
    /// </summary>
    private void CheckX2ApicLogical(uint destination, ref TargetCheck targets)
    {
        uint first = (destination >> 16) << 4;
        for (uint bits = destination & 0xFFFF; bits != 0; bits &= bits - 1)
        {
            CheckPhysical(first + (uint)BitOperations.TrailingZeroCount(bits), ref targets);
        }
    }

    /// <inheritdoc/>
    public override bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message)
    {
        if (!IsAcceleratedFor(target))
        {
            // KVM svm_complete_interrupt_delivery with the target's AVIC inactive (VM-wide, or NESTED
            // while it runs L2): IRR set, then KVM_REQ_EVENT and a kick or wake-up, as in emulation.
            return base.DeliverFixed(target, vector, levelTriggered, in message);
        }

        // Guest IPIs (by hardware or KVM's emulation after an incomplete-IPI exit) and device
        // interrupts alike set the IRR bit in the target's backing page at once (KVM
        // svm_deliver_interrupt); there is no PIR to hold it.
        bool accepted = target.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);
        if (accepted)
        {
            NotifyBackingPage(target);
        }

        return accepted;
    }

    /// <summary>
    /// KVM <c>svm_complete_interrupt_delivery</c>: ring the doorbell of a target in guest mode so
    /// that it re-evaluates its IRR without exit, wake a blocked one; a preempted target (or one
    /// already on its way out of the guest) finds the IRR at its next VMRUN.
    /// </summary>
    private void NotifyBackingPage(Vcpu target)
    {
        if (target.Index == CurrentVcpu)
        {
            // The sender itself: hardware evaluates its own page (accelerated self-IPI), or it is
            // out of the guest for its own access and VMRUN evaluates the IRR.
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
    protected override bool AcceleratesFixedDelivery(Vcpu vcpu) => !IsNestedInhibited(vcpu);

    /// <inheritdoc/>
    public override void OnEventTaken(Vcpu vcpu, CpuEvent taken)
    {
        base.OnEventTaken(vcpu, taken);
        if (taken.Kind == CpuEventKind.Init)
        {
            // INIT resets LDR and DFR (and software-disables the APIC): the tables and the
            // logical-alias check follow, as KVM's map recalculation after the reset does.
            RecomputeIdentityInhibits();
        }
    }

    /// <inheritdoc/>
    protected override void CompleteAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
        if (access.Kind == GuestAccessKind.MsrWrite && access.Address == X2ApicSpuriousVectorMsr && result == ApicAccessResult.Ok)
        {
            // Software enable decides which LDRs count for LOGICAL_ID_ALIASED (KVM recalculates
            // its APIC map on SVR writes); the base class watches only the xAPIC SVR.
            RecomputeIdentityInhibits();
        }
    }

    /// <inheritdoc/>
    public override void OnHostStateChanged(Vcpu vcpu, VcpuHostState previous)
    {
        base.OnHostStateChanged(vcpu, previous);

        // KVM avic_vcpu_load / avic_vcpu_put: IsRunning is set while the vCPU is loaded for guest
        // mode and cleared when it is descheduled or blocks; both do nothing while the vCPU's AVIC
        // is inactive (a vCPU running L2 stays not running).
        _physical.SetRunning(vcpu.Index, IsRunningFor(vcpu));
    }

    /// <inheritdoc/>
    protected override void OnActivationChanged(bool active)
    {
        base.OnActivationChanged(active);

        // Nothing to move: AVIC holds no interrupt outside the backing pages. Deactivation puts
        // the AVIC state (IsRunning cleared); activation loads it again.
        if (_attached)
        {
            RefreshIsRunning();
        }
    }

    /// <summary>
    /// Base identity inhibits, then the AVIC tables rebuilt from the guest's IDs, LDRs and DFRs,
    /// and LOGICAL_ID_ALIASED as KVM <c>kvm_recalculate_logical_map</c> decides it. The base
    /// class's <see cref="VirtualizationMode.OnStateRestored"/> calls it too, which is all a restore
    /// needs here (KVM <c>avic_apicv_post_state_restore</c> re-derives the ID-table entries): both
    /// tables and every IsRunning bit then follow the restored LAPICs and host states. A save needs
    /// nothing either, as AVIC holds no interrupt outside the backing pages.
    /// </summary>
    protected override void RecomputeIdentityInhibits()
    {
        base.RecomputeIdentityInhibits();
        ReadOnlySpan<Vcpu> vcpus = Machine.Vcpus;
        _physical.Rebuild(vcpus);
        RefreshIsRunning();
        _logical.Rebuild(vcpus);
        Inhibits.Update(ApicvInhibit.LogicalIdAliased, LogicalIdsAlias(vcpus));
    }

    /// <summary>
    /// KVM <c>kvm_recalculate_logical_map</c>: over software-enabled APICs with a non-zero LDR,
    /// the logical map is unusable (and AVIC inhibited) when they mix logical models (x2APIC,
    /// xAPIC flat, xAPIC cluster), when an xAPIC logical ID has several member bits, or when two
    /// APICs claim the same logical slot.
    /// </summary>
    private bool LogicalIdsAlias(ReadOnlySpan<Vcpu> vcpus)
    {
        Array.Clear(_logicalSlotUsed);
        int model = -1;
        foreach (Vcpu vcpu in vcpus)
        {
            LocalApic apic = vcpu.Apic;
            uint ldr = apic.LogicalDestination;
            if (apic.Mode == ApicMode.Disabled || !apic.SoftwareEnabled || ldr == 0)
            {
                continue;
            }

            int vcpuModel = apic.Mode == ApicMode.X2Apic ? 2 : AvicLogicalIdTable.IsFlat(apic.DestinationFormat) ? 0 : 1;
            if (model < 0)
            {
                model = vcpuModel;
            }
            else if (model != vcpuModel)
            {
                return true;
            }

            if (vcpuModel == 2)
            {
                // Derived from the unique x2APIC ID: always addressable.
                continue;
            }

            uint logicalId = ldr >> 24;
            uint members = vcpuModel == 0 ? logicalId : logicalId & 0xF;
            int first = vcpuModel == 0 ? 0 : (int)(logicalId >> 4) << 2;
            if (members == 0)
            {
                continue;
            }

            if ((members & (members - 1)) != 0)
            {
                return true;
            }

            int slot = first + BitOperations.TrailingZeroCount(members);
            if (_logicalSlotUsed[slot])
            {
                return true;
            }

            _logicalSlotUsed[slot] = true;
        }

        return false;
    }
}
