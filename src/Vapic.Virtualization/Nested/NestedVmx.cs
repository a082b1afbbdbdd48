using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Nested;

/// <summary>
/// L0's side of nested VMX for the APIC (virtualization-reference §4.4 and §5): an L1 hypervisor
/// runs an L2 guest on each vCPU of a machine that L0 virtualizes in some mode. L1 writes a
/// <see cref="Vmcs12"/>, owns a guest-physical memory map (<see cref="L1GuestMemory"/>) and
/// translates L2 addresses (<see cref="L2Translation"/>); L0 checks the vmcs12, builds a
/// <see cref="Vmcs02"/> and runs L2's accesses: against the virtual-APIC page when L1 asked for
/// APIC virtualization, otherwise wherever L1's translation leads, L1's own APIC included.
/// </summary>
/// <remarks>
/// <para>
/// Two cases are handled as KVM handles them today, with the old behaviour as a quirk:
/// an APIC-access address that is not L1 RAM stops the vCPU with an internal error naming the
/// field and address (KVM commit "KVM: nVMX: Don't leak L1 MMIO regions to L2"), where the quirk
/// <see cref="NestedQuirks.NestedApicAccessClear"/> clears the control and lets L2 reach L1's
/// memory; and an L2 access to L1's APIC page while L1's APIC is accelerated sets
/// <see cref="ApicvInhibit.L2PassthroughAccess"/> VM-wide and is emulated (the RFC of August
/// 2023), where the quirk <see cref="NestedQuirks.L2PassthroughNoInhibit"/> emulates it behind the
/// acceleration's back and loses interrupts.
/// </para>
/// <para>
/// The model of the loss (the reference leaves the root cause open, §4.4 AMBIGUOUS): with
/// acceleration active the processor, not L0's software vLAPIC, tracks the vector in service
/// (Intel: SVI in vmcs01's guest-interrupt status; AMD: the running AVIC). An EOI that L0
/// emulates for L2 while the vCPU runs on vmcs02 reaches only the software copy (the class of bug
/// KVM fixed for vmcs01's SVI and EOI-exit bitmap while L2 runs, e.g. "KVM: nVMX: Do not load
/// EOI-exitmap while running L2"), so the vector stays in service: in the model the EOI does not
/// happen, and every later interrupt of that priority class or below stays blocked behind it.
/// Every other emulated access reaches the LAPIC directly, without the mode's hooks.
/// </para>
/// <para>
/// What L1's APIC is to L0 depends on the mode: an APIC-access page exists only in modes that
/// honor L2_PASSTHROUGH_ACCESS (Intel APICv, AMD AVIC) while they are accelerated. Everywhere
/// else (plain emulation, passthrough) L2's access is emulated like any other and nothing is lost,
/// with or without the quirk. The nested VMX logic itself does not depend on the mode; under an
/// AMD mode it stands for the same L1 hypervisor (the model has no VMCB12).
/// </para>
/// <para>
/// Guest mode (whether the vCPU executes L2 right now, KVM <c>is_guest_mode</c>) is reported to
/// the mode through <see cref="VirtualizationMode.OnGuestModeChanged"/>: entered at a successful
/// <see cref="VmLaunch"/>, left at every exit to L1 (an L2 access that exits to L1, a VMLAUNCH
/// that L1 executes, which it can only do in L1, and an internal error that stops the vCPU). An
/// L2 access or <see cref="TryL2Accept"/> after an exit to L1 stands for L1 resuming L2 on the
/// vmcs02 it has and enters guest mode again. L1 posting to its L2, L2 touching L1 memory or
/// devices, and the machine's own commands change nothing. AMD AVIC turns itself off for a vCPU
/// in guest mode (the per-vCPU NESTED inhibit, TV44); the other modes ignore it.
/// </para>
/// </remarks>
public sealed class NestedVmx
{
    private readonly VirtualizationMode _mode;
    private readonly VirtualMachine _machine;
    private readonly Vmcs12[] _vmcs12;
    private readonly Vmcs02?[] _vmcs02;
    private readonly NestedVcpuState[] _states;
    private readonly NestedInternalError?[] _errors;
    private readonly bool[] _inGuestMode;

    /// <summary>Creates the nested model over the machine <paramref name="mode"/> is attached to.</summary>
    /// <exception cref="InvalidOperationException">The mode is not attached to a machine.</exception>
    public NestedVmx(VirtualizationMode mode, NestedQuirks quirks = NestedQuirks.None)
    {
        ArgumentNullException.ThrowIfNull(mode);
        _mode = mode;
        _machine = mode.Machine;
        int n = _machine.VcpuCount;
        _vmcs12 = new Vmcs12[n];
        for (int i = 0; i < n; i++)
        {
            _vmcs12[i] = new Vmcs12();
        }

        _vmcs02 = new Vmcs02?[n];
        _states = new NestedVcpuState[n];
        _errors = new NestedInternalError?[n];
        _inGuestMode = new bool[n];
        Quirks = quirks;
    }

    /// <summary>L0's virtualization mode for L1.</summary>
    public VirtualizationMode Mode => _mode;

    /// <summary>The machine (L1's vCPUs and devices).</summary>
    public VirtualMachine Machine => _machine;

    /// <summary>The old behaviours in effect.</summary>
    public NestedQuirks Quirks { get; set; }

    /// <summary>L1's guest-physical memory.</summary>
    public L1GuestMemory L1Memory { get; } = new();

    /// <summary>L1's EPT for L2 (or its page tables for L2 when EPT is off in vmcs12).</summary>
    public L2Translation L2Translation { get; } = new();

    /// <summary>What happened so far.</summary>
    public NestedCounters Counters { get; } = new();

    /// <summary>
    /// Whether L1's APIC page is L0's APIC-access page right now: the mode honors
    /// L2_PASSTHROUGH_ACCESS (it virtualizes the APIC through such a page) and is accelerated
    /// (KVM <c>kvm_apicv_activated</c>).
    /// </summary>
    public bool IsApicAccessPageActive =>
        (_mode.Inhibits.VendorMask & ApicvInhibitMask.L2PassthroughAccess) != 0 && _mode.IsAccelerated;

    /// <summary>The vmcs12 of vCPU <paramref name="vcpu"/> (L1 writes it directly).</summary>
    public Vmcs12 GetVmcs12(int vcpu) => _vmcs12[vcpu];

    /// <summary>The vmcs02 of vCPU <paramref name="vcpu"/> while it runs L2, else null.</summary>
    public Vmcs02? GetVmcs02(int vcpu) => _vmcs02[vcpu];

    /// <summary>Whether vCPU <paramref name="vcpu"/> runs L1, runs L2, or was stopped.</summary>
    public NestedVcpuState GetState(int vcpu) => _states[vcpu];

    /// <summary>Why L0 stopped vCPU <paramref name="vcpu"/>, or null.</summary>
    public NestedInternalError? GetInternalError(int vcpu) => _errors[vcpu];

    /// <summary>
    /// Whether vCPU <paramref name="vcpu"/> executes L2 right now (KVM <c>is_guest_mode</c>): it
    /// entered L2 and has not exited to L1 since, or L1 resumed it. False in L1, when stopped, and
    /// between an exit to L1 and the next L2 command.
    /// </summary>
    public bool IsInGuestMode(int vcpu) => _inGuestMode[vcpu];

    /// <summary>
    /// L1 executes VMLAUNCH (or VMRESUME: every entry rebuilds vmcs02 from the current vmcs12) on
    /// vCPU <paramref name="vcpu"/>. Checks the controls (VMfailValid 7 on failure), then maps the
    /// vmcs12 pages in KVM's order (APIC-access page, virtual-APIC page, posted-interrupt
    /// descriptor; <c>nested_get_vmcs12_pages</c>) and enters L2.
    /// </summary>
    public VmEntryResult VmLaunch(int vcpu)
    {
        if (_states[vcpu] == NestedVcpuState.Stopped)
        {
            return VmEntryResult.Stopped(_errors[vcpu]!);
        }

        // VMLAUNCH/VMRESUME is an L1 instruction: an L2 still running on this vCPU exited to L1
        // before it (the exit the caller does not show).
        SetGuestMode(vcpu, false);
        Vmcs12 vmcs12 = _vmcs12[vcpu];
        int maxPhysicalAddressBits = _machine.Options.MaxPhysicalAddressBits;
        byte? vtpr = ReadVirtualTaskPriority(vmcs12);
        string? invalid = VmEntryChecks.Check(vmcs12, vmcs12.Controls, maxPhysicalAddressBits, vtpr);
        if (invalid is not null)
        {
            return FailEntry(vcpu, invalid);
        }

        Vmcs12Controls controls = vmcs12.Controls;
        Vmcs02Adjustments adjustments = Vmcs02Adjustments.None;
        ulong? apicAccess = null, virtualApic = null, descriptor = null;
        if (vmcs12.Has(Vmcs12Controls.VirtualizeApicAccesses))
        {
            apicAccess = L1Memory.HostAddressOf(vmcs12.ApicAccessAddress);
            if (apicAccess is null)
            {
                if ((Quirks & NestedQuirks.NestedApicAccessClear) == 0)
                {
                    // KVM cannot emulate this vmcs12 faithfully: L1 made L2's APIC addresses translate
                    // to this address, so without the control L2 would reach L1's memory there.
                    return Stop(vcpu, new NestedInternalError(Vmcs12Field.ApicAccessAddress, vmcs12.ApicAccessAddress, L1Memory.KindOf(vmcs12.ApicAccessAddress)));
                }

                controls &= ~Vmcs12Controls.VirtualizeApicAccesses;
                adjustments |= Vmcs02Adjustments.ApicAccessesCleared;
            }
        }

        if (vmcs12.Has(Vmcs12Controls.UseTprShadow))
        {
            virtualApic = L1Memory.HostAddressOf(vmcs12.VirtualApicAddress);
            if (virtualApic is null)
            {
                if (vmcs12.Has(Vmcs12Controls.Cr8LoadExiting | Vmcs12Controls.Cr8StoreExiting) && !vmcs12.Has(Vmcs12Controls.VirtualizeApicAccesses))
                {
                    // CR8 exits already cover every TPR access L2 can make: drop the shadow (TV49).
                    controls &= ~Vmcs12Controls.UseTprShadow;
                    adjustments |= Vmcs02Adjustments.TprShadowCleared;
                }
                else
                {
                    // KVM writes an invalid address to vmcs02 so that the hardware entry fails, and
                    // L1 sees its VMLAUNCH fail (nested_vmx_vmexit after an early entry failure).
                    return FailEntry(vcpu, $"virtual-APIC address 0x{vmcs12.VirtualApicAddress:x} is not backed by L1 RAM: L0 made it invalid in vmcs02, so the entry fails");
                }
            }
        }

        if (vmcs12.Has(Vmcs12Controls.ProcessPostedInterrupts))
        {
            descriptor = L1Memory.HostAddressOf(vmcs12.PostedInterruptDescriptorAddress);
            if (descriptor is null)
            {
                // The error waits until L0 must read the descriptor (TV48).
                controls &= ~Vmcs12Controls.ProcessPostedInterrupts;
                adjustments |= Vmcs02Adjustments.PostedInterruptsCleared;
            }
        }

        if (adjustments != Vmcs02Adjustments.None)
        {
            // The hardware checks vmcs02 as it now is (a cleared TPR shadow under VID fails here).
            string? invalid02 = VmEntryChecks.Check(vmcs12, controls, maxPhysicalAddressBits, vtpr);
            if (invalid02 is not null)
            {
                return FailEntry(vcpu, $"vmcs02 after L0's adjustments ({adjustments}): {invalid02}");
            }
        }

        _vmcs02[vcpu] = new Vmcs02(
            controls,
            apicAccess,
            virtualApic,
            descriptor,
            (controls & Vmcs12Controls.ProcessPostedInterrupts) != 0 ? Vmcs02.NestedPostedInterruptVector : (byte)0,
            adjustments);
        _states[vcpu] = NestedVcpuState.InL2;
        Counters.Entries++;
        SetGuestMode(vcpu, true);
        return VmEntryResult.Entered;
    }

    /// <summary>L2 on vCPU <paramref name="vcpu"/> reads 32 bits at <paramref name="address"/> (4-byte aligned).</summary>
    public L2AccessResult L2Read(int vcpu, ulong address) => Access(vcpu, address, write: false, 0);

    /// <summary>L2 on vCPU <paramref name="vcpu"/> writes 32 bits at <paramref name="address"/> (4-byte aligned).</summary>
    public L2AccessResult L2Write(int vcpu, ulong address, uint value) => Access(vcpu, address, write: true, value);

    /// <summary>
    /// L2 on vCPU <paramref name="vcpu"/> reaches an instruction boundary with interrupts enabled:
    /// virtual-interrupt delivery takes RVI if its class is above VPPR's (SDM "Virtual-Interrupt
    /// Delivery"). False when the vCPU is not in L2; <paramref name="vector"/> is -1 when nothing is
    /// delivered (or vmcs02 has no virtual-interrupt delivery: L1 injects L2's interrupts itself).
    /// </summary>
    public bool TryL2Accept(int vcpu, out int vector)
    {
        vector = -1;
        if (_states[vcpu] != NestedVcpuState.InL2)
        {
            return false;
        }

        SetGuestMode(vcpu, true);

        if (!_vmcs02[vcpu]!.Has(Vmcs12Controls.VirtualInterruptDelivery))
        {
            return true;
        }

        Vmcs12 vmcs12 = _vmcs12[vcpu];
        var page = new VirtualApicPage(L1Memory, vmcs12.VirtualApicAddress);
        byte rvi = vmcs12.RequestingVirtualInterrupt;
        if ((rvi >> 4) <= ((page.Read(VirtualApicPage.ProcessorPriority) >> 4) & 0xF))
        {
            return true;
        }

        page.Assign(VirtualApicPage.InService, rvi, true);
        vmcs12.ServicingVirtualInterrupt = rvi;
        page.Write(VirtualApicPage.ProcessorPriority, (uint)(rvi & 0xF0));
        page.Assign(VirtualApicPage.Request, rvi, false);
        vmcs12.RequestingVirtualInterrupt = page.Highest(VirtualApicPage.Request);
        Counters.VirtualInterruptsDelivered++;
        vector = rvi;
        return true;
    }

    /// <summary>
    /// L1 posts <paramref name="vector"/> to the L2 running on vCPU <paramref name="vcpu"/>: it sets
    /// the PIR bit and ON in its descriptor and sends its notification vector. L0 recognizes the
    /// vector of vmcs12 for a vCPU in L2 and has the descriptor processed for L2 with
    /// POSTED_INTR_NESTED_VECTOR (virtualization-reference §5.1): PIR into VIRR, RVI raised, no exit.
    /// </summary>
    public NestedPostResult PostToL2(int vcpu, byte vector)
    {
        if (_states[vcpu] != NestedVcpuState.InL2)
        {
            return new NestedPostResult(NestedPostOutcome.NotInL2, null);
        }

        Vmcs12 vmcs12 = _vmcs12[vcpu];
        ulong descriptor = vmcs12.PostedInterruptDescriptorAddress;
        bool backed = L1Memory.IsRam(descriptor);
        if (backed)
        {
            // L1's half: PIR[vector] = 1, ON = 1 (descriptor byte 32 bit 0).
            L1Memory.Write32(descriptor + ((uint)(vector >> 5) << 2), L1Memory.Read32(descriptor + ((uint)(vector >> 5) << 2)) | 1u << (vector & 31));
            L1Memory.Write32(descriptor + 32, L1Memory.Read32(descriptor + 32) | 1);
        }

        if (!vmcs12.Has(Vmcs12Controls.ProcessPostedInterrupts))
        {
            return new NestedPostResult(NestedPostOutcome.Pending, null);
        }

        if (!_vmcs02[vcpu]!.Has(Vmcs12Controls.ProcessPostedInterrupts))
        {
            // vmcs02 runs without posted interrupts because the descriptor is not RAM; now L0 must
            // read it to complete the nested posted interrupt, and cannot (TV48).
            NestedInternalError error = new(Vmcs12Field.PostedInterruptDescriptorAddress, descriptor, L1Memory.KindOf(descriptor));
            Stop(vcpu, error);
            return new NestedPostResult(NestedPostOutcome.InternalError, error);
        }

        // Posted-interrupt processing (SDM "Posted-Interrupt Processing"): ON = 0, VIRR |= PIR,
        // PIR = 0, RVI = max(RVI, highest PIR vector), evaluate.
        var page = new VirtualApicPage(L1Memory, vmcs12.VirtualApicAddress);
        L1Memory.Write32(descriptor + 32, L1Memory.Read32(descriptor + 32) & ~1u);
        int highest = -1;
        for (int word = 0; word < 8; word++)
        {
            ulong address = descriptor + ((uint)word << 2);
            uint bits = L1Memory.Read32(address);
            if (bits == 0)
            {
                continue;
            }

            L1Memory.Write32(address, 0);
            for (int bit = 0; bit < 32; bit++)
            {
                if ((bits & (1u << bit)) != 0)
                {
                    int v = (word << 5) + bit;
                    page.Assign(VirtualApicPage.Request, v, true);
                    highest = Math.Max(highest, v);
                }
            }
        }

        if (highest > vmcs12.RequestingVirtualInterrupt)
        {
            vmcs12.RequestingVirtualInterrupt = (byte)highest;
        }

        Counters.NestedPostedInterrupts++;
        return new NestedPostResult(NestedPostOutcome.Posted, null);
    }

    private L2AccessResult Access(int vcpu, ulong address, bool write, uint value)
    {
        if ((address & 3) != 0)
        {
            throw new ArgumentException($"L2 access at 0x{address:x} is not 4-byte aligned", nameof(address));
        }

        if (_states[vcpu] != NestedVcpuState.InL2)
        {
            return L2AccessResult.NotInL2;
        }

        SetGuestMode(vcpu, true);
        Vmcs12 vmcs12 = _vmcs12[vcpu];
        Vmcs02 vmcs02 = _vmcs02[vcpu]!;
        if (!L2Translation.TryTranslate(address, out ulong l1Address))
        {
            // Not present in L1's EPT: EPT violation (qualification bit 0 read, bit 1 write). Not
            // present in L1's page tables for L2 (shadow paging): a #PF, which an L1 using shadow
            // paging intercepts (exit qualification = the faulting linear address).
            L1Exit exit = vmcs12.Has(Vmcs12Controls.EnableEpt)
                ? new L1Exit(L1ExitReason.EptViolation, write ? 2UL : 1UL)
                : new L1Exit(L1ExitReason.ExceptionOrNmi, address);
            return ExitToL1(vcpu, exit, L2AccessTarget.None, 0);
        }

        if (vmcs02.Has(Vmcs12Controls.VirtualizeApicAccesses) && (l1Address & ~(L1GuestMemory.PageSize - 1)) == vmcs12.ApicAccessAddress)
        {
            // SDM "APIC-Access Page": the translation ends on the APIC-access address.
            return ApicPageAccess(vcpu, vmcs12, vmcs02, l1Address, write, value);
        }

        switch (L1Memory.KindOf(l1Address))
        {
            case L1MemoryKind.Ram:
                Counters.L1RamAccesses++;
                if (write)
                {
                    L1Memory.Write32(l1Address, value);
                    return new L2AccessResult(L2AccessOutcome.Completed, L2AccessTarget.L1Ram, 0, default, l1Address);
                }

                return new L2AccessResult(L2AccessOutcome.Completed, L2AccessTarget.L1Ram, L1Memory.Read32(l1Address), default, l1Address);

            case L1MemoryKind.Mmio:
            {
                // L2 reaches an L1 device directly; the machine's devices answer at L1's addresses.
                Counters.L1MmioAccesses++;
                Vcpu cpu = _machine.GetVcpu(vcpu);
                uint read = 0;
                ApicAccessResult result = write ? cpu.WriteMmio(l1Address, value) : cpu.ReadMmio(l1Address, out read);
                return FromDevice(result, L2AccessTarget.L1Mmio, read, l1Address);
            }

            case L1MemoryKind.L1Apic:
                return L1ApicAccess(vcpu, l1Address, write, value);

            default:
                // Nothing decodes it: KVM exits to the VMM (KVM_EXIT_MMIO), which has no device there.
                Counters.VmmMmioExits++;
                _mode.Ledger.Exit(ExitReason.UnbackedMmio);
                return new L2AccessResult(L2AccessOutcome.Unbacked, L2AccessTarget.Hole, 0, default, l1Address);
        }
    }

    /// <summary>
    /// An access whose translation ends on the APIC-access page (SDM "Virtualizing Memory-Mapped
    /// APIC Accesses"; virtualization-reference §2.4): a virtualized read is served from the
    /// virtual-APIC page; a virtualized write lands there and APIC-write emulation follows; anything
    /// else is an APIC-access exit to L1.
    /// </summary>
    private L2AccessResult ApicPageAccess(int vcpu, Vmcs12 vmcs12, Vmcs02 vmcs02, ulong l1Address, bool write, uint value)
    {
        uint offset = (uint)(l1Address & (L1GuestMemory.PageSize - 1));
        ulong accessType = write ? L1Exit.LinearWrite : L1Exit.LinearRead;
        if (!vmcs02.Has(Vmcs12Controls.UseTprShadow))
        {
            return ExitToL1(vcpu, new L1Exit(L1ExitReason.ApicAccess, offset | accessType), L2AccessTarget.None, l1Address);
        }

        bool registerVirtualization = vmcs02.Has(Vmcs12Controls.ApicRegisterVirtualization);
        bool delivery = vmcs02.Has(Vmcs12Controls.VirtualInterruptDelivery);
        var page = new VirtualApicPage(L1Memory, vmcs12.VirtualApicAddress);
        if (!write)
        {
            bool virtualized = (offset & 0xF) == 0 && (registerVirtualization ? IsVirtualizedRead(offset) : offset == VirtualApicPage.TaskPriority);
            if (!virtualized)
            {
                return ExitToL1(vcpu, new L1Exit(L1ExitReason.ApicAccess, offset | accessType), L2AccessTarget.None, l1Address);
            }

            Counters.VirtualizedApicAccesses++;
            return new L2AccessResult(L2AccessOutcome.Completed, L2AccessTarget.VirtualApicPage, page.Read(offset), default, l1Address);
        }

        if ((offset & 0xF) != 0 || !IsVirtualizedWrite(offset, registerVirtualization, delivery))
        {
            return ExitToL1(vcpu, new L1Exit(L1ExitReason.ApicAccess, offset | accessType), L2AccessTarget.None, l1Address);
        }

        Counters.VirtualizedApicAccesses++;
        page.Write(offset, value);
        L1Exit? trap = offset switch
        {
            VirtualApicPage.TaskPriority => TprVirtualization(vmcs12, page, delivery),
            VirtualApicPage.Eoi => delivery ? EoiVirtualization(vmcs12, page) : new L1Exit(L1ExitReason.ApicWrite, offset),
            VirtualApicPage.InterruptCommandLow => delivery && IsVirtualizableSelfIpi(value)
                ? SelfIpiVirtualization(vmcs12, page, (byte)value)
                : new L1Exit(L1ExitReason.ApicWrite, offset),
            VirtualApicPage.InterruptCommandHigh => ClearIcrHighLowBytes(page, value),
            _ => new L1Exit(L1ExitReason.ApicWrite, offset),
        };
        return trap is { } exit
            ? ExitToL1(vcpu, exit, L2AccessTarget.VirtualApicPage, l1Address)
            : new L2AccessResult(L2AccessOutcome.Completed, L2AccessTarget.VirtualApicPage, 0, default, l1Address);
    }

    /// <summary>
    /// TPR virtualization after a write to VTPR (bytes 3:1 cleared first): with virtual-interrupt
    /// delivery, PPR virtualization; otherwise a trap-like TPR-below-threshold exit when VTPR[7:4]
    /// falls below the threshold (SDM "TPR Virtualization").
    /// </summary>
    private static L1Exit? TprVirtualization(Vmcs12 vmcs12, VirtualApicPage page, bool delivery)
    {
        page.Write(VirtualApicPage.TaskPriority, page.Vtpr);
        if (delivery)
        {
            page.UpdateProcessorPriority(vmcs12.ServicingVirtualInterrupt);
            return null;
        }

        return (page.Vtpr >> 4) < (vmcs12.TprThreshold & 0xF) ? new L1Exit(L1ExitReason.TprBelowThreshold, 0) : null;
    }

    /// <summary>
    /// EOI virtualization (SDM "EOI Virtualization"): SVI leaves VISR, SVI becomes the highest VISR
    /// vector, PPR virtualization; a vector set in the EOI-exit bitmap then exits to L1 (trap-like).
    /// </summary>
    private static L1Exit? EoiVirtualization(Vmcs12 vmcs12, VirtualApicPage page)
    {
        byte vector = vmcs12.ServicingVirtualInterrupt;
        page.Assign(VirtualApicPage.InService, vector, false);
        vmcs12.ServicingVirtualInterrupt = page.Highest(VirtualApicPage.InService);
        page.UpdateProcessorPriority(vmcs12.ServicingVirtualInterrupt);
        return vmcs12.IsEoiExit(vector) ? new L1Exit(L1ExitReason.EoiInduced, vector) : null;
    }

    /// <summary>Self-IPI virtualization (SDM "Self-IPI Virtualization"): VIRR[v] = 1, RVI = max(RVI, v).</summary>
    private static L1Exit? SelfIpiVirtualization(Vmcs12 vmcs12, VirtualApicPage page, byte vector)
    {
        page.Assign(VirtualApicPage.Request, vector, true);
        if (vector > vmcs12.RequestingVirtualInterrupt)
        {
            vmcs12.RequestingVirtualInterrupt = vector;
        }

        return null;
    }

    /// <summary>A virtualized write to VICR_HI clears its bytes 2:0 and does nothing else.</summary>
    private static L1Exit? ClearIcrHighLowBytes(VirtualApicPage page, uint value)
    {
        page.Write(VirtualApicPage.InterruptCommandHigh, value & 0xFF00_0000);
        return null;
    }

    /// <summary>
    /// L2 touches L1's own APIC window. While APIC virtualization is active for L1 that window is
    /// L0's APIC-access page, which KVM hides from L2 (a private memslot) and emulates: the RFC sets
    /// L2_PASSTHROUGH_ACCESS first so that the emulation is authoritative.
    /// </summary>
    private L2AccessResult L1ApicAccess(int vcpu, ulong l1Address, bool write, uint value)
    {
        Counters.L1ApicAccesses++;
        Vcpu cpu = _machine.GetVcpu(vcpu);
        uint read = 0;
        ApicAccessResult result;
        if (IsApicAccessPageActive)
        {
            Counters.DirectAccessesWhileAccelerated++;
            if ((Quirks & NestedQuirks.L2PassthroughNoInhibit) == 0)
            {
                // RFC "KVM: x86: inhibit APICv upon detecting direct APIC access from L2": VM-wide,
                // honored by VMX and SVM alike; acceleration goes off and held interrupts reach IRR.
                _mode.SetInhibit(ApicvInhibit.L2PassthroughAccess, true);
            }
        }

        if (IsApicAccessPageActive)
        {
            // Quirk: emulated by L0 behind the acceleration's back (an EPT misconfiguration exit and
            // instruction emulation), without the mode classifying the access. The vCPU did enter
            // the guest to make it, so what the hardware held for it (a PIR) is already merged.
            _mode.OnGuestEntry(cpu);
            _mode.Ledger.Exit(ExitReason.ApicMmio);
            LocalApic apic = cpu.Apic;
            if (!write)
            {
                result = apic.ReadMmio(l1Address, out read);
            }
            else if (apic.Mode == ApicMode.XApic && l1Address - apic.MmioBase == VirtualApicPage.Eoi)
            {
                // The EOI reaches the software vLAPIC only; the processor keeps the vector in service.
                if (apic.Isr.Highest() >= 0)
                {
                    Counters.EoisLost++;
                }

                result = ApicAccessResult.Ok;
            }
            else
            {
                result = apic.WriteMmio(l1Address, value);
                _machine.RunDueTimers();
            }
        }
        else
        {
            result = write ? cpu.WriteMmio(l1Address, value) : cpu.ReadMmio(l1Address, out read);
        }

        return FromDevice(result, L2AccessTarget.L1Apic, read, l1Address);
    }

    private L2AccessResult FromDevice(ApicAccessResult result, L2AccessTarget target, uint value, ulong l1Address) =>
        result == ApicAccessResult.Unmapped
            ? new L2AccessResult(L2AccessOutcome.Unbacked, target, 0, default, l1Address)
            : new L2AccessResult(L2AccessOutcome.Completed, target, value, default, l1Address);

    private L2AccessResult ExitToL1(int vcpu, L1Exit exit, L2AccessTarget target, ulong l1Address)
    {
        Counters.CountL1Exit(exit.Reason);
        SetGuestMode(vcpu, false);
        return new L2AccessResult(L2AccessOutcome.L1Exit, target, 0, exit, l1Address);
    }

    private VmEntryResult FailEntry(int vcpu, string reason)
    {
        Counters.VmFails++;
        _vmcs02[vcpu] = null;
        _states[vcpu] = NestedVcpuState.InL1;
        return VmEntryResult.InvalidControls(reason);
    }

    private VmEntryResult Stop(int vcpu, NestedInternalError error)
    {
        Counters.InternalErrors++;
        _vmcs02[vcpu] = null;
        _states[vcpu] = NestedVcpuState.Stopped;
        _errors[vcpu] = error;
        SetGuestMode(vcpu, false);
        return VmEntryResult.Stopped(error);
    }

    /// <summary>Records whether <paramref name="vcpu"/> executes L2 and tells the mode when that changes.</summary>
    private void SetGuestMode(int vcpu, bool inL2)
    {
        if (_inGuestMode[vcpu] != inL2)
        {
            _inGuestMode[vcpu] = inL2;
            _mode.OnGuestModeChanged(_machine.GetVcpu(vcpu), inL2);
        }
    }

    private byte? ReadVirtualTaskPriority(Vmcs12 vmcs12) =>
        (vmcs12.VirtualApicAddress & 0xFFF) == 0 && L1Memory.IsRam(vmcs12.VirtualApicAddress)
            ? (byte)L1Memory.Read32(vmcs12.VirtualApicAddress + VirtualApicPage.TaskPriority)
            : null;

    /// <summary>
    /// SDM "APIC-Write Emulation" for 300H: reserved bits 31:20, 17:16 and 13 clear, delivery status
    /// clear, shorthand self, edge, fixed, and vector[7:4] not 0.
    /// </summary>
    private static bool IsVirtualizableSelfIpi(uint low) =>
        (low & (InterruptCommand.ReservedBits | InterruptCommand.DeliveryStatus | InterruptCommand.LevelTriggered | InterruptCommand.DeliveryModeMask)) == 0 &&
        (low & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift == (uint)DestinationShorthand.Self &&
        (low & 0xF0) != 0;

    /// <summary>The offsets APIC-register virtualization serves reads of (virtualization-reference §2.4).</summary>
    private static bool IsVirtualizedRead(uint offset) => offset switch
    {
        0x020 or 0x030 or 0x080 or 0x0B0 or 0x0D0 or 0x0E0 or 0x0F0 => true,
        >= 0x100 and <= 0x270 => true,
        0x280 or 0x300 or 0x310 => true,
        >= 0x320 and <= 0x370 => true,
        0x380 or 0x3E0 => true,
        _ => false,
    };

    /// <summary>The offsets whose writes are virtualized under the controls (virtualization-reference §2.4).</summary>
    private static bool IsVirtualizedWrite(uint offset, bool registerVirtualization, bool delivery)
    {
        if (registerVirtualization)
        {
            return offset switch
            {
                0x020 or 0x080 or 0x0B0 or 0x0D0 or 0x0E0 or 0x0F0 or 0x280 or 0x300 or 0x310 => true,
                >= 0x320 and <= 0x370 => true,
                0x380 or 0x3E0 => true,
                _ => false,
            };
        }

        return offset == VirtualApicPage.TaskPriority || (delivery && offset is VirtualApicPage.Eoi or VirtualApicPage.InterruptCommandLow);
    }
}
