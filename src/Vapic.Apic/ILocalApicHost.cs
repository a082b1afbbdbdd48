namespace Vapic.Apic;

/// <summary>
/// The few platform services a local APIC needs during an access. The APIC never reaches into
/// other devices: it hands messages (IPIs, EOI broadcasts) to its host and reports changes of
/// its timer deadline and of its routing identity, and the host decides what follows.
/// Implementations must not allocate on these paths.
/// </summary>
public interface ILocalApicHost
{
    /// <summary>The current virtual time in nanoseconds.</summary>
    long Now { get; }

    /// <summary>Routes an IPI written to ICR or SELF_IPI by <paramref name="source"/>.</summary>
    void SendIpi(LocalApic source, in InterruptMessage message);

    /// <summary>
    /// An EOI for a level-triggered vector that must be broadcast to the IOAPICs (TMR set and
    /// EOI-broadcast suppression off; SDM "EOI Register").
    /// </summary>
    void BroadcastEoi(LocalApic source, byte vector);

    /// <summary><see cref="LocalApic.TimerDeadline"/> of <paramref name="apic"/> changed.</summary>
    void TimerChanged(LocalApic apic);

    /// <summary>
    /// Something destination matching depends on changed: the mode (disabled, xAPIC, x2APIC), the
    /// APIC ID, LDR, DFR or the software-enable bit. Routing tables must be rebuilt.
    /// </summary>
    void RoutingChanged(LocalApic apic);

    /// <summary>
    /// <paramref name="apic"/> is about to deliver an interrupt it raises itself through LVT
    /// <paramref name="source"/> (the timer expired, LINT0/LINT1 asserted, the thermal sensor or
    /// performance counter tripped, an error was detected): <paramref name="mode"/> is the LVT's
    /// delivery mode (always <see cref="DeliveryMode.Fixed"/> for the timer and error LVTs) and
    /// <paramref name="vector"/> its vector. Returning false refuses the delivery: nothing is set
    /// in IRR and no event is latched (a virtualization whose hardware filters what the hypervisor
    /// may inject, such as Secure AVIC's ALLOWED_IRR, says no). The LVT's own state (timer re-arm,
    /// the performance counter's mask) advances as usual. Called only when the LVT is unmasked and
    /// the APIC enabled; on the timer-expiry path, so it must be cheap and must not allocate.
    /// </summary>
    /// <remarks>The default allows every local interrupt (bare emulation).</remarks>
    bool AllowLocalInterrupt(LocalApic apic, LvtEntry source, DeliveryMode mode, byte vector) => true;
}

/// <summary>The APIC's global mode as selected by IA32_APIC_BASE EN and EXTD (SDM "x2APIC Operating Mode Configurations").</summary>
public enum ApicMode : byte
{
    /// <summary>EN = 0: globally disabled.</summary>
    Disabled,

    /// <summary>EN = 1, EXTD = 0.</summary>
    XApic,

    /// <summary>EN = 1, EXTD = 1.</summary>
    X2Apic,
}

/// <summary>Non-fixed events latched for the CPU by its local APIC (from IPIs, LVTs, IOAPIC or MSI).</summary>
[Flags]
public enum ApicEvents : byte
{
    None = 0,
    Smi = 1 << 0,
    Init = 1 << 1,
    Nmi = 1 << 2,
    ExtInt = 1 << 3,
    StartUp = 1 << 4,
}

/// <summary>Static configuration of one local APIC, fixed at creation.</summary>
public readonly record struct LocalApicOptions
{
    /// <summary>The vCPU index (0-based creation order), used as the IPI source id.</summary>
    public int VcpuIndex { get; init; }

    /// <summary>The hardware-assigned (initial) APIC ID: 32 bits in x2APIC mode, bits 7:0 in xAPIC mode.</summary>
    public uint InitialId { get; init; }

    /// <summary>True for the bootstrap processor: APIC base bit 8 is set at RESET.</summary>
    public bool IsBootstrapProcessor { get; init; }

    /// <summary>Leave RESET in x2APIC mode (firmware did it; required when any APIC ID exceeds 0xFE).</summary>
    public bool StartInX2ApicMode { get; init; }

    /// <summary>Locked x2APIC: RESET and INIT leave x2APIC mode and writes that clear EXTD or EN raise #GP.</summary>
    public bool X2ApicLocked { get; init; }

    /// <summary>
    /// Whether VER bit 24 is offered (EOI-broadcast suppression). The project offers it iff x2APIC is
    /// enumerated and the IOAPIC has an EOI register (version 0x20).
    /// </summary>
    public bool EoiBroadcastSuppression { get; init; }

    /// <summary>MAXPHYADDR: APIC base bits above it are reserved (#GP). Default 46.</summary>
    public int MaxPhysicalAddressBits { get; init; }

    /// <summary>Nanoseconds per APIC bus cycle, before the divider (1 = 1 GHz, as KVM's default).</summary>
    public int BusCycleNs { get; init; }

    /// <summary>
    /// The guest TSC frequency in Hz, 1 to <see cref="LocalApic.MaxTscFrequencyHz"/>: guest TSC =
    /// ⌊virtual ns × frequency / 10^9⌋ + TSC offset, modulo 2^64. Default 10^9 (one tick per ns).
    /// </summary>
    public long TscFrequencyHz { get; init; }

    public LocalApicOptions()
    {
        MaxPhysicalAddressBits = 46;
        BusCycleNs = 1;
        TscFrequencyHz = LocalApic.NanosecondsPerSecond;
    }
}
