namespace Vapic.Virtualization.Avic;

/// <summary>Why hardware could not complete a guest IPI: EXITINFO2[63:32] of #VMEXIT AVIC_INCOMPLETE_IPI (0x401).</summary>
public enum AvicIncompleteIpiCause : byte
{
    /// <summary>Not fixed and edge (NMI, INIT, SIPI, SMI, lowest priority, level): KVM emulates the IPI.</summary>
    InvalidIntType = 0,

    /// <summary>A target's IsRunning is clear: its IRR is already set; KVM wakes or kicks it.</summary>
    TargetNotRunning = 1,

    /// <summary>A physical entry is invalid or beyond the table, or a logical bit maps to no entry: KVM emulates the IPI.</summary>
    InvalidTarget = 2,

    /// <summary>The backing page pointer is bad (never raised by this model: KVM always installs one).</summary>
    InvalidBackingPage = 3,

    /// <summary>Vector below 16: KVM ignores the IPI.</summary>
    InvalidIpiVector = 4,
}

/// <summary>
/// The exit information of one #VMEXIT AVIC_INCOMPLETE_IPI (virtualization-reference §3.5):
/// EXITINFO1 = ICR (high &lt;&lt; 32 | low), EXITINFO2 = cause &lt;&lt; 32 | index of the table
/// entry at fault. The exit is trap-like: ICR is written and RIP advanced.
/// </summary>
public readonly record struct AvicIncompleteIpiInfo(ulong ExitInfo1, ulong ExitInfo2)
{
    /// <summary>AMD exit code.</summary>
    public const uint ExitCode = 0x401;

    /// <summary>Builds the exit information.</summary>
    public static AvicIncompleteIpiInfo Create(ulong icr, AvicIncompleteIpiCause cause, uint index) =>
        new(icr, ((ulong)cause << 32) | index);

    /// <summary>The cause, EXITINFO2[63:32].</summary>
    public AvicIncompleteIpiCause Cause => (AvicIncompleteIpiCause)(ExitInfo2 >> 32);

    /// <summary>
    /// EXITINFO2[31:0]: the physical (or, for an invalid logical entry, logical) table index at
    /// fault; 0 for causes that concern the ICR itself.
    /// </summary>
    public uint Index => (uint)ExitInfo2;

    /// <summary>ICR bits 31:0.</summary>
    public uint IcrLow => (uint)ExitInfo1;

    /// <summary>ICR bits 63:32 (xAVIC: ICR high with the destination in bits 31:24).</summary>
    public uint IcrHigh => (uint)(ExitInfo1 >> 32);
}

/// <summary>
/// The exit information of one #VMEXIT AVIC_NOACCEL (0x402, virtualization-reference §3.6):
/// EXITINFO1[11:4] = register offset, bit 32 = write; EXITINFO2 = vector (the EOI'd vector for
/// an EOI trap, else 0). A trap comes after the write was stored in the backing page (RIP
/// advanced); a fault comes before the access (nothing written, the hypervisor emulates it).
/// </summary>
public readonly record struct AvicNoAccelInfo(ulong ExitInfo1, ulong ExitInfo2, bool IsTrap)
{
    /// <summary>AMD exit code.</summary>
    public const uint ExitCode = 0x402;

    /// <summary>EXITINFO1 bit 32: the access was a write.</summary>
    public const ulong WriteBit = 1UL << 32;

    /// <summary>EXITINFO1 bits 11:4: the offset.</summary>
    public const ulong OffsetMask = 0xFF0;

    /// <summary>Builds the exit information.</summary>
    public static AvicNoAccelInfo Create(int offset, bool write, bool trap, byte vector = 0) =>
        new(((ulong)offset & OffsetMask) | (write ? WriteBit : 0), vector, trap);

    /// <summary>The register offset in the backing page.</summary>
    public int Offset => (int)(ExitInfo1 & OffsetMask);

    /// <summary>Whether the access was a write.</summary>
    public bool IsWrite => (ExitInfo1 & WriteBit) != 0;

    /// <summary>The vector of EXITINFO2.</summary>
    public byte Vector => (byte)ExitInfo2;
}
