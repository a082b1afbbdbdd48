namespace Vapic.Apic;

/// <summary>The local interrupt sources of the local vector table, in register order (0x320-0x370).</summary>
public enum LvtEntry : byte
{
    /// <summary>LVT Timer (0x320 / MSR 0x832).</summary>
    Timer,

    /// <summary>LVT Thermal sensor (0x330 / MSR 0x833).</summary>
    Thermal,

    /// <summary>LVT Performance-monitoring counters (0x340 / MSR 0x834).</summary>
    PerformanceCounter,

    /// <summary>LVT LINT0 (0x350 / MSR 0x835).</summary>
    Lint0,

    /// <summary>LVT LINT1 (0x360 / MSR 0x836).</summary>
    Lint1,

    /// <summary>LVT Error (0x370 / MSR 0x837).</summary>
    Error,
}

/// <summary>The LVT Timer mode field, bits 18:17 (SDM "Local Vector Table", "TSC-Deadline Mode").</summary>
public enum TimerMode : byte
{
    /// <summary>00: one-shot using the initial count.</summary>
    OneShot = 0,

    /// <summary>01: periodic reload of the initial count.</summary>
    Periodic = 1,

    /// <summary>10: TSC-deadline, armed through IA32_TSC_DEADLINE.</summary>
    TscDeadline = 2,

    /// <summary>11: reserved; stored, the timer stays inert.</summary>
    Reserved = 3,
}

/// <summary>
/// Field layout, writable masks and reset value of the local vector table registers (SDM "Local
/// Vector Table"). Only the bits listed per LVT are stored on an xAPIC write; an x2APIC write with any
/// other bit set faults (see <see cref="ApicRegister"/>).
/// </summary>
public static class LocalVectorTable
{
    /// <summary>The number of LVT registers modelled (no CMCI).</summary>
    public const int Count = 6;

    /// <summary>Every LVT at RESET and INIT: masked, vector 0.</summary>
    public const uint ResetValue = 0x0001_0000;

    /// <summary>Vector, bits 7:0.</summary>
    public const uint VectorMask = 0xFF;

    /// <summary>Delivery mode, bits 10:8.</summary>
    public const uint DeliveryModeMask = 0x700;

    /// <summary>Shift of the delivery-mode field.</summary>
    public const int DeliveryModeShift = 8;

    /// <summary>Delivery status, bit 12: read-only; always 0 here because delivery is instantaneous (spec A2).</summary>
    public const uint DeliveryStatus = 1u << 12;

    /// <summary>Interrupt input pin polarity, bit 13 (LINT only); stored, not interpreted (spec A23).</summary>
    public const uint InputPolarity = 1u << 13;

    /// <summary>Remote IRR, bit 14 (LINT only): read-only, reflects the live state (spec A2).</summary>
    public const uint RemoteIrr = 1u << 14;

    /// <summary>Trigger mode, bit 15 (LINT only): 1 = level.</summary>
    public const uint LevelTriggered = 1u << 15;

    /// <summary>Mask, bit 16: 1 = masked.</summary>
    public const uint Masked = 1u << 16;

    /// <summary>Timer mode, bits 18:17 (LVT Timer only).</summary>
    public const uint TimerModeMask = 3u << 17;

    /// <summary>Shift of the timer-mode field.</summary>
    public const int TimerModeShift = 17;

    /// <summary>LVT Timer stored bits: vector, mask, timer mode (bit 18 because TSC-deadline is enumerated).</summary>
    public const uint TimerWritableBits = 0x0007_00FF;

    /// <summary>LVT Thermal stored bits: vector, delivery mode, mask.</summary>
    public const uint ThermalWritableBits = 0x0001_07FF;

    /// <summary>LVT Performance counter stored bits: vector, delivery mode, mask.</summary>
    public const uint PerformanceCounterWritableBits = 0x0001_07FF;

    /// <summary>LVT LINT0/LINT1 stored bits: vector, delivery mode, polarity, trigger, mask.</summary>
    public const uint LintWritableBits = 0x0001_A7FF;

    /// <summary>LVT Error stored bits: vector, mask.</summary>
    public const uint ErrorWritableBits = 0x0001_00FF;

    /// <summary>The stored bits of an xAPIC write to <paramref name="entry"/>.</summary>
    public static uint WritableBits(LvtEntry entry) => entry switch
    {
        LvtEntry.Timer => TimerWritableBits,
        LvtEntry.Thermal => ThermalWritableBits,
        LvtEntry.PerformanceCounter => PerformanceCounterWritableBits,
        LvtEntry.Lint0 or LvtEntry.Lint1 => LintWritableBits,
        _ => ErrorWritableBits,
    };

    /// <summary>The xAPIC offset of <paramref name="entry"/>.</summary>
    public static int Offset(LvtEntry entry) => ApicRegister.LvtTimerOffset + ((int)entry << 4);

    /// <summary>The delivery mode field of an LVT value.</summary>
    public static DeliveryMode GetDeliveryMode(uint lvt) => (DeliveryMode)((lvt & DeliveryModeMask) >> DeliveryModeShift);

    /// <summary>The timer mode field of an LVT Timer value.</summary>
    public static TimerMode GetTimerMode(uint lvt) => (TimerMode)((lvt & TimerModeMask) >> TimerModeShift);

    /// <summary>
    /// Whether <paramref name="entry"/> can deliver <paramref name="mode"/>: Timer and Error are
    /// Fixed only (they have no mode field); Thermal and Performance counter take Fixed, SMI and NMI;
    /// LINT0/LINT1 add INIT and ExtINT. Anything else is stored but delivers nothing (spec §7, U4).
    /// </summary>
    public static bool SupportsDeliveryMode(LvtEntry entry, DeliveryMode mode) => entry switch
    {
        LvtEntry.Timer or LvtEntry.Error => mode == DeliveryMode.Fixed,
        LvtEntry.Lint0 or LvtEntry.Lint1 =>
            mode is DeliveryMode.Fixed or DeliveryMode.Smi or DeliveryMode.Nmi or DeliveryMode.Init or DeliveryMode.ExtInt,
        _ => mode is DeliveryMode.Fixed or DeliveryMode.Smi or DeliveryMode.Nmi,
    };
}
