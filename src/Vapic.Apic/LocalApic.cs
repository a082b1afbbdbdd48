using System.Runtime.CompilerServices;

namespace Vapic.Apic;

/// <summary>
/// One virtual local APIC (xAPIC and x2APIC), following the Intel SDM chapter "Advanced
/// Programmable Interrupt Controller (APIC)" and the project reference (lapic-reference.md §0-10).
/// </summary>
/// <remarks>
/// <para>
/// The device is a pure state machine driven by its vCPU (MMIO, MSR, CR8, acknowledge), by the
/// machine's router (<see cref="AcceptInterrupt"/>, <see cref="SetLint"/>) and by virtual time
/// (<see cref="OnTimer"/>). It never reaches into other devices: IPIs and EOI broadcasts go to its
/// <see cref="ILocalApicHost"/>, which also reports the time. All guest-reachable paths return
/// <see cref="ApicAccessResult"/> and never throw or allocate.
/// </para>
/// <para>
/// The file is split by concern: this part holds state, identity and RESET/INIT; the others hold
/// the MMIO and MSR front ends, IA32_APIC_BASE, priorities and acceptance, the LVTs and LINT pins,
/// the ESR, the timer and the ICR.
/// </para>
/// </remarks>
public sealed partial class LocalApic
{
    /// <summary>The architectural default APIC base address.</summary>
    public const ulong DefaultBase = 0xFEE0_0000;

    /// <summary>Virtual time is in nanoseconds: 10^9 per second, the default TSC frequency in Hz.</summary>
    public const long NanosecondsPerSecond = 1_000_000_000;

    /// <summary>
    /// The highest <see cref="LocalApicOptions.TscFrequencyHz"/> accepted, 1 THz: it keeps every
    /// TSC-to-time conversion exact in 128-bit arithmetic over the whole signed 64-bit time range.
    /// </summary>
    public const long MaxTscFrequencyHz = 1_000_000_000_000;

    private readonly ILocalApicHost _host;
    private readonly LocalApicCounters _counters = new();

    // Derived from the options once: VER, the SVR writable mask and the x2APIC IDs.
    private readonly uint _version;
    private readonly uint _svrWritableBits;
    private readonly uint _x2ApicId;
    private readonly uint _x2ApicLogicalId;
    private readonly ulong _baseReservedBits;

    // Cached from _regs.BaseMsr so that every access tests one byte.
    private ApicMode _mode;

    private Registers _regs;

    private long _tscOffset;

    /// <summary>Creates a local APIC in its power-on RESET state.</summary>
    /// <param name="host">The platform services (time, IPI routing, EOI broadcast, notifications).</param>
    /// <param name="options">
    /// Static configuration. A zero <see cref="LocalApicOptions.MaxPhysicalAddressBits"/>,
    /// <see cref="LocalApicOptions.BusCycleNs"/> or <see cref="LocalApicOptions.TscFrequencyHz"/> (as in
    /// <c>default(LocalApicOptions)</c>) selects the defaults 46, 1 and 10^9.
    /// </param>
    public LocalApic(ILocalApicHost host, LocalApicOptions options)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (options.MaxPhysicalAddressBits == 0)
        {
            options = options with { MaxPhysicalAddressBits = 46 };
        }

        if (options.BusCycleNs == 0)
        {
            options = options with { BusCycleNs = 1 };
        }

        if (options.TscFrequencyHz == 0)
        {
            options = options with { TscFrequencyHz = NanosecondsPerSecond };
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxPhysicalAddressBits, 32, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxPhysicalAddressBits, 52, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.BusCycleNs, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.TscFrequencyHz, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.TscFrequencyHz, MaxTscFrequencyHz, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(options.VcpuIndex, nameof(options));
        if (options.InitialId == InterruptMessage.X2ApicBroadcast)
        {
            // SDM "x2APIC Register Address Space": FFFF_FFFFH is the broadcast ID and cannot be assigned.
            throw new ArgumentOutOfRangeException(nameof(options), "The x2APIC ID 0xFFFFFFFF is reserved for broadcast.");
        }

        _host = host;
        Options = options;
        _version = ApicRegister.VersionValue | (options.EoiBroadcastSuppression ? ApicRegister.VersionEoiBroadcastSuppression : 0);
        _svrWritableBits = ApicRegister.SpuriousVectorWritableBits |
            (options.EoiBroadcastSuppression ? ApicRegister.SpuriousVectorSuppressEoiBroadcast : 0);
        _x2ApicId = options.InitialId;
        _x2ApicLogicalId = ApicRegister.DeriveX2ApicLogicalId(options.InitialId);
        _baseReservedBits = ApicBaseMsr.ReservedBits(options.MaxPhysicalAddressBits);
        _regs.TimerDeadline = long.MaxValue;
        ResetState(init: false);
    }

    /// <summary>The static configuration (with defaults filled in).</summary>
    public LocalApicOptions Options { get; }

    /// <summary>The vCPU index this APIC belongs to.</summary>
    public int VcpuIndex => Options.VcpuIndex;

    /// <summary>The global mode selected by IA32_APIC_BASE EN and EXTD.</summary>
    public ApicMode Mode => _mode;

    /// <summary>IA32_APIC_BASE (MSR 0x1B).</summary>
    public ulong BaseMsr => _regs.BaseMsr;

    /// <summary>The base-address field of IA32_APIC_BASE: where the xAPIC window decodes.</summary>
    public ulong MmioBase => _regs.BaseMsr & ~ApicBaseMsr.PageOffsetMask & ~_baseReservedBits;

    /// <summary>
    /// The routing ID: in xAPIC mode (and while disabled) bits 31:24 of the ID register as written
    /// (spec A1); in x2APIC mode the 32-bit x2APIC ID.
    /// </summary>
    public uint Id => _mode == ApicMode.X2Apic ? _x2ApicId : _regs.XApicId >> 24;

    /// <summary>LDR as the guest reads it (in x2APIC mode the value derived from the x2APIC ID).</summary>
    public uint LogicalDestination => _regs.LogicalDestination;

    /// <summary>DFR as the guest reads it (bits 27:0 read as ones).</summary>
    public uint DestinationFormat => _regs.DestinationFormat;

    /// <summary>SVR bit 8: the APIC is software-enabled.</summary>
    public bool SoftwareEnabled => (_regs.SpuriousVector & ApicRegister.SpuriousVectorSoftwareEnable) != 0;

    /// <summary>SVR bit 12: EOI broadcasts are suppressed.</summary>
    public bool SuppressEoiBroadcast => (_regs.SpuriousVector & ApicRegister.SpuriousVectorSuppressEoiBroadcast) != 0;

    /// <summary>IA32_APIC_BASE bit 8.</summary>
    public bool IsBootstrapProcessor => (_regs.BaseMsr & ApicBaseMsr.BootstrapProcessor) != 0;

    /// <summary>TPR.</summary>
    public byte TaskPriority => (byte)_regs.TaskPriority;

    /// <summary>PPR (SDM "Processor Priority Register (PPR)").</summary>
    public byte ProcessorPriority => (byte)_regs.ProcessorPriority;

    /// <summary>The interrupt-request register.</summary>
    public ref readonly InterruptBitmap Irr => ref _regs.Irr;

    /// <summary>The in-service register.</summary>
    public ref readonly InterruptBitmap Isr => ref _regs.Isr;

    /// <summary>The trigger-mode register.</summary>
    public ref readonly InterruptBitmap Tmr => ref _regs.Tmr;

    /// <summary>Non-fixed events latched for the CPU (SMI, INIT, NMI, ExtINT, SIPI).</summary>
    public ApicEvents PendingEvents => _regs.PendingEvents;

    /// <summary>The vector of the latched SIPI (the latest one wins).</summary>
    public byte StartupVector => _regs.StartupVector;

    /// <summary>The version register value.</summary>
    public uint Version => _version;

    /// <summary>SVR as the guest reads it.</summary>
    public uint SpuriousVector => _regs.SpuriousVector;

    /// <summary>The visible ESR (what a read returns).</summary>
    public uint ErrorStatus => _regs.ErrorStatus;

    /// <summary>Errors detected since the last ESR write; the next ESR write makes them visible.</summary>
    public uint PendingErrors => _regs.PendingErrors;

    /// <summary>The ICR as last written, as a 64-bit value (xAPIC: ICR high in bits 63:32).</summary>
    public ulong InterruptCommandValue => ((ulong)_regs.InterruptCommandHigh << 32) | _regs.InterruptCommandLow;

    /// <summary>The LVT register <paramref name="entry"/> as the guest reads it.</summary>
    public uint GetLvt(LvtEntry entry) => ReadLvt((int)entry);

    /// <summary>Whether the LINT input <paramref name="pin"/> (0 or 1) is currently asserted.</summary>
    public bool IsLintAsserted(int pin) => pin == 0 ? _regs.Lint0Asserted : _regs.Lint1Asserted;

    /// <summary>Statistics.</summary>
    public LocalApicCounters Counters => _counters;

    /// <summary>
    /// The TSC offset (VMCS TSC offset / VMCB TSC_OFFSET): guest TSC = ⌊<see cref="ILocalApicHost.Now"/>
    /// × <see cref="LocalApicOptions.TscFrequencyHz"/> / 10^9⌋ + TscOffset, modulo 2^64 (see
    /// <see cref="GuestTsc"/>). Changing it moves an armed TSC deadline in virtual time.
    /// </summary>
    public long TscOffset
    {
        get => _tscOffset;
        set
        {
            _tscOffset = value;
            if (_regs.TscDeadline != 0 && TimerModeOf(_regs.Lvt[LvtTimerSlot]) == TimerMode.TscDeadline)
            {
                SetTimerDeadline(TscDeadlineToVirtualTime(_regs.TscDeadline));
            }
        }
    }

    /// <summary>
    /// Absolute virtual ns of the next expiry of the APIC timer or the TSC deadline;
    /// <see cref="long.MaxValue"/> when nothing is armed. The host calls <see cref="OnTimer"/> when
    /// <see cref="ILocalApicHost.Now"/> reaches it.
    /// </summary>
    public long TimerDeadline => _regs.TimerDeadline;

    /// <summary>
    /// Power-on RESET (<paramref name="init"/> = false) or INIT (true), per SDM "Local APIC State
    /// After Power-Up or Reset" and "Local APIC State After an INIT Reset". INIT keeps IA32_APIC_BASE,
    /// the mode and the ID (and in x2APIC mode the derived LDR). RESET also clears every latched
    /// event; INIT leaves <see cref="PendingEvents"/> to the CPU, which decides what survives.
    /// </summary>
    public void Reset(bool init)
    {
        ApicMode oldMode = _mode;
        uint oldId = Id;
        uint oldLdr = _regs.LogicalDestination;
        uint oldDfr = _regs.DestinationFormat;
        bool oldEnabled = SoftwareEnabled;
        long oldDeadline = _regs.TimerDeadline;

        ResetState(init);

        if (_regs.TimerDeadline != oldDeadline)
        {
            _host.TimerChanged(this);
        }

        if (_mode != oldMode || Id != oldId || _regs.LogicalDestination != oldLdr ||
            _regs.DestinationFormat != oldDfr || SoftwareEnabled != oldEnabled)
        {
            _host.RoutingChanged(this);
        }
    }

    private void ResetState(bool init)
    {
        ulong baseMsr;
        uint xApicId;
        ApicEvents events;
        byte startupVector;
        if (init)
        {
            baseMsr = _regs.BaseMsr;
            xApicId = _regs.XApicId;
            events = _regs.PendingEvents;
            startupVector = _regs.StartupVector;
        }
        else
        {
            baseMsr = ApicBaseMsr.ResetValue | (Options.IsBootstrapProcessor ? ApicBaseMsr.BootstrapProcessor : 0);
            if (Options.StartInX2ApicMode || Options.X2ApicLocked)
            {
                baseMsr |= ApicBaseMsr.X2ApicEnable;
            }

            xApicId = (Options.InitialId & 0xFF) << 24;
            events = ApicEvents.None;
            startupVector = 0;
        }

        // The LINT pins are inputs driven from outside; their level survives, remote IRR does not.
        bool lint0 = _regs.Lint0Asserted;
        bool lint1 = _regs.Lint1Asserted;

        _regs = default;
        _regs.BaseMsr = baseMsr;
        _mode = ApicBaseMsr.GetMode(baseMsr);
        _regs.XApicId = xApicId;
        _regs.PendingEvents = events;
        _regs.StartupVector = startupVector;
        _regs.Lint0Asserted = lint0;
        _regs.Lint1Asserted = lint1;

        // x2APIC: LDR is derived from the ID and read-only, so INIT (and RESET into x2APIC) keep it.
        _regs.LogicalDestination = _mode == ApicMode.X2Apic ? _x2ApicLogicalId : 0;
        _regs.DestinationFormat = ApicRegister.DestinationFormatReset;
        _regs.SpuriousVector = ApicRegister.SpuriousVectorReset;
        for (int i = 0; i < LocalVectorTable.Count; i++)
        {
            _regs.Lvt[i] = LocalVectorTable.ResetValue;
        }

        _regs.Divisor = TimerDivide.Divisor(0);
        _regs.TimerDeadline = long.MaxValue;
    }

    /// <summary>
    /// The volatile, architecturally visible state of the APIC, kept in one struct so that saving
    /// copies it and a reviewer sees every addition. Static configuration lives in
    /// <see cref="Options"/>, statistics in <see cref="Counters"/>.
    /// </summary>
    internal struct Registers
    {
        public ulong BaseMsr;

        /// <summary>The xAPIC ID register (ID in bits 31:24). In x2APIC mode the ID comes from the options.</summary>
        public uint XApicId;
        public uint LogicalDestination;
        public uint DestinationFormat;
        public uint TaskPriority;
        public uint ProcessorPriority;
        public uint SpuriousVector;
        public InterruptBitmap Irr;
        public InterruptBitmap Isr;
        public InterruptBitmap Tmr;
        public uint ErrorStatus;
        public uint PendingErrors;
        public uint InterruptCommandLow;

        /// <summary>xAPIC: ICR high as written ([31:24]); x2APIC: the 32-bit destination.</summary>
        public uint InterruptCommandHigh;
        public LvtRegisters Lvt;
        public uint InitialCount;
        public uint DivideConfiguration;

        /// <summary>The decoded divisor of <see cref="DivideConfiguration"/>.</summary>
        public int Divisor;

        /// <summary>The one-shot/periodic count is running (armed and, for one-shot, not yet expired).</summary>
        public bool TimerCounting;

        /// <summary>
        /// The count's time origin: expiries fall on TimerBase + k × N × tick. Re-based on a DCR write
        /// so the remaining count stays exact (spec A14).
        /// </summary>
        public long TimerBase;

        /// <summary>Virtual ns of the next expiry (APIC timer or TSC deadline), long.MaxValue when none.</summary>
        public long TimerDeadline;

        /// <summary>IA32_TSC_DEADLINE as the guest reads it in TSC-deadline mode (0 = disarmed).</summary>
        public ulong TscDeadline;
        public bool Lint0Asserted;
        public bool Lint1Asserted;
        public bool Lint0RemoteIrr;
        public bool Lint1RemoteIrr;
        public ApicEvents PendingEvents;
        public byte StartupVector;
    }

    /// <summary>The six LVT registers in offset order (see <see cref="LvtEntry"/>).</summary>
    [InlineArray(LocalVectorTable.Count)]
    internal struct LvtRegisters
    {
        private uint _element0;
    }

    /// <summary>The volatile state, for saved-state code in this assembly.</summary>
    internal ref Registers State => ref _regs;
}
