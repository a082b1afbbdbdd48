namespace Vapic.Apic;

/// <summary>
/// The local APIC register file as data: xAPIC offsets, register indices (<c>offset &gt;&gt; 4</c>,
/// which is also <c>MSR - 0x800</c> in x2APIC mode), writable masks, reset values and the x2APIC
/// access table. Behaviour lives in <see cref="LocalApic"/>; this type only states the layout
/// (SDM "Local APIC Register Address Map" and "Local APIC Register Address Map Supported by x2APIC").
/// </summary>
public static class ApicRegister
{
    /// <summary>Size of the xAPIC MMIO window.</summary>
    public const int MmioWindowSize = 0x1000;

    /// <summary>The first x2APIC register MSR: MSR = 0x800 + (offset &gt;&gt; 4).</summary>
    public const uint X2ApicMsrBase = 0x800;

    /// <summary>The last MSR of the range the architecture reserves for the APIC (0x800-0xBFF).</summary>
    public const uint X2ApicMsrLast = 0xBFF;

    /// <summary>The number of 16-byte register slots that hold architectural registers (0x000-0x3F0).</summary>
    public const int IndexCount = 0x40;

    // Register offsets in the xAPIC window.

    /// <summary>Local APIC ID (xAPIC 0x020, x2APIC 0x802).</summary>
    public const int IdOffset = 0x020;

    /// <summary>Local APIC version (0x030 / 0x803).</summary>
    public const int VersionOffset = 0x030;

    /// <summary>Task priority, TPR (0x080 / 0x808).</summary>
    public const int TaskPriorityOffset = 0x080;

    /// <summary>Arbitration priority, APR (0x090; absent in x2APIC).</summary>
    public const int ArbitrationPriorityOffset = 0x090;

    /// <summary>Processor priority, PPR (0x0A0 / 0x80A).</summary>
    public const int ProcessorPriorityOffset = 0x0A0;

    /// <summary>End of interrupt, EOI (0x0B0 / 0x80B), write-only.</summary>
    public const int EoiOffset = 0x0B0;

    /// <summary>Remote read, RRD (0x0C0; absent in x2APIC).</summary>
    public const int RemoteReadOffset = 0x0C0;

    /// <summary>Logical destination, LDR (0x0D0 / 0x80D).</summary>
    public const int LogicalDestinationOffset = 0x0D0;

    /// <summary>Destination format, DFR (0x0E0; absent in x2APIC).</summary>
    public const int DestinationFormatOffset = 0x0E0;

    /// <summary>Spurious-interrupt vector, SVR (0x0F0 / 0x80F).</summary>
    public const int SpuriousVectorOffset = 0x0F0;

    /// <summary>In-service register bank, ISR[0..7] (0x100-0x170 / 0x810-0x817).</summary>
    public const int InServiceOffset = 0x100;

    /// <summary>Trigger-mode register bank, TMR[0..7] (0x180-0x1F0 / 0x818-0x81F).</summary>
    public const int TriggerModeOffset = 0x180;

    /// <summary>Interrupt-request register bank, IRR[0..7] (0x200-0x270 / 0x820-0x827).</summary>
    public const int InterruptRequestOffset = 0x200;

    /// <summary>Error status, ESR (0x280 / 0x828).</summary>
    public const int ErrorStatusOffset = 0x280;

    /// <summary>LVT CMCI (0x2F0 / 0x82F); not offered by this model, so the slot is reserved.</summary>
    public const int LvtCmciOffset = 0x2F0;

    /// <summary>Interrupt command, ICR low half (0x300 / the 64-bit MSR 0x830).</summary>
    public const int InterruptCommandOffset = 0x300;

    /// <summary>Interrupt command, ICR high half (0x310; absent in x2APIC).</summary>
    public const int InterruptCommandHighOffset = 0x310;

    /// <summary>LVT Timer (0x320 / 0x832).</summary>
    public const int LvtTimerOffset = 0x320;

    /// <summary>LVT Thermal sensor (0x330 / 0x833).</summary>
    public const int LvtThermalOffset = 0x330;

    /// <summary>LVT Performance-monitoring counters (0x340 / 0x834).</summary>
    public const int LvtPerformanceCounterOffset = 0x340;

    /// <summary>LVT LINT0 (0x350 / 0x835).</summary>
    public const int LvtLint0Offset = 0x350;

    /// <summary>LVT LINT1 (0x360 / 0x836).</summary>
    public const int LvtLint1Offset = 0x360;

    /// <summary>LVT Error (0x370 / 0x837).</summary>
    public const int LvtErrorOffset = 0x370;

    /// <summary>Timer initial count, TMICT (0x380 / 0x838).</summary>
    public const int InitialCountOffset = 0x380;

    /// <summary>Timer current count, TMCCT (0x390 / 0x839), read-only.</summary>
    public const int CurrentCountOffset = 0x390;

    /// <summary>Timer divide configuration, DCR (0x3E0 / 0x83E).</summary>
    public const int DivideConfigurationOffset = 0x3E0;

    /// <summary>SELF IPI (x2APIC MSR 0x83F only; the xAPIC slot 0x3F0 is reserved).</summary>
    public const int SelfIpiOffset = 0x3F0;

    // Register indices (offset >> 4), used for dispatch.
    internal const int IdIndex = IdOffset >> 4;
    internal const int VersionIndex = VersionOffset >> 4;
    internal const int TaskPriorityIndex = TaskPriorityOffset >> 4;
    internal const int ArbitrationPriorityIndex = ArbitrationPriorityOffset >> 4;
    internal const int ProcessorPriorityIndex = ProcessorPriorityOffset >> 4;
    internal const int EoiIndex = EoiOffset >> 4;
    internal const int RemoteReadIndex = RemoteReadOffset >> 4;
    internal const int LogicalDestinationIndex = LogicalDestinationOffset >> 4;
    internal const int DestinationFormatIndex = DestinationFormatOffset >> 4;
    internal const int SpuriousVectorIndex = SpuriousVectorOffset >> 4;
    internal const int InServiceIndex = InServiceOffset >> 4;
    internal const int TriggerModeIndex = TriggerModeOffset >> 4;
    internal const int InterruptRequestIndex = InterruptRequestOffset >> 4;
    internal const int ErrorStatusIndex = ErrorStatusOffset >> 4;
    internal const int InterruptCommandIndex = InterruptCommandOffset >> 4;
    internal const int InterruptCommandHighIndex = InterruptCommandHighOffset >> 4;
    internal const int LvtTimerIndex = LvtTimerOffset >> 4;
    internal const int LvtThermalIndex = LvtThermalOffset >> 4;
    internal const int LvtPerformanceCounterIndex = LvtPerformanceCounterOffset >> 4;
    internal const int LvtLint0Index = LvtLint0Offset >> 4;
    internal const int LvtLint1Index = LvtLint1Offset >> 4;
    internal const int LvtErrorIndex = LvtErrorOffset >> 4;
    internal const int InitialCountIndex = InitialCountOffset >> 4;
    internal const int CurrentCountIndex = CurrentCountOffset >> 4;
    internal const int DivideConfigurationIndex = DivideConfigurationOffset >> 4;
    internal const int SelfIpiIndex = SelfIpiOffset >> 4;

    // Reset values and masks (SDM "Local APIC State After Power-Up or Reset").

    /// <summary>VER without EOI-broadcast suppression: version 0x14, Max LVT entry 5 (six LVTs, no CMCI).</summary>
    public const uint VersionValue = 0x0005_0014;

    /// <summary>VER bit 24: EOI-broadcast suppression is offered (SVR bit 12 becomes writable).</summary>
    public const uint VersionEoiBroadcastSuppression = 1u << 24;

    /// <summary>DFR at RESET and INIT: flat model, all ones.</summary>
    public const uint DestinationFormatReset = 0xFFFF_FFFF;

    /// <summary>DFR bits 27:0 always read 1; only the model field [31:28] is stored.</summary>
    public const uint DestinationFormatReadAsOne = 0x0FFF_FFFF;

    /// <summary>The stored bits of an xAPIC ID, LDR and ICR-high write ([31:24]).</summary>
    public const uint HighByteMask = 0xFF00_0000;

    /// <summary>TPR: the stored bits.</summary>
    public const uint TaskPriorityMask = 0xFF;

    /// <summary>SVR at RESET and INIT: vector 0xFF, software-disabled.</summary>
    public const uint SpuriousVectorReset = 0x0000_00FF;

    /// <summary>SVR bit 8: APIC software enable.</summary>
    public const uint SpuriousVectorSoftwareEnable = 1u << 8;

    /// <summary>SVR bit 12: suppress EOI broadcast (writable only when VER bit 24 is set).</summary>
    public const uint SpuriousVectorSuppressEoiBroadcast = 1u << 12;

    /// <summary>SVR bits stored on every model here: vector [7:0], enable 8, focus-check disable 9 (stored, no effect).</summary>
    public const uint SpuriousVectorWritableBits = 0x3FF;

    /// <summary>ESR bit 5: this APIC sent a Fixed or lowest-priority IPI with a vector below 16.</summary>
    public const uint ErrorSendIllegalVector = 1u << 5;

    /// <summary>ESR bit 6: this APIC received (or generated locally) a fixed interrupt with a vector below 16.</summary>
    public const uint ErrorReceiveIllegalVector = 1u << 6;

    /// <summary>ESR bit 7: xAPIC access to a reserved offset (spec A7, SDM ESR bit description).</summary>
    public const uint ErrorIllegalRegisterAddress = 1u << 7;

    /// <summary>Access flag in <see cref="X2ApicAccess"/>: RDMSR is allowed.</summary>
    internal const byte X2ApicReadable = 1;

    /// <summary>Access flag in <see cref="X2ApicAccess"/>: WRMSR is allowed.</summary>
    internal const byte X2ApicWritable = 2;

    /// <summary>Access flag in <see cref="XApicRegisters"/>: the xAPIC slot holds a register (not reserved).</summary>
    internal const byte XApicPresent = 1;

    /// <summary>
    /// x2APIC access rights by register index (SDM "Local APIC Register Address Map Supported by
    /// x2APIC"): 0 = the MSR does not exist (#GP both ways). APR, RRD, DFR and ICR high have no MSR;
    /// EOI and SELF IPI are write-only; ID, VER, LDR, PPR, ISR, TMR, IRR and TMCCT are read-only.
    /// CMCI is not offered, so 0x82F faults.
    /// </summary>
    internal static ReadOnlySpan<byte> X2ApicAccess =>
    [
        0, 0, 1, 1, 0, 0, 0, 0, 3, 0, 1, 2, 0, 1, 0, 3, // 0x800-0x80F
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x810-0x81F ISR, TMR
        1, 1, 1, 1, 1, 1, 1, 1, 3, 0, 0, 0, 0, 0, 0, 0, // 0x820-0x82F IRR, ESR
        3, 0, 3, 3, 3, 3, 3, 3, 3, 1, 0, 0, 0, 0, 3, 2, // 0x830-0x83F ICR, LVTs, timer, SELF IPI
    ];

    /// <summary>
    /// The bits an x2APIC WRMSR may set, by register index; any other bit set raises #GP (SDM
    /// "Reserved Bit Checking", spec A3). Read-only fields inside writable registers (LVT delivery
    /// status, LINT remote IRR) are allowed and ignored. EOI and ESR accept only 0. SVR is computed
    /// per APIC because bit 12 depends on VER[24]; ICR is checked as a 64-bit value.
    /// </summary>
    internal static ReadOnlySpan<uint> X2ApicWritableBits =>
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0x3FF,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
        LocalVectorTable.TimerWritableBits | LocalVectorTable.DeliveryStatus,
        LocalVectorTable.ThermalWritableBits | LocalVectorTable.DeliveryStatus,
        LocalVectorTable.PerformanceCounterWritableBits | LocalVectorTable.DeliveryStatus,
        LocalVectorTable.LintWritableBits | LocalVectorTable.DeliveryStatus | LocalVectorTable.RemoteIrr,
        LocalVectorTable.LintWritableBits | LocalVectorTable.DeliveryStatus | LocalVectorTable.RemoteIrr,
        LocalVectorTable.ErrorWritableBits | LocalVectorTable.DeliveryStatus,
        0xFFFF_FFFF, 0, 0, 0, 0, 0, TimerDivide.WritableBits, 0xFF,
    ];

    /// <summary>
    /// Which xAPIC slots hold a register, by index (spec §1). Every other slot below 0x400, and every
    /// slot from 0x400 up, is reserved: reads return 0 and set ESR bit 7, writes are ignored and set
    /// ESR bit 7. The SELF IPI slot 0x3F0 and the CMCI slot 0x2F0 are reserved in this model.
    /// </summary>
    internal static ReadOnlySpan<byte> XApicRegisters =>
    [
        0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, // 0x000-0x0F0
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x100-0x1F0
        1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, // 0x200-0x2F0
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, // 0x300-0x3F0
    ];

    /// <summary>
    /// The x2APIC logical ID derived from the x2APIC ID (SDM "Logical Destination Mode in x2APIC
    /// Mode"): cluster = ID[19:4] in bits 31:16, member bit 1 &lt;&lt; ID[3:0] in bits 15:0.
    /// </summary>
    public static uint DeriveX2ApicLogicalId(uint x2ApicId) => ((x2ApicId >> 4) << 16) | (1u << (int)(x2ApicId & 0xF));
}
