using System.Runtime.CompilerServices;

namespace Vapic.Apic;

// The xAPIC MMIO front end (spec §1) and the register read/write core shared with the x2APIC MSRs.
public sealed partial class LocalApic
{
    /// <summary>
    /// A 32-bit read at physical <paramref name="address"/>. Returns <see cref="ApicAccessResult.Unmapped"/>
    /// (value 0) when this APIC does not decode the address: globally disabled, x2APIC mode (SDM
    /// "x2APIC Register Availability"), or outside the 4 KiB window.
    /// </summary>
    public ApicAccessResult ReadMmio(ulong address, out uint value)
    {
        ulong offset = address - MmioBase;
        if (_mode != ApicMode.XApic || offset >= ApicRegister.MmioWindowSize)
        {
            value = 0;
            return ApicAccessResult.Unmapped;
        }

        // Only bytes 0-3 of a 16-byte slot are registers; bytes 4-15 read 0 without an error (spec §1).
        if ((offset & 0xF) != 0)
        {
            value = 0;
            return ApicAccessResult.Ok;
        }

        int index = (int)(offset >> 4);
        if (index >= ApicRegister.IndexCount || ApicRegister.XApicRegisters[index] == 0)
        {
            // SDM ESR bit 7 "Illegal Register Address" (spec A7): reserved offsets read 0 and latch the error.
            value = 0;
            RaiseError(ApicRegister.ErrorIllegalRegisterAddress);
            return ApicAccessResult.Ok;
        }

        value = ReadRegister(index);
        return ApicAccessResult.Ok;
    }

    /// <summary>
    /// A 32-bit write at physical <paramref name="address"/>. Writes to read-only registers are
    /// ignored; writes to reserved offsets are ignored and set ESR bit 7; writes to bytes 4-15 of a
    /// slot are ignored. Returns <see cref="ApicAccessResult.Unmapped"/> when the address is not decoded.
    /// </summary>
    public ApicAccessResult WriteMmio(ulong address, uint value)
    {
        ulong offset = address - MmioBase;
        if (_mode != ApicMode.XApic || offset >= ApicRegister.MmioWindowSize)
        {
            return ApicAccessResult.Unmapped;
        }

        if ((offset & 0xF) != 0)
        {
            return ApicAccessResult.Ok;
        }

        int index = (int)(offset >> 4);
        if (index >= ApicRegister.IndexCount || ApicRegister.XApicRegisters[index] == 0)
        {
            RaiseError(ApicRegister.ErrorIllegalRegisterAddress);
            return ApicAccessResult.Ok;
        }

        switch (index)
        {
            case ApicRegister.IdIndex:
                // Spec A1 (KVM): bits 31:24 are writable and physical destinations follow them.
                uint id = value & ApicRegister.HighByteMask;
                if (id != _regs.XApicId)
                {
                    _regs.XApicId = id;
                    _host.RoutingChanged(this);
                }

                break;
            case ApicRegister.LogicalDestinationIndex:
                uint ldr = value & ApicRegister.HighByteMask;
                if (ldr != _regs.LogicalDestination)
                {
                    _regs.LogicalDestination = ldr;
                    _host.RoutingChanged(this);
                }

                break;
            case ApicRegister.DestinationFormatIndex:
                uint dfr = value | ApicRegister.DestinationFormatReadAsOne;
                if (dfr != _regs.DestinationFormat)
                {
                    _regs.DestinationFormat = dfr;
                    _host.RoutingChanged(this);
                }

                break;
            case ApicRegister.InterruptCommandIndex:
                // The low half is stored with every bit but delivery status (reserved bits read back,
                // KVM selftest xapic_state_test) and the IPI goes out at once with the stored high half.
                _regs.InterruptCommandLow = value & ~InterruptCommand.DeliveryStatus;
                SendInterruptCommand(_regs.InterruptCommandLow, _regs.InterruptCommandHigh >> InterruptCommand.XApicDestinationShift);
                break;
            case ApicRegister.InterruptCommandHighIndex:
                _regs.InterruptCommandHigh = value & InterruptCommand.XApicDestinationMask;
                break;
            default:
                // Registers shared with x2APIC; in xAPIC mode reserved bits are dropped silently.
                WriteRegister(index, value);
                break;
        }

        return ApicAccessResult.Ok;
    }

    /// <summary>
    /// Reads register <paramref name="index"/> (offset &gt;&gt; 4). The caller has checked that the
    /// register exists in the current mode; for the ICR only the low half is returned.
    /// </summary>
    private uint ReadRegister(int index)
    {
        switch (index)
        {
            case ApicRegister.IdIndex:
                return _mode == ApicMode.X2Apic ? _x2ApicId : _regs.XApicId;
            case ApicRegister.VersionIndex:
                return _version;
            case ApicRegister.TaskPriorityIndex:
                return _regs.TaskPriority;
            case ApicRegister.ProcessorPriorityIndex:
                return _regs.ProcessorPriority;
            case ApicRegister.LogicalDestinationIndex:
                return _regs.LogicalDestination;
            case ApicRegister.DestinationFormatIndex:
                return _regs.DestinationFormat;
            case ApicRegister.SpuriousVectorIndex:
                return _regs.SpuriousVector;
            case >= ApicRegister.InServiceIndex and < ApicRegister.TriggerModeIndex:
                return _regs.Isr.GetChunk(index - ApicRegister.InServiceIndex);
            case >= ApicRegister.TriggerModeIndex and < ApicRegister.InterruptRequestIndex:
                return _regs.Tmr.GetChunk(index - ApicRegister.TriggerModeIndex);
            case >= ApicRegister.InterruptRequestIndex and < ApicRegister.ErrorStatusIndex:
                return _regs.Irr.GetChunk(index - ApicRegister.InterruptRequestIndex);
            case ApicRegister.ErrorStatusIndex:
                return _regs.ErrorStatus;
            case ApicRegister.InterruptCommandIndex:
                return _regs.InterruptCommandLow;
            case ApicRegister.InterruptCommandHighIndex:
                return _regs.InterruptCommandHigh & InterruptCommand.XApicDestinationMask;
            case >= ApicRegister.LvtTimerIndex and <= ApicRegister.LvtErrorIndex:
                return ReadLvt(index - ApicRegister.LvtTimerIndex);
            case ApicRegister.InitialCountIndex:
                // In TSC-deadline mode TMICT reads 0 (SDM "TSC-Deadline Mode"); the write was ignored anyway.
                return TimerModeOf(_regs.Lvt[LvtTimerSlot]) == TimerMode.TscDeadline ? 0 : _regs.InitialCount;
            case ApicRegister.CurrentCountIndex:
                return CurrentCount;
            case ApicRegister.DivideConfigurationIndex:
                return _regs.DivideConfiguration;
            default:
                // APR and RRD read 0 (KVM, QEMU; spec U3); EOI is write-only and reads 0.
                return 0;
        }
    }

    /// <summary>
    /// Writes register <paramref name="index"/> with the semantics common to xAPIC and x2APIC. The
    /// x2APIC front end has already refused reserved bits; here they are masked, as xAPIC does.
    /// ID, LDR, DFR and the ICR are handled by the front ends.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WriteRegister(int index, uint value)
    {
        switch (index)
        {
            case ApicRegister.TaskPriorityIndex:
                _regs.TaskPriority = value & ApicRegister.TaskPriorityMask;
                UpdateProcessorPriority();
                break;
            case ApicRegister.EoiIndex:
                EndOfInterrupt();
                break;
            case ApicRegister.SpuriousVectorIndex:
                WriteSpuriousVector(value);
                break;
            case ApicRegister.ErrorStatusIndex:
                LatchErrors();
                break;
            case >= ApicRegister.LvtTimerIndex and <= ApicRegister.LvtErrorIndex:
                WriteLvt(index - ApicRegister.LvtTimerIndex, value);
                break;
            case ApicRegister.InitialCountIndex:
                WriteInitialCount(value);
                break;
            case ApicRegister.DivideConfigurationIndex:
                WriteDivideConfiguration(value & TimerDivide.WritableBits);
                break;
            case ApicRegister.SelfIpiIndex:
                SendSelfIpi((byte)value);
                break;
            default:
                // VER, APR, PPR, RRD, ISR, TMR, IRR, TMCCT: read-only, writes are ignored (spec §1).
                break;
        }
    }

    /// <summary>
    /// SVR write (SDM "Spurious-Interrupt Vector Register (SVR)", spec §6): bits 7:0, 8, 9 are stored,
    /// bit 12 only when EOI-broadcast suppression is offered. Clearing bit 8 masks every LVT.
    /// </summary>
    private void WriteSpuriousVector(uint value)
    {
        bool wasEnabled = SoftwareEnabled;
        _regs.SpuriousVector = value & _svrWritableBits;
        bool enabled = SoftwareEnabled;
        if (!enabled)
        {
            // SDM "Local APIC State After It Has Been Software Disabled": every LVT mask bit is set.
            for (int i = 0; i < LocalVectorTable.Count; i++)
            {
                _regs.Lvt[i] |= LocalVectorTable.Masked;
            }
        }

        if (enabled != wasEnabled)
        {
            _host.RoutingChanged(this);
        }
    }
}
