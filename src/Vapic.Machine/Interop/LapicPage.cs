using System.Buffers.Binary;
using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>
/// The 1 KiB image of the xAPIC register page (offsets 0x000-0x3FF, each 32-bit register
/// little-endian at its offset) that both KVM (<c>struct kvm_lapic_state</c>) and Xen
/// (<c>hvm_hw_lapic_regs</c>) save, and the helpers both formats share.
/// </summary>
public static class LapicPage
{
    /// <summary>The size of the page image: KVM_APIC_REG_SIZE, 0x400.</summary>
    public const int Size = 0x400;

    /// <summary>Nanoseconds per APIC bus cycle assumed by the interop formats (1 GHz, KVM's APIC bus frequency and Vapic's default).</summary>
    public const int BusCycleNs = 1;

    /// <summary>Register offsets in the page (SDM "Local APIC Register Address Map").</summary>
    public const int Id = 0x020, Version = 0x030, Tpr = 0x080, Apr = 0x090, Ppr = 0x0A0, Eoi = 0x0B0, Ldr = 0x0D0,
        Dfr = 0x0E0, Svr = 0x0F0, Isr = 0x100, Tmr = 0x180, Irr = 0x200, Esr = 0x280, LvtCmci = 0x2F0,
        IcrLow = 0x300, IcrHigh = 0x310, LvtTimer = 0x320, LvtThermal = 0x330, LvtPerformanceCounter = 0x340,
        LvtLint0 = 0x350, LvtLint1 = 0x360, LvtError = 0x370, InitialCount = 0x380, CurrentCount = 0x390, Dcr = 0x3E0;

    /// <summary>Reads the 32-bit register at <paramref name="offset"/>.</summary>
    public static uint Read(ReadOnlySpan<byte> page, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(page.Slice(offset, 4));

    /// <summary>Writes the 32-bit register at <paramref name="offset"/>.</summary>
    public static void Write(Span<byte> page, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(page.Slice(offset, 4), value);

    /// <summary>The timer divisor DCR bits 3, 1, 0 select (SDM "Divide Configuration Register"): 1-128.</summary>
    public static int Divisor(uint dcr)
    {
        int code = (int)(((dcr >> 1) & 4) | (dcr & 3));
        return code == 7 ? 1 : 2 << code;
    }

    /// <summary>PPR from TPR and the highest in-service vector (SDM "Processor Priority Register (PPR)").</summary>
    public static uint ProcessorPriority(LocalApicState s)
    {
        int highest = s.Isr.Highest();
        uint isrv = highest < 0 ? 0u : (uint)highest;
        uint tpr = s.TaskPriority & 0xFF;
        return (tpr >> 4) >= (isrv >> 4) ? tpr : isrv & 0xF0;
    }

    /// <summary>The x2APIC-mode LDR derived from the x2APIC ID (SDM "Logical Destination Mode in x2APIC Mode").</summary>
    public static uint X2ApicLogicalId(uint x2ApicId) => ((x2ApicId >> 4) << 16) | (1u << (int)(x2ApicId & 0xF));

    /// <summary>The current count (TMCCT) of <paramref name="s"/> at its save instant.</summary>
    public static uint CurrentCountOf(LocalApicState s)
    {
        if (!s.TimerCounting || s.InitialCount == 0 || s.TimerElapsedNs < 0)
        {
            return 0;
        }

        long tick = (long)Divisor(s.DivideConfiguration) * BusCycleNs;
        long elapsedTicks = s.TimerElapsedNs / tick;
        return (uint)(s.InitialCount - (elapsedTicks % s.InitialCount));
    }

    /// <summary>
    /// LVT CMCI as this model holds it. A page whose CMCI slot is 0 comes from a hypervisor that
    /// does not offer CMCI (KVM without MCG_CMCI_P, Xen): the slot is unimplemented, which this model
    /// holds as the masked reset value. Any other value is kept, and a restore refuses it if programmed.
    /// </summary>
    internal static uint CmciOf(uint pageValue) => pageValue == 0 ? LocalVectorTable.ResetValue : pageValue;

    /// <summary>
    /// Writes every register of <paramref name="s"/> into <paramref name="page"/> except the ID,
    /// which depends on the format. ICR: bits 31:0 at 0x300 and the destination at 0x310 in both
    /// modes (KVM splits the 64-bit x2APIC ICR the same way).
    /// </summary>
    internal static void WriteRegisters(Span<byte> page, LocalApicState s)
    {
        Write(page, Version, s.Version);
        Write(page, Tpr, s.TaskPriority);
        Write(page, Ppr, ProcessorPriority(s));
        Write(page, Ldr, s.LogicalDestination);
        Write(page, Dfr, s.DestinationFormat);
        Write(page, Svr, s.SpuriousVector);
        for (int i = 0; i < 8; i++)
        {
            Write(page, Isr + (i * 0x10), s.Isr.GetChunk(i));
            Write(page, Tmr + (i * 0x10), s.Tmr.GetChunk(i));
            Write(page, Irr + (i * 0x10), s.Irr.GetChunk(i));
        }

        Write(page, Esr, s.ErrorStatus);
        // KVM and Xen leave LVT CMCI at 0 when CMCI is not offered (their reset masks only the
        // LVTs below VER's max-LVT count, which here is 5: no CMCI), so the unused slot is 0 there.
        Write(page, LvtCmci, s.LvtCmci == LocalVectorTable.ResetValue ? 0 : s.LvtCmci);
        Write(page, IcrLow, s.InterruptCommandLow);
        Write(page, IcrHigh, s.InterruptCommandHigh);
        Write(page, LvtTimer, s.LvtTimer);
        Write(page, LvtThermal, s.LvtThermal);
        Write(page, LvtPerformanceCounter, s.LvtPerformanceCounter);

        // The page shows LINT remote IRR (bit 14) as the guest reads it.
        Write(page, LvtLint0, s.LvtLint0 | (s.Lint0RemoteIrr ? 1u << 14 : 0));
        Write(page, LvtLint1, s.LvtLint1 | (s.Lint1RemoteIrr ? 1u << 14 : 0));
        Write(page, LvtError, s.LvtError);
        Write(page, InitialCount, s.InitialCount);
        Write(page, CurrentCount, CurrentCountOf(s));
        Write(page, Dcr, s.DivideConfiguration);
    }

    /// <summary>
    /// Builds a state from the page's registers, with the identity given and the timer restarted
    /// from the saved TMCCT as KVM's <c>kvm_apic_set_state</c> does: a periodic count at 0 restarts
    /// a full period, a TMCCT above TMICT is clamped to TMICT, a one-shot count at 0 has expired.
    /// </summary>
    internal static LocalApicState ReadRegisters(
        ReadOnlySpan<byte> page, ulong baseMsr, uint x2ApicId, uint xApicId, ulong tscDeadline, ulong tsc)
    {
        ApicMode mode = ApicBaseMsr.GetMode(baseMsr);
        InterruptBitmap isr = default, tmr = default, irr = default;
        for (int i = 0; i < 8; i++)
        {
            isr.SetChunk(i, Read(page, Isr + (i * 0x10)));
            tmr.SetChunk(i, Read(page, Tmr + (i * 0x10)));
            irr.SetChunk(i, Read(page, Irr + (i * 0x10)));
        }

        uint lvtTimer = Read(page, LvtTimer);
        uint initial = Read(page, InitialCount);
        uint current = Math.Min(Read(page, CurrentCount), initial);
        uint dcr = Read(page, Dcr) & 0xB;
        uint timerMode = (lvtTimer >> 17) & 3;
        long tick = (long)Divisor(dcr) * BusCycleNs;
        bool counting = false;
        long elapsedNs = 0;
        long? expiresInNs = null;
        if (timerMode is 0 or 1 && initial != 0)
        {
            if (current == 0 && timerMode == 1)
            {
                current = initial;
            }

            if (current != 0)
            {
                counting = true;
                elapsedNs = (long)(initial - current) * tick;
                expiresInNs = current * tick;
            }

            tscDeadline = 0;
        }
        else if (timerMode == 2)
        {
            initial = 0;
            if (tscDeadline != 0)
            {
                expiresInNs = tscDeadline > tsc ? (long)Math.Min(tscDeadline - tsc, (ulong)long.MaxValue / 2) : 0;
            }
        }
        else
        {
            tscDeadline = 0;
        }

        uint lint0 = Read(page, LvtLint0), lint1 = Read(page, LvtLint1);
        return new LocalApicState
        {
            Mode = mode,
            BaseMsr = baseMsr,
            X2ApicId = x2ApicId,
            Version = Read(page, Version),
            XApicId = xApicId,
            LogicalDestination = mode == ApicMode.X2Apic ? X2ApicLogicalId(x2ApicId) : Read(page, Ldr),
            DestinationFormat = Read(page, Dfr),
            TaskPriority = Read(page, Tpr) & 0xFF,
            SpuriousVector = Read(page, Svr),
            Isr = isr,
            Tmr = tmr,
            Irr = irr,
            ErrorStatus = Read(page, Esr),
            InterruptCommandLow = Read(page, IcrLow) & ~(1u << 12),
            InterruptCommandHigh = Read(page, IcrHigh),
            LvtCmci = CmciOf(Read(page, LvtCmci)),
            LvtTimer = lvtTimer,
            LvtThermal = Read(page, LvtThermal),
            LvtPerformanceCounter = Read(page, LvtPerformanceCounter),
            LvtLint0 = lint0 & ~(1u << 14),
            LvtLint1 = lint1 & ~(1u << 14),
            LvtError = Read(page, LvtError),
            InitialCount = initial,
            DivideConfiguration = dcr,
            TscDeadline = tscDeadline,
            Tsc = tsc,
            TimerCounting = counting,
            TimerElapsedNs = elapsedNs,
            TimerExpiresInNs = expiresInNs,
            Lint0RemoteIrr = (lint0 & (1u << 14)) != 0,
            Lint1RemoteIrr = (lint1 & (1u << 14)) != 0,
        };
    }
}
