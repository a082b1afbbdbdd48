using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Apicv;

// Which guest accesses exit: the APIC-access page (SDM "Virtualizing Memory-Mapped APIC
// Accesses"), x2APIC MSRs under KVM's MSR bitmap (SDM "Virtualizing MSR-Based APIC Accesses"),
// CR8 (SDM "Virtualizing CR8-Based TPR Accesses"), and the APIC-write emulation that follows a
// virtualized write (TPR, EOI and self-IPI virtualization, IPI virtualization).
public sealed partial class ApicvMode
{
    private const uint X2ApicMsrFirst = 0x800;
    private const uint X2ApicMsrLast = 0x8FF;
    private const uint MsrTaskPriority = 0x808;
    private const uint MsrEoi = 0x80B;
    private const uint MsrInterruptCommand = 0x830;
    private const uint MsrCurrentCount = 0x839;
    private const uint MsrSelfIpi = 0x83F;

    private const uint OffsetId = 0x020;
    private const uint OffsetTaskPriority = 0x080;
    private const uint OffsetEoi = 0x0B0;
    private const uint OffsetInterruptCommand = 0x300;
    private const uint OffsetInterruptCommandHigh = 0x310;
    private const uint OffsetSelfIpi = 0x3F0;

    /// <inheritdoc/>
    protected override void ClassifyAccess(Vcpu vcpu, in GuestAccess access)
    {
        _send = SendPath.Hypervisor;
        _accessExited = false;
        ApicvVcpuState state = _vcpus[vcpu.Index];
        if (!IsAccelerated || !Features.TprShadow)
        {
            // Inhibited, or no TPR shadow (and so no APIC-access page, KVM's flexpriority): plain emulation.
            ClassifyEmulated(vcpu, state, in access);
            return;
        }

        switch (access.Kind)
        {
            case GuestAccessKind.MmioRead:
                if (IsApicWindow(vcpu, access.Address))
                {
                    ClassifyApicPageRead(state, (uint)(access.Address - vcpu.Apic.MmioBase));
                }
                else
                {
                    ClassifyEmulated(vcpu, state, in access);
                }

                break;
            case GuestAccessKind.MmioWrite:
                if (IsApicWindow(vcpu, access.Address))
                {
                    ClassifyApicPageWrite(vcpu, state, (uint)(access.Address - vcpu.Apic.MmioBase), (uint)access.Value);
                }
                else
                {
                    ClassifyEmulated(vcpu, state, in access);
                }

                break;
            case GuestAccessKind.MsrRead:
                if (IsVirtualizedX2ApicMsr(vcpu, access.Address))
                {
                    ClassifyX2ApicRead(state, (uint)access.Address);
                }
                else
                {
                    ClassifyEmulated(vcpu, state, in access);
                }

                break;
            case GuestAccessKind.MsrWrite:
                if (IsVirtualizedX2ApicMsr(vcpu, access.Address))
                {
                    ClassifyX2ApicWrite(vcpu, state, (uint)access.Address, access.Value);
                }
                else
                {
                    ClassifyEmulated(vcpu, state, in access);
                }

                break;
            case GuestAccessKind.Cr8Read:
                // MOV from CR8 reads VTPR[7:4]; KVM clears CR8-store exiting with the TPR shadow.
                Accelerated();
                break;
            case GuestAccessKind.Cr8Write:
                if (access.Value > 0xF)
                {
                    // #GP(0) is delivered to the guest without an exit.
                    Accelerated();
                }
                else
                {
                    TprVirtualization(state, (byte)(access.Value << 4));
                }

                break;
        }
    }

    /// <inheritdoc/>
    protected override void CompleteAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
    {
        if (_accessExited)
        {
            // The handler finished and the vCPU re-enters: KVM reprograms the TPR threshold.
            _vcpus[vcpu.Index].MarkReentry();
        }

        _send = SendPath.Hypervisor;
        _accessExited = false;
    }

    /// <summary>Plain-emulation accounting (the base class's), remembering the exit for the vCPU.</summary>
    private void ClassifyEmulated(Vcpu vcpu, ApicvVcpuState state, in GuestAccess access)
    {
        ExitReason? reason = access.Kind switch
        {
            GuestAccessKind.MmioRead or GuestAccessKind.MmioWrite => ClassifyMmio(vcpu, access.Address),
            GuestAccessKind.MsrRead => access.Address == Vcpu.MsrTsc ? null : ExitReason.MsrRead,
            GuestAccessKind.MsrWrite => ExitReason.MsrWrite,
            GuestAccessKind.Cr8Read => ExitReason.Cr8Read,
            _ => ExitReason.Cr8Write,
        };
        AccountEmulatedAccess(vcpu, in access);
        if (reason is { } r)
        {
            _accessExited = true;
            state.LastExit = new ApicvExit(r, 0);
        }
    }

    /// <summary>
    /// A 32-bit read at <paramref name="offset"/> of the APIC-access page: virtualized (served
    /// from the virtual-APIC page) only if it lies entirely inside one listed 4-byte window
    /// (SDM "Virtualizing Reads from the APIC-Access Page"); otherwise an APIC-access exit.
    /// </summary>
    private void ClassifyApicPageRead(ApicvVcpuState state, uint offset)
    {
        bool virtualized = (offset & 0xF) == 0 &&
            (Features.ApicRegisterVirtualization ? IsVirtualizedRead(offset) : offset == OffsetTaskPriority);
        if (virtualized)
        {
            Accelerated();
        }
        else
        {
            Exit(state, ExitReason.ApicAccess, offset | ApicvExit.LinearRead);
        }
    }

    /// <summary>
    /// A 32-bit write at <paramref name="offset"/> of the APIC-access page (SDM "Determining
    /// Whether a Write Access is Virtualized", "APIC-Write Emulation"): not virtualized → APIC-access
    /// exit; virtualized → the data lands in the virtual-APIC page and APIC-write emulation runs.
    /// </summary>
    private void ClassifyApicPageWrite(Vcpu vcpu, ApicvVcpuState state, uint offset, uint value)
    {
        if ((offset & 0xF) != 0 || !IsVirtualizedWrite(offset))
        {
            Exit(state, ExitReason.ApicAccess, offset | ApicvExit.LinearWrite);
            return;
        }

        switch (offset)
        {
            case OffsetTaskPriority:
                // VTPR bytes 3:1 are cleared, then TPR virtualization.
                TprVirtualization(state, (byte)value);
                break;
            case OffsetEoi:
                if (Features.VirtualInterruptDelivery)
                {
                    EoiVirtualization(vcpu, state);
                }
                else
                {
                    Exit(state, ExitReason.ApicWrite, offset);
                }

                break;
            case OffsetInterruptCommand:
                // The xAPIC destination is VICR_HI[31:24], as the guest last wrote it.
                ClassifyInterruptCommandWrite(state, value, (uint)(vcpu.Apic.InterruptCommandValue >> 56), InterruptMessage.XApicBroadcast, selfIpiVirtualization: true);
                break;
            case OffsetInterruptCommandHigh:
                // VICR_HI bytes 2:0 are cleared; nothing else happens.
                Accelerated();
                break;
            default:
                // Every other virtualized offset (ID, LDR, DFR, SVR, ESR, LVTs, timer) needs the
                // hypervisor: a trap-like APIC-write exit with the offset as qualification.
                Exit(state, ExitReason.ApicWrite, offset);
                break;
        }
    }

    /// <summary>
    /// APIC-write emulation of an ICR write: self-IPI virtualization (VID, xAPIC only), IPI
    /// virtualization (IPIv), otherwise an APIC-write exit at 300H and the hypervisor sends it.
    /// </summary>
    private void ClassifyInterruptCommandWrite(ApicvVcpuState state, uint low, uint destination, uint broadcast, bool selfIpiVirtualization)
    {
        if (selfIpiVirtualization && Features.VirtualInterruptDelivery && IsVirtualizableSelfIpi(low))
        {
            Accelerated();
            _send = SendPath.SelfIpiVirtualized;
        }
        else if (IsVirtualizableIpi(low, destination, broadcast))
        {
            Accelerated();
            _send = SendPath.IpiVirtualized;
        }
        else
        {
            Exit(state, ExitReason.ApicWrite, OffsetInterruptCommand);
        }
    }

    /// <summary>
    /// SDM "APIC-Write Emulation" for 300H: reserved bits 31:20, 17:16 and 13 clear, delivery
    /// status clear, shorthand self, edge, fixed, and a vector of at least 16.
    /// </summary>
    private static bool IsVirtualizableSelfIpi(uint low) =>
        (low & (InterruptCommand.ReservedBits | InterruptCommand.DeliveryStatus | InterruptCommand.LevelTriggered | InterruptCommand.DeliveryModeMask)) == 0 &&
        (low & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift == (uint)DestinationShorthand.Self &&
        (low & 0xF0) != 0;

    /// <summary>
    /// IPI virtualization (virtualization-reference §2.8): fixed, edge, physical, no shorthand, a
    /// unicast destination with a valid PID-pointer entry. Adopted in addition: reserved and
    /// delivery-status bits clear and a vector of at least 16 (as for self-IPI virtualization),
    /// so that a send with an illegal vector still raises the sender's ESR bit in emulation.
    /// </summary>
    private bool IsVirtualizableIpi(uint low, uint destination, uint broadcast) =>
        Features.IpiVirtualization &&
        (low & (InterruptCommand.ReservedBits | InterruptCommand.DeliveryStatus | InterruptCommand.LevelTriggered |
                InterruptCommand.DeliveryModeMask | InterruptCommand.LogicalDestination | InterruptCommand.ShorthandMask)) == 0 &&
        (low & 0xF0) != 0 &&
        destination != broadcast &&
        _pidTable[destination] is not null;

    /// <summary>"Virtualize x2APIC mode" is set only for a vCPU whose LAPIC is in x2APIC mode; it covers MSRs 800H-8FFH.</summary>
    private static bool IsVirtualizedX2ApicMsr(Vcpu vcpu, ulong msr) =>
        vcpu.Apic.Mode == ApicMode.X2Apic && msr - X2ApicMsrFirst <= X2ApicMsrLast - X2ApicMsrFirst;

    /// <summary>
    /// RDMSR of an x2APIC register (KVM <c>vmx_update_msr_bitmap_x2apic</c>): with APIC-register
    /// virtualization every readable register passes through except the current count; with the
    /// TPR shadow alone only TPR. Everything else is intercepted.
    /// </summary>
    private void ClassifyX2ApicRead(ApicvVcpuState state, uint msr)
    {
        bool passThrough = Features.ApicRegisterVirtualization
            ? IsReadableX2ApicRegister(msr) && msr != MsrCurrentCount
            : msr == MsrTaskPriority;
        if (passThrough)
        {
            Accelerated();
        }
        else
        {
            Exit(state, ExitReason.MsrRead, 0);
        }
    }

    /// <summary>
    /// WRMSR of an x2APIC register: KVM intercepts every write except TPR, EOI and SELF IPI (with
    /// virtual-interrupt delivery) and the ICR (with IPIv); those are virtualized as SDM
    /// "Virtualizing MSR-Based APIC Accesses" describes, #GP included.
    /// </summary>
    private void ClassifyX2ApicWrite(Vcpu vcpu, ApicvVcpuState state, uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrTaskPriority:
                if (value > 0xFF)
                {
                    Accelerated(); // EDX:EAX[63:8] ≠ 0: #GP without exit (TV20).
                }
                else
                {
                    TprVirtualization(state, (byte)value);
                }

                return;
            case MsrEoi when Features.VirtualInterruptDelivery:
                if (value != 0)
                {
                    Accelerated(); // A non-zero EOI value: #GP without exit (TV18).
                }
                else
                {
                    EoiVirtualization(vcpu, state);
                }

                return;
            case MsrSelfIpi when Features.VirtualInterruptDelivery:
                if (value > 0xFF)
                {
                    Accelerated(); // #GP without exit.
                }
                else if ((value & 0xF0) == 0)
                {
                    // Adopted (reference §2.5): vector[7:4] = 0 exits with qualification 3F0H (TV19).
                    Exit(state, ExitReason.ApicWrite, OffsetSelfIpi);
                }
                else
                {
                    Accelerated();
                    _send = SendPath.SelfIpiVirtualized;
                }

                return;
            case MsrInterruptCommand when Features.IpiVirtualization:
                if (((uint)value & InterruptCommand.ReservedBits) != 0)
                {
                    Accelerated(); // Reserved ICR bits: #GP without exit.
                }
                else
                {
                    // Non-virtualizable ICR values exit with qualification 300H, also in x2APIC mode.
                    ClassifyInterruptCommandWrite(state, (uint)value, (uint)(value >> 32), InterruptMessage.X2ApicBroadcast, selfIpiVirtualization: false);
                }

                return;
            default:
                // Intercepted: timer (initial count, LVT timer, divide), LVTs, SVR, ESR, and the
                // ICR without IPIv.
                Exit(state, ExitReason.MsrWrite, 0);
                return;
        }
    }

    /// <summary>
    /// TPR virtualization (SDM "TPR Virtualization"): with virtual-interrupt delivery, PPR
    /// virtualization and evaluation, never an exit; otherwise a trap-like TPR-below-threshold
    /// exit when the new VTPR[7:4] is below the threshold.
    /// </summary>
    private void TprVirtualization(ApicvVcpuState state, byte newTpr)
    {
        if (!Features.VirtualInterruptDelivery && (newTpr >> 4) < state.TprThreshold)
        {
            Exit(state, ExitReason.TprBelowThreshold, 0);
        }
        else
        {
            Accelerated();
        }
    }

    /// <summary>
    /// EOI virtualization (SDM "EOI Virtualization"): SVI leaves VISR; if its EOI-exit bitmap bit
    /// is set, a trap-like EOI-induced exit with the vector as qualification follows.
    /// </summary>
    private void EoiVirtualization(Vcpu vcpu, ApicvVcpuState state)
    {
        int vector = vcpu.Apic.Isr.Highest();
        if (vector >= 0 && vcpu.Apic.Tmr.Get(vector))
        {
            Exit(state, ExitReason.EoiInduced, (uint)vector);
        }
        else
        {
            Accelerated();
        }
    }

    /// <summary>The xAPIC offsets whose reads APIC-register virtualization serves from the virtual-APIC page.</summary>
    private static bool IsVirtualizedRead(uint offset) => offset switch
    {
        OffsetId or 0x030 or OffsetTaskPriority or OffsetEoi or 0x0D0 or 0x0E0 or 0x0F0 => true,
        >= 0x100 and <= 0x270 => true, // ISR, TMR, IRR
        0x280 or OffsetInterruptCommand or OffsetInterruptCommandHigh => true,
        >= 0x320 and <= 0x370 => true, // LVTs
        0x380 or 0x3E0 => true,
        _ => false, // APR, PPR, RRD, CMCI, current count, reserved offsets
    };

    /// <summary>The xAPIC offsets whose writes are virtualized under the current controls.</summary>
    private bool IsVirtualizedWrite(uint offset)
    {
        if (Features.ApicRegisterVirtualization)
        {
            return offset switch
            {
                OffsetId or OffsetTaskPriority or OffsetEoi or 0x0D0 or 0x0E0 or 0x0F0 or 0x280 => true,
                OffsetInterruptCommand or OffsetInterruptCommandHigh => true,
                >= 0x320 and <= 0x370 => true,
                0x380 or 0x3E0 => true,
                _ => false,
            };
        }

        return offset == OffsetTaskPriority ||
            (Features.VirtualInterruptDelivery && offset is OffsetEoi or OffsetInterruptCommand);
    }

    /// <summary>The x2APIC registers RDMSR may read (KVM <c>kvm_lapic_readable_reg_mask</c>, no CMCI).</summary>
    private static bool IsReadableX2ApicRegister(uint msr) => msr switch
    {
        0x802 or 0x803 or MsrTaskPriority or 0x80A or 0x80D or 0x80F => true,
        >= 0x810 and <= 0x828 => true, // ISR, TMR, IRR, ESR
        MsrInterruptCommand => true,
        >= 0x832 and <= MsrCurrentCount => true, // LVTs, initial and current count
        0x83E => true,
        _ => false,
    };

    private void Accelerated() => Ledger.Event(CostEvent.AcceleratedAccess);

    private void Exit(ApicvVcpuState state, ExitReason reason, uint qualification)
    {
        Ledger.Exit(reason);
        state.LastExit = new ApicvExit(reason, qualification);
        _accessExited = true;
    }
}
