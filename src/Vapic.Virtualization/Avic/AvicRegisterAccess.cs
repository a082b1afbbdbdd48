namespace Vapic.Virtualization.Avic;

/// <summary>What AVIC hardware does with one guest access to a backing-page register.</summary>
internal enum AvicAccessKind : byte
{
    /// <summary>Handled by hardware on the backing page, no exit.</summary>
    Accelerated,

    /// <summary>AVIC_NOACCEL, trap-like: the write is stored, then the hypervisor completes it.</summary>
    Trap,

    /// <summary>AVIC_NOACCEL, fault-like: nothing happens, the hypervisor emulates the access.</summary>
    Fault,

    /// <summary>EOI: accelerated for an edge vector, a trap for a level one (TMR set).</summary>
    Eoi,

    /// <summary>ICR low: the IPI is sent by hardware or an AVIC_INCOMPLETE_IPI exit is taken.</summary>
    Icr,
}

/// <summary>
/// AVIC's behaviour by backing-page register (virtualization-reference §3.6, AMD APM "AVIC
/// Backing Page Access" table; KVM <c>is_avic_unaccelerated_access_trap</c>), and the x2APIC MSRs
/// whose intercepts KVM clears under x2AVIC (§3.7, KVM <c>x2avic_passthrough_msrs</c>).
/// </summary>
internal static class AvicRegisterAccess
{
    private const byte A = (byte)AvicAccessKind.Accelerated;
    private const byte T = (byte)AvicAccessKind.Trap;
    private const byte F = (byte)AvicAccessKind.Fault;
    private const byte E = (byte)AvicAccessKind.Eoi;
    private const byte I = (byte)AvicAccessKind.Icr;

    /// <summary>
    /// Reads by register index (offset &gt;&gt; 4): every architectural register of the page is read
    /// by hardware except the timer current count (0x390), which the hypervisor computes; reserved
    /// offsets fault. UNVERIFIED (reference §3.6): the exact list of accelerated reads.
    /// </summary>
    private static ReadOnlySpan<byte> Reads =>
    [
        F, F, A, A, F, F, F, F, A, A, A, A, A, A, A, A, // 0x000-0x0F0: ID VER | TPR APR PPR EOI RRR LDR DFR SVR
        A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, // 0x100-0x1F0: ISR, TMR
        A, A, A, A, A, A, A, A, A, F, F, F, F, F, F, F, // 0x200-0x2F0: IRR, ESR
        A, A, A, A, A, A, A, A, A, F, F, F, F, F, A, F, // 0x300-0x3F0: ICR ICR2 LVTs TMICT | TMCCT | DCR
    ];

    /// <summary>
    /// Writes by register index: TPR and ICR high are accelerated, EOI depends on the trigger mode,
    /// ICR low sends the IPI; ID, RRR, LDR, DFR, SVR, ESR, the LVTs, TMICT and DCR trap; writes to
    /// read-only or reserved registers fault.
    /// </summary>
    private static ReadOnlySpan<byte> Writes =>
    [
        F, F, T, F, F, F, F, F, A, F, F, E, T, T, T, T, // 0x000-0x0F0
        F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, F, // 0x100-0x1F0
        F, F, F, F, F, F, F, F, T, F, F, F, F, F, F, F, // 0x200-0x2F0
        I, A, T, T, T, T, T, T, T, F, F, F, F, F, T, F, // 0x300-0x3F0
    ];

    /// <summary>
    /// x2APIC MSRs (index = MSR − 0x800) whose read and write intercepts KVM clears under x2AVIC:
    /// ID, VER, TPR, APR, PPR, EOI, RRR, LDR, DFR, SVR, ISR, TMR, IRR, ESR, ICR, ICR2, the LVTs
    /// except the timer (TSC-deadline mode is not virtualized, the hardware would #GP rather than
    /// exit), TMICT, TMCCT and DCR. Every other MSR (SELF IPI, LVT timer, IA32_TSC_DEADLINE,
    /// IA32_APIC_BASE) stays intercepted.
    /// </summary>
    private static ReadOnlySpan<byte> X2AvicPassthrough =>
    [
        0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, // 0x800-0x80F
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // 0x810-0x81F
        1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, // 0x820-0x82F
        1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, // 0x830-0x83F
    ];

    /// <summary>
    /// Registers that exist in the xAPIC page but not (or not writable) as x2APIC MSRs. KVM leaves
    /// their MSRs unintercepted, so the access reaches the AVIC hardware; the model treats it as
    /// an AVIC_NOACCEL fault that KVM answers with #GP. UNVERIFIED: whether hardware raises the
    /// #GP itself.
    /// </summary>
    private static ReadOnlySpan<byte> X2ApicAbsent =>
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, // APR, RRR, DFR
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ICR2
    ];

    /// <summary>The xAPIC page offset of a backing-page register index.</summary>
    public static int OffsetOf(int index) => index << 4;

    /// <summary>What a read of xAPIC page <paramref name="offset"/> does (offsets inside a register slot or beyond 0x3F0 fault).</summary>
    public static AvicAccessKind ClassifyRead(int offset) =>
        (offset & 0xF) != 0 || offset >= 0x400 ? AvicAccessKind.Fault : (AvicAccessKind)Reads[offset >> 4];

    /// <summary>What a write of xAPIC page <paramref name="offset"/> does.</summary>
    public static AvicAccessKind ClassifyWrite(int offset) =>
        (offset & 0xF) != 0 || offset >= 0x400 ? AvicAccessKind.Fault : (AvicAccessKind)Writes[offset >> 4];

    /// <summary>Whether x2AVIC leaves x2APIC MSR <paramref name="msr"/> unintercepted.</summary>
    public static bool IsX2AvicPassthrough(uint msr)
    {
        uint index = msr - 0x800;
        return index < 0x40 && X2AvicPassthrough[(int)index] != 0;
    }

    /// <summary>What an unintercepted x2APIC MSR access does, by the backing-page rules of its offset.</summary>
    public static AvicAccessKind ClassifyX2ApicMsr(uint msr, bool write)
    {
        int index = (int)(msr - 0x800);
        if (X2ApicAbsent[index] != 0)
        {
            return AvicAccessKind.Fault;
        }

        if (write && index is 0x02 or 0x0D)
        {
            // The x2APIC ID and LDR are read-only (SDM "x2APIC Register Availability").
            return AvicAccessKind.Fault;
        }

        int offset = OffsetOf(index);
        return write ? ClassifyWrite(offset) : ClassifyRead(offset);
    }
}
