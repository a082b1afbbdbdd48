namespace Vapic.Apic.SavedState;

/// <summary>
/// The saved state of one local APIC: every architectural register, the hidden state behind them
/// (pending ESR bits, latched events, LINT levels and remote IRR) and the timer, with every time
/// expressed relative to the save instant so that a restore at another absolute virtual time
/// continues exactly. Produced by <see cref="LocalApic.Save"/>, consumed by
/// <see cref="LocalApic.Restore"/>; a plain value with no reference to a live device.
/// </summary>
/// <remarks>
/// Derived registers are not stored: PPR follows from TPR and ISR, the timer divisor from DCR, and
/// the x2APIC-mode LDR from the x2APIC ID (it is stored, and checked). Statistics
/// (<see cref="LocalApic.Counters"/>) are not state.
/// </remarks>
public sealed record LocalApicState
{
    /// <summary>The global mode; must be the one <see cref="BaseMsr"/> EN and EXTD select.</summary>
    public ApicMode Mode { get; init; }

    /// <summary>Whether the x2APIC was locked (<see cref="LocalApicOptions.X2ApicLocked"/>); must match the restoring APIC.</summary>
    public bool X2ApicLocked { get; init; }

    /// <summary>IA32_APIC_BASE (MSR 0x1B).</summary>
    public ulong BaseMsr { get; init; }

    /// <summary>The 32-bit x2APIC ID, fixed by the platform; must equal the restoring APIC's initial ID.</summary>
    public uint X2ApicId { get; init; }

    /// <summary>VER (0x030); must equal the restoring APIC's (the EOI-broadcast-suppression bit is configuration).</summary>
    public uint Version { get; init; }

    /// <summary>The xAPIC ID register (0x020) as written: ID in bits 31:24. Kept while in x2APIC mode.</summary>
    public uint XApicId { get; init; }

    /// <summary>LDR (0x0D0): xAPIC format (bits 31:24) or, in x2APIC mode, the value derived from the x2APIC ID.</summary>
    public uint LogicalDestination { get; init; }

    /// <summary>DFR (0x0E0): model in bits 31:28, bits 27:0 ones.</summary>
    public uint DestinationFormat { get; init; }

    /// <summary>TPR (0x080), bits 7:0.</summary>
    public uint TaskPriority { get; init; }

    /// <summary>SVR (0x0F0).</summary>
    public uint SpuriousVector { get; init; }

    /// <summary>ISR (0x100-0x170).</summary>
    public InterruptBitmap Isr { get; init; }

    /// <summary>TMR (0x180-0x1F0).</summary>
    public InterruptBitmap Tmr { get; init; }

    /// <summary>IRR (0x200-0x270).</summary>
    public InterruptBitmap Irr { get; init; }

    /// <summary>ESR (0x280) as the guest reads it.</summary>
    public uint ErrorStatus { get; init; }

    /// <summary>Errors detected since the last ESR write, made visible by the next one.</summary>
    public uint PendingErrors { get; init; }

    /// <summary>ICR low (0x300) as stored (delivery status always 0).</summary>
    public uint InterruptCommandLow { get; init; }

    /// <summary>ICR high: the xAPIC register 0x310 (bits 31:24) or the 32-bit x2APIC destination.</summary>
    public uint InterruptCommandHigh { get; init; }

    /// <summary>LVT CMCI (0x2F0). CMCI is not offered (VER Max LVT = 5), so this is always 0x0001_0000.</summary>
    public uint LvtCmci { get; init; } = LocalVectorTable.ResetValue;

    /// <summary>LVT Timer (0x320) as stored.</summary>
    public uint LvtTimer { get; init; }

    /// <summary>LVT Thermal (0x330) as stored.</summary>
    public uint LvtThermal { get; init; }

    /// <summary>LVT Performance counter (0x340) as stored.</summary>
    public uint LvtPerformanceCounter { get; init; }

    /// <summary>LVT LINT0 (0x350) as stored, without the remote IRR bit (see <see cref="Lint0RemoteIrr"/>).</summary>
    public uint LvtLint0 { get; init; }

    /// <summary>LVT LINT1 (0x360) as stored, without the remote IRR bit (see <see cref="Lint1RemoteIrr"/>).</summary>
    public uint LvtLint1 { get; init; }

    /// <summary>LVT Error (0x370) as stored.</summary>
    public uint LvtError { get; init; }

    /// <summary>TMICT (0x380) as written.</summary>
    public uint InitialCount { get; init; }

    /// <summary>DCR (0x3E0): bits 3, 1, 0.</summary>
    public uint DivideConfiguration { get; init; }

    /// <summary>IA32_TSC_DEADLINE as stored (0 = disarmed; always 0 outside TSC-deadline mode).</summary>
    public ulong TscDeadline { get; init; }

    /// <summary>
    /// The guest TSC at the save instant. A restore sets the TSC offset so that the TSC continues
    /// from this value, which keeps <see cref="TscDeadline"/> the same number of TSC ticks ahead. At
    /// 1 GHz, or restored at the saved virtual time (as a machine restore is), it also expires at the
    /// same distance in virtual time; otherwise the part of a tick already elapsed at the save may
    /// move it by less than one tick.
    /// </summary>
    public ulong Tsc { get; init; }

    /// <summary>The one-shot or periodic count is running (armed and, for one-shot, not yet expired).</summary>
    public bool TimerCounting { get; init; }

    /// <summary>
    /// Nanoseconds from the count's time origin to the save instant (TMCCT = TMICT − ⌊elapsed / tick⌋ mod
    /// TMICT); 0 when <see cref="TimerCounting"/> is false.
    /// </summary>
    public long TimerElapsedNs { get; init; }

    /// <summary>
    /// Nanoseconds from the save instant to the next expiry of the APIC timer or TSC deadline (0 or
    /// negative when due but not yet fired); null when nothing is armed.
    /// </summary>
    public long? TimerExpiresInNs { get; init; }

    /// <summary>The LINT0 input line is asserted.</summary>
    public bool Lint0Asserted { get; init; }

    /// <summary>The LINT1 input line is asserted.</summary>
    public bool Lint1Asserted { get; init; }

    /// <summary>LVT LINT0 remote IRR: a level-triggered LINT0 interrupt awaits its EOI.</summary>
    public bool Lint0RemoteIrr { get; init; }

    /// <summary>LVT LINT1 remote IRR (LINT1 has no level mode, so this is always false).</summary>
    public bool Lint1RemoteIrr { get; init; }

    /// <summary>SMI, INIT, NMI, ExtINT and SIPI latched for the CPU.</summary>
    public ApicEvents PendingEvents { get; init; }

    /// <summary>The vector of the latched SIPI.</summary>
    public byte StartupVector { get; init; }
}
