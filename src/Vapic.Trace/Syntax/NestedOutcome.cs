using Vapic.Virtualization.Nested;

namespace Vapic.Trace.Syntax;

/// <summary>What a nested command ended in, as a trace expects or a replay observes it.</summary>
public enum NestedOutcomeKind : byte
{
    /// <summary>No outcome.</summary>
    None,

    /// <summary><c>ok</c>: the VM entry reached L2, the L2 write completed, the post was made.</summary>
    Ok,

    /// <summary><c>vmfail N</c>: VMLAUNCH failed with VMfailValid and VM-instruction error N.</summary>
    VmFail,

    /// <summary><c>internal-error [FIELD [ADDR]]</c>: L0 stopped the vCPU (KVM_EXIT_INTERNAL_ERROR, suberror 1).</summary>
    InternalError,

    /// <summary><c>l1-exit REASON [QUALIFICATION]</c>: the L2 access exited to L1.</summary>
    L1Exit,

    /// <summary><c>not-in-l2</c>: the vCPU does not run L2.</summary>
    NotInL2,

    /// <summary><c>set</c>: the inhibit reason is set.</summary>
    InhibitSet,

    /// <summary><c>clear</c>: the inhibit reason is not set.</summary>
    InhibitClear,
}

/// <summary>
/// The outcome of a nested command (docs/trace-format.md, "Nested virtualization"), packed into the
/// 64-bit payload of an <see cref="Expectation"/> or an observation. An expectation may leave the
/// internal error's field and address, or the exit qualification, unnamed: then any matches.
/// </summary>
/// <remarks>
/// Layout: bits 63:60 the kind. <c>vmfail</c>: bits 15:0 the error. <c>internal-error</c>: bit 59
/// field named, bit 58 address named, bits 55:52 the field (1 APIC-access, 2 virtual-APIC, 3
/// descriptor), bits 51:0 the address. <c>l1-exit</c>: bit 59 qualification named, bits 55:48 the
/// basic exit reason, bits 47:0 the qualification.
/// </remarks>
public readonly record struct NestedOutcome
{
    /// <summary>Addresses in an <c>internal-error</c> are below 2^52 (MAXPHYADDR is at most 52).</summary>
    public const ulong AddressLimit = 1UL << 52;

    /// <summary>Exit qualifications in an <c>l1-exit</c> are below 2^48.</summary>
    public const ulong QualificationLimit = 1UL << 48;

    private const int KindShift = 60;
    private const ulong NamedFirst = 1UL << 59;
    private const ulong NamedSecond = 1UL << 58;
    private const int FieldShift = 52;
    private const int ReasonShift = 48;

    private NestedOutcome(NestedOutcomeKind kind, int error, Vmcs12Field? field, ulong? address, L1ExitReason reason, ulong? qualification)
    {
        Kind = kind;
        VmInstructionError = error;
        Field = field;
        Address = address;
        ExitReason = reason;
        Qualification = qualification;
    }

    /// <summary>The kind.</summary>
    public NestedOutcomeKind Kind { get; }

    /// <summary>For <c>vmfail</c>, the VM-instruction error.</summary>
    public int VmInstructionError { get; }

    /// <summary>For <c>internal-error</c>, the vmcs12 field, if named.</summary>
    public Vmcs12Field? Field { get; }

    /// <summary>For <c>internal-error</c>, the address in the field, if named.</summary>
    public ulong? Address { get; }

    /// <summary>For <c>l1-exit</c>, the basic exit reason.</summary>
    public L1ExitReason ExitReason { get; }

    /// <summary>For <c>l1-exit</c>, the exit qualification, if named.</summary>
    public ulong? Qualification { get; }

    /// <summary><c>ok</c>.</summary>
    public static NestedOutcome Ok => new(NestedOutcomeKind.Ok, 0, null, null, default, null);

    /// <summary><c>not-in-l2</c>.</summary>
    public static NestedOutcome NotInL2 => new(NestedOutcomeKind.NotInL2, 0, null, null, default, null);

    /// <summary><c>set</c> or <c>clear</c>.</summary>
    public static NestedOutcome Inhibit(bool set) => new(set ? NestedOutcomeKind.InhibitSet : NestedOutcomeKind.InhibitClear, 0, null, null, default, null);

    /// <summary><c>vmfail N</c>.</summary>
    public static NestedOutcome VmFail(int error) => new(NestedOutcomeKind.VmFail, error & 0xFFFF, null, null, default, null);

    /// <summary><c>internal-error [FIELD [ADDR]]</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The address is at or above <see cref="AddressLimit"/>.</exception>
    public static NestedOutcome InternalError(Vmcs12Field? field, ulong? address)
    {
        if (address >= AddressLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(address), address, "must be below 2^52");
        }

        return new(NestedOutcomeKind.InternalError, 0, field, address, default, null);
    }

    /// <summary><c>l1-exit REASON [QUALIFICATION]</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The reason is above 255 or the qualification at or above <see cref="QualificationLimit"/>.</exception>
    public static NestedOutcome L1Exit(L1ExitReason reason, ulong? qualification)
    {
        if ((ushort)reason > 0xFF)
        {
            throw new ArgumentOutOfRangeException(nameof(reason), reason, "basic exit reasons are below 256 here");
        }

        if (qualification >= QualificationLimit)
        {
            throw new ArgumentOutOfRangeException(nameof(qualification), qualification, "must be below 2^48");
        }

        return new(NestedOutcomeKind.L1Exit, 0, null, null, reason, qualification);
    }

    /// <summary>Packs the outcome into 64 bits (see the remarks).</summary>
    public ulong Pack()
    {
        ulong bits = (ulong)Kind << KindShift;
        switch (Kind)
        {
            case NestedOutcomeKind.VmFail:
                bits |= (uint)VmInstructionError;
                break;
            case NestedOutcomeKind.InternalError:
                if (Field is { } field)
                {
                    bits |= NamedFirst | ((ulong)FieldCode(field) << FieldShift);
                }

                if (Address is { } address)
                {
                    bits |= NamedSecond | address;
                }

                break;
            case NestedOutcomeKind.L1Exit:
                bits |= (ulong)ExitReason << ReasonShift;
                if (Qualification is { } qualification)
                {
                    bits |= NamedFirst | qualification;
                }

                break;
        }

        return bits;
    }

    /// <summary>Unpacks what <see cref="Pack"/> produced.</summary>
    public static NestedOutcome Unpack(ulong bits)
    {
        var kind = (NestedOutcomeKind)(bits >> KindShift);
        return kind switch
        {
            NestedOutcomeKind.VmFail => VmFail((int)(bits & 0xFFFF)),
            NestedOutcomeKind.InternalError => new(
                kind,
                0,
                (bits & NamedFirst) != 0 ? FieldOf((int)((bits >> FieldShift) & 0xF)) : null,
                (bits & NamedSecond) != 0 ? bits & (AddressLimit - 1) : null,
                default,
                null),
            NestedOutcomeKind.L1Exit => new(
                kind,
                0,
                null,
                null,
                (L1ExitReason)((bits >> ReasonShift) & 0xFF),
                (bits & NamedFirst) != 0 ? bits & (QualificationLimit - 1) : null),
            _ => new(kind, 0, null, null, default, null),
        };
    }

    /// <summary>Whether <paramref name="observed"/> satisfies this outcome as an expectation (unnamed parts match anything).</summary>
    public bool Matches(NestedOutcome observed)
    {
        if (Kind != observed.Kind)
        {
            return false;
        }

        return Kind switch
        {
            NestedOutcomeKind.VmFail => VmInstructionError == observed.VmInstructionError,
            NestedOutcomeKind.InternalError => (Field is null || Field == observed.Field) && (Address is null || Address == observed.Address),
            NestedOutcomeKind.L1Exit => ExitReason == observed.ExitReason && (Qualification is null || Qualification == observed.Qualification),
            _ => true,
        };
    }

    /// <summary>The trace text after <c>= </c>, e.g. <c>internal-error apic-access 0xfee00000</c>.</summary>
    public override string ToString() => TraceFormatter.Format(this);

    private static int FieldCode(Vmcs12Field field) => field switch
    {
        Vmcs12Field.ApicAccessAddress => 1,
        Vmcs12Field.VirtualApicAddress => 2,
        _ => 3,
    };

    private static Vmcs12Field FieldOf(int code) => code switch
    {
        1 => Vmcs12Field.ApicAccessAddress,
        2 => Vmcs12Field.VirtualApicAddress,
        _ => Vmcs12Field.PostedInterruptDescriptorAddress,
    };
}
