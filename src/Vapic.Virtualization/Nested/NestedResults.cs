namespace Vapic.Virtualization.Nested;

/// <summary>The basic exit reasons an L2 access can cause that L0 reflects to L1 (SDM Appendix C).</summary>
public enum L1ExitReason : ushort
{
    /// <summary>Exception or NMI (0): here a page fault on a page L1's tables for L2 do not map (shadow paging).</summary>
    ExceptionOrNmi = 0,

    /// <summary>TPR below threshold (43), trap-like.</summary>
    TprBelowThreshold = 43,

    /// <summary>APIC access (44), fault-like: qualification bits 11:0 offset, 15:12 access type.</summary>
    ApicAccess = 44,

    /// <summary>Virtualized EOI (45), trap-like: qualification = vector.</summary>
    EoiInduced = 45,

    /// <summary>EPT violation (48): qualification bit 0 read, bit 1 write.</summary>
    EptViolation = 48,

    /// <summary>APIC write (56), trap-like: qualification = page offset.</summary>
    ApicWrite = 56,
}

/// <summary>Names of <see cref="L1ExitReason"/> for traces and reports.</summary>
public static class L1ExitReasonNames
{
    private static readonly (L1ExitReason Reason, string Keyword)[] s_names =
    [
        (L1ExitReason.ExceptionOrNmi, "exception"),
        (L1ExitReason.TprBelowThreshold, "tpr-below-threshold"),
        (L1ExitReason.ApicAccess, "apic-access"),
        (L1ExitReason.EoiInduced, "eoi-induced"),
        (L1ExitReason.EptViolation, "ept-violation"),
        (L1ExitReason.ApicWrite, "apic-write"),
    ];

    /// <summary>Every trace keyword.</summary>
    public static IReadOnlyList<string> Keywords { get; } = [.. s_names.Select(n => n.Keyword)];

    /// <summary>The trace keyword of <paramref name="reason"/>, or <c>exit-N</c> for another number.</summary>
    public static string Keyword(L1ExitReason reason)
    {
        foreach ((L1ExitReason r, string keyword) in s_names)
        {
            if (r == reason)
            {
                return keyword;
            }
        }

        return $"exit-{(ushort)reason}";
    }

    /// <summary>Looks up the reason whose keyword is <paramref name="keyword"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> keyword, out L1ExitReason reason)
    {
        foreach ((L1ExitReason r, string k) in s_names)
        {
            if (keyword.SequenceEqual(k))
            {
                reason = r;
                return true;
            }
        }

        reason = default;
        return false;
    }
}

/// <summary>A VM exit from L2 that L0 reflects to L1, with its exit qualification.</summary>
public readonly record struct L1Exit(L1ExitReason Reason, ulong Qualification)
{
    /// <summary>APIC-access exit qualification bits 15:12: linear read (0) and linear write (1).</summary>
    public const ulong LinearRead = 0x0000;

    /// <summary>APIC-access exit qualification access type 1: linear write.</summary>
    public const ulong LinearWrite = 0x1000;

    /// <inheritdoc/>
    public override string ToString() => $"{L1ExitReasonNames.Keyword(Reason)} ({(ushort)Reason}), qualification 0x{Qualification:x}";
}

/// <summary>
/// Why L0 stopped a vCPU: it cannot build a vmcs02 that behaves as the vmcs12 says. KVM reports
/// it to the VMM as <c>exit_reason</c> = KVM_EXIT_INTERNAL_ERROR (17), <c>internal.suberror</c> =
/// KVM_INTERNAL_ERROR_EMULATION (1), <c>ndata</c> = 0 (virtualization-reference §5.2, TV47, TV48).
/// </summary>
/// <param name="Field">The vmcs12 field whose address has no backing.</param>
/// <param name="Address">The L1 guest-physical address in that field.</param>
/// <param name="Backing">What L1 has at that address instead of RAM.</param>
public sealed record NestedInternalError(Vmcs12Field Field, ulong Address, L1MemoryKind Backing)
{
    /// <summary>KVM_EXIT_INTERNAL_ERROR.</summary>
    public const int KvmExitReason = 17;

    /// <summary>KVM_INTERNAL_ERROR_EMULATION.</summary>
    public const int Suberror = 1;

    /// <summary>KVM's <c>ndata</c> for this error.</summary>
    public const int DataCount = 0;

    /// <summary>One line for the VMM user, naming the field and the address.</summary>
    public string Message =>
        $"KVM_EXIT_INTERNAL_ERROR (17), suberror KVM_INTERNAL_ERROR_EMULATION (1): no backing for the {Vmcs12FieldNames.Describe(Field)} " +
        $"in vmcs12 (field 0x{(ushort)Field:x4}) = 0x{Address:x}: L1 has {Describe(Backing)} there, not RAM";

    /// <inheritdoc/>
    public override string ToString() => Message;

    private static string Describe(L1MemoryKind kind) => kind switch
    {
        L1MemoryKind.L1Apic => "its own local APIC",
        L1MemoryKind.Mmio => "device MMIO",
        _ => "nothing (a hole)",
    };
}

/// <summary>How a nested VM entry (VMLAUNCH/VMRESUME by L1) ended.</summary>
public enum VmEntryOutcome : byte
{
    /// <summary>vmcs02 was built and the vCPU runs L2.</summary>
    EnteredL2,

    /// <summary>VMfailValid: L1 continues after its VMLAUNCH with the error in the VM-instruction error field.</summary>
    VmFailValid,

    /// <summary>L0 stopped the vCPU and exited to the VMM with an internal error.</summary>
    InternalError,
}

/// <summary>The result of a nested VM entry.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="VmInstructionError">For VMfailValid, the VM-instruction error (7: invalid control field); else 0.</param>
/// <param name="Reason">For VMfailValid, which check failed; else null.</param>
/// <param name="Error">For an internal error, the field and address; else null.</param>
public readonly record struct VmEntryResult(VmEntryOutcome Outcome, int VmInstructionError, string? Reason, NestedInternalError? Error)
{
    /// <summary>VM-instruction error 7: "VM entry with invalid control field(s)".</summary>
    public const int InvalidControlField = 7;

    /// <summary>The vCPU entered L2.</summary>
    public static VmEntryResult Entered => new(VmEntryOutcome.EnteredL2, 0, null, null);

    /// <summary>VMfailValid with error 7 because of <paramref name="reason"/>.</summary>
    public static VmEntryResult InvalidControls(string reason) => new(VmEntryOutcome.VmFailValid, InvalidControlField, reason, null);

    /// <summary>L0 stopped the vCPU because of <paramref name="error"/>.</summary>
    public static VmEntryResult Stopped(NestedInternalError error) => new(VmEntryOutcome.InternalError, 0, null, error);

    /// <inheritdoc/>
    public override string ToString() => Outcome switch
    {
        VmEntryOutcome.EnteredL2 => "entered L2",
        VmEntryOutcome.VmFailValid => $"VMfailValid, VM-instruction error {VmInstructionError}: {Reason}",
        _ => $"internal error: {Error}",
    };
}

/// <summary>How an L2 access ended.</summary>
public enum L2AccessOutcome : byte
{
    /// <summary>The access completed without an exit to L1 (a read has its value).</summary>
    Completed,

    /// <summary>Nothing decodes the address: the VMM saw an MMIO exit; a read returns nothing, a write is dropped.</summary>
    Unbacked,

    /// <summary>The access exited to L1 (for trap-like exits, after the write completed).</summary>
    L1Exit,

    /// <summary>The vCPU is not running L2 (never entered, or stopped by L0).</summary>
    NotInL2,
}

/// <summary>Where an L2 access went, after L1's translation.</summary>
public enum L2AccessTarget : byte
{
    /// <summary>Nowhere (the access exited to L1 before reaching memory, or L2 is not running).</summary>
    None,

    /// <summary>The virtual-APIC page L1 gave its L2 (APIC virtualization through the APIC-access page).</summary>
    VirtualApicPage,

    /// <summary>L1 RAM.</summary>
    L1Ram,

    /// <summary>L1's own local APIC.</summary>
    L1Apic,

    /// <summary>An L1 device's MMIO.</summary>
    L1Mmio,

    /// <summary>A hole in L1's memory map.</summary>
    Hole,
}

/// <summary>The result of one 32-bit L2 access.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="Target">Where it went.</param>
/// <param name="Value">The value read (reads that completed); else 0.</param>
/// <param name="Exit">The exit to L1 when <paramref name="Outcome"/> is <see cref="L2AccessOutcome.L1Exit"/>.</param>
/// <param name="L1Address">The L1 guest-physical address the access translated to (0 when it did not translate).</param>
public readonly record struct L2AccessResult(L2AccessOutcome Outcome, L2AccessTarget Target, uint Value, L1Exit Exit, ulong L1Address)
{
    /// <summary>The vCPU is not in L2.</summary>
    public static L2AccessResult NotInL2 => new(L2AccessOutcome.NotInL2, L2AccessTarget.None, 0, default, 0);

    /// <inheritdoc/>
    public override string ToString() => Outcome switch
    {
        L2AccessOutcome.Completed => $"0x{Value:x8} ({Describe(Target)})",
        L2AccessOutcome.Unbacked => $"unbacked: MMIO exit to the VMM ({Describe(Target)})",
        L2AccessOutcome.L1Exit => $"exit to L1: {Exit}",
        _ => "not in L2",
    };

    /// <summary>A short description of <paramref name="target"/>.</summary>
    public static string Describe(L2AccessTarget target) => target switch
    {
        L2AccessTarget.VirtualApicPage => "virtual-APIC page",
        L2AccessTarget.L1Ram => "L1 RAM",
        L2AccessTarget.L1Apic => "L1's own APIC",
        L2AccessTarget.L1Mmio => "L1 device MMIO",
        L2AccessTarget.Hole => "hole in L1's memory",
        _ => "nowhere",
    };
}

/// <summary>How a posted interrupt from L1 to its L2 ended.</summary>
public enum NestedPostOutcome : byte
{
    /// <summary>The vector is in L2's virtual IRR (RVI updated), with no exit.</summary>
    Posted,

    /// <summary>The request stays in L1's descriptor: the vmcs12 does not process posted interrupts.</summary>
    Pending,

    /// <summary>L0 had to read an unmappable descriptor and stopped the vCPU (TV48).</summary>
    InternalError,

    /// <summary>The vCPU is not running L2.</summary>
    NotInL2,
}

/// <summary>The result of L1 posting an interrupt to L2.</summary>
public readonly record struct NestedPostResult(NestedPostOutcome Outcome, NestedInternalError? Error);

/// <summary>Where a vCPU is, as far as nesting goes.</summary>
public enum NestedVcpuState : byte
{
    /// <summary>Running L1 (never entered L2, or entry failed with VMfailValid).</summary>
    InL1,

    /// <summary>Running L2 on a vmcs02.</summary>
    InL2,

    /// <summary>Stopped by L0 with an internal error; the VMM has it.</summary>
    Stopped,
}
