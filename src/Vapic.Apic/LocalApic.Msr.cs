namespace Vapic.Apic;

// The MSR front end: IA32_APIC_BASE (spec §3), IA32_TSC_DEADLINE (§9), the x2APIC registers (§2), CR8 (§5).
public sealed partial class LocalApic
{
    /// <summary>IA32_TSC_DEADLINE.</summary>
    public const uint TscDeadlineMsr = 0x6E0;

    /// <summary>True for the MSRs this device owns: 0x1B, 0x6E0 and the x2APIC range 0x800-0xBFF.</summary>
    public static bool IsApicMsr(uint msr) =>
        msr == ApicBaseMsr.Msr || msr == TscDeadlineMsr || msr - ApicRegister.X2ApicMsrBase <= ApicRegister.X2ApicMsrLast - ApicRegister.X2ApicMsrBase;

    /// <summary>
    /// RDMSR. x2APIC registers fault unless the APIC is in x2APIC mode and the register is readable
    /// (SDM "x2APIC Register Availability" and the x2APIC register table); MSRs this device does not
    /// own fault as well.
    /// </summary>
    public ApicAccessResult ReadMsr(uint msr, out ulong value)
    {
        uint index = msr - ApicRegister.X2ApicMsrBase;
        if (index < ApicRegister.IndexCount)
        {
            if (_mode == ApicMode.X2Apic && (ApicRegister.X2ApicAccess[(int)index] & ApicRegister.X2ApicReadable) != 0)
            {
                value = index == ApicRegister.InterruptCommandIndex ? InterruptCommandValue : ReadRegister((int)index);
                return ApicAccessResult.Ok;
            }

            value = 0;
            return ApicAccessResult.GeneralProtection;
        }

        switch (msr)
        {
            case ApicBaseMsr.Msr:
                value = _regs.BaseMsr;
                return ApicAccessResult.Ok;
            case TscDeadlineMsr:
                // Outside TSC-deadline mode the MSR reads 0 (SDM "TSC-Deadline Mode").
                value = TimerModeOf(_regs.Lvt[LvtTimerSlot]) == TimerMode.TscDeadline ? _regs.TscDeadline : 0;
                return ApicAccessResult.Ok;
            default:
                // 0x840-0xBFF are reserved for the APIC and fault; anything else is not ours.
                value = 0;
                return ApicAccessResult.GeneralProtection;
        }
    }

    /// <summary>
    /// WRMSR. In x2APIC mode a write to a read-only or absent register, a 32-bit register with any of
    /// bits 63:32 set, or a register with reserved bits set faults (spec §2, A3) and changes nothing.
    /// </summary>
    public ApicAccessResult WriteMsr(uint msr, ulong value)
    {
        uint index = msr - ApicRegister.X2ApicMsrBase;
        if (index < ApicRegister.IndexCount)
        {
            if (_mode != ApicMode.X2Apic || (ApicRegister.X2ApicAccess[(int)index] & ApicRegister.X2ApicWritable) == 0)
            {
                return ApicAccessResult.GeneralProtection;
            }

            if (index == ApicRegister.InterruptCommandIndex)
            {
                return WriteX2ApicInterruptCommand(value);
            }

            uint allowed = index == ApicRegister.SpuriousVectorIndex ? _svrWritableBits : ApicRegister.X2ApicWritableBits[(int)index];
            if ((value & ~(ulong)allowed) != 0)
            {
                // Covers bits 63:32, reserved bits (A3), a non-zero EOI (A4), ESR and SELF IPI.
                return ApicAccessResult.GeneralProtection;
            }

            WriteRegister((int)index, (uint)value);
            return ApicAccessResult.Ok;
        }

        switch (msr)
        {
            case ApicBaseMsr.Msr:
                return WriteBaseMsr(value);
            case TscDeadlineMsr:
                WriteTscDeadline(value);
                return ApicAccessResult.Ok;
            default:
                return ApicAccessResult.GeneralProtection;
        }
    }

    /// <summary>MOV from CR8: TPR bits 7:4 (SDM "Task Priority in IA-32e Mode"). Works in every APIC mode.</summary>
    public ulong ReadCr8() => _regs.TaskPriority >> 4;

    /// <summary>
    /// MOV to CR8: TPR := CR8[3:0] &lt;&lt; 4. Bits 63:4 set raise #GP. Works while the APIC is
    /// globally disabled (kvm-unit-tests <c>test_apic_disable</c>).
    /// </summary>
    public ApicAccessResult WriteCr8(ulong value)
    {
        if (value > 0xF)
        {
            return ApicAccessResult.GeneralProtection;
        }

        _regs.TaskPriority = (uint)value << 4;
        UpdateProcessorPriority();
        return ApicAccessResult.Ok;
    }

    /// <summary>
    /// IA32_APIC_BASE write: the state machine of SDM "x2APIC State Transitions" (spec §3 table),
    /// reserved-bit and MAXPHYADDR checks, the locked-x2APIC rule, and the mode-change effects.
    /// </summary>
    private ApicAccessResult WriteBaseMsr(ulong value)
    {
        ulong old = _regs.BaseMsr;
        if (value == old)
        {
            // KVM kvm_apic_set_base: rewriting the current value is a no-op.
            return ApicAccessResult.Ok;
        }

        if ((value & _baseReservedBits) != 0)
        {
            return ApicAccessResult.GeneralProtection;
        }

        bool enable = (value & ApicBaseMsr.GlobalEnable) != 0;
        bool extended = (value & ApicBaseMsr.X2ApicEnable) != 0;
        if (extended && !enable)
        {
            // (EN, EXTD) = (0, 1) is invalid from every state.
            return ApicAccessResult.GeneralProtection;
        }

        if (Options.X2ApicLocked && !(enable && extended))
        {
            // Locked x2APIC (IA32_XAPIC_DISABLE_STATUS.LEGACY_XAPIC_DISABLED): leaving x2APIC faults.
            return ApicAccessResult.GeneralProtection;
        }

        ApicMode oldMode = _mode;
        ApicMode newMode = ApicBaseMsr.GetMode(value);
        if ((oldMode == ApicMode.Disabled && newMode == ApicMode.X2Apic) ||
            (oldMode == ApicMode.X2Apic && newMode == ApicMode.XApic))
        {
            // x2APIC is entered only from xAPIC and left only through disabled.
            return ApicAccessResult.GeneralProtection;
        }

        _regs.BaseMsr = value;
        if (newMode == oldMode)
        {
            // A base move in xAPIC mode relocates the window (spec A16); MmioBase follows BaseMsr.
            return ApicAccessResult.Ok;
        }

        _mode = newMode;
        if (oldMode == ApicMode.Disabled)
        {
            // disabled → xAPIC: the ID is rewritten from the initial ID (KVM __kvm_apic_set_base).
            // Everything else survives the disable (spec A15); only an x2APIC-format LDR left behind
            // is cut back to the xAPIC field.
            _regs.XApicId = (Options.InitialId & 0xFF) << 24;
            _regs.LogicalDestination &= ApicRegister.HighByteMask;
            _regs.InterruptCommandHigh &= InterruptCommand.XApicDestinationMask;
        }
        else if (newMode == ApicMode.X2Apic)
        {
            // xAPIC → x2APIC: the 32-bit ID takes over and LDR becomes the derived, read-only value
            // (SDM "x2APIC State Transitions"); other registers are kept (KVM).
            _regs.LogicalDestination = _x2ApicLogicalId;
        }

        _host.RoutingChanged(this);
        return ApicAccessResult.Ok;
    }
}
