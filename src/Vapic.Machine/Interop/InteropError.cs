using System.Collections.Immutable;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>Why a KVM or Xen LAPIC image or file was refused.</summary>
public enum InteropError : byte
{
    /// <summary>No error.</summary>
    None,

    /// <summary>The data ends before a structure it announces.</summary>
    Truncated,

    /// <summary>The file does not start with the expected magic or has an unknown version.</summary>
    BadHeader,

    /// <summary>A length or size field has a value the format does not allow.</summary>
    BadLength,

    /// <summary>IA32_APIC_BASE has EN = 0 and EXTD = 1 (SDM "x2APIC State Transitions": invalid).</summary>
    InvalidApicMode,

    /// <summary>With 32-bit x2APIC IDs, the page's ID differs from the vCPU's x2APIC ID (KVM: EINVAL).</summary>
    IdMismatch,

    /// <summary>A record is missing its partner (Xen: LAPIC without LAPIC_REGS or the reverse) or an instance repeats.</summary>
    Inconsistent,

    /// <summary>The file holds no APIC.</summary>
    Empty,
}

/// <summary>The result of importing one LAPIC image: the state, or the error and what was wrong.</summary>
/// <param name="State">The imported state; null on error.</param>
/// <param name="Error">The error, <see cref="InteropError.None"/> on success.</param>
/// <param name="Message">What was wrong; null on success.</param>
public readonly record struct LapicImportResult(LocalApicState? State, InteropError Error, string? Message)
{
    /// <summary>Whether the import succeeded.</summary>
    public bool IsSuccess => Error == InteropError.None;

    internal static LapicImportResult Fail(InteropError error, string message) => new(null, error, message);
}

/// <summary>The result of reading a KVM or Xen LAPIC file: one state per vCPU, or the error and where.</summary>
/// <param name="Apics">The states in vCPU order; default on error.</param>
/// <param name="Error">The error, <see cref="InteropError.None"/> on success.</param>
/// <param name="Offset">The byte offset of the structure at fault.</param>
/// <param name="Message">What was wrong; null on success.</param>
public readonly record struct LapicFileReadResult(ImmutableArray<LocalApicState> Apics, InteropError Error, int Offset, string? Message)
{
    /// <summary>Whether the read succeeded.</summary>
    public bool IsSuccess => Error == InteropError.None;

    /// <inheritdoc/>
    public override string ToString() => IsSuccess ? "ok" : $"offset {Offset}: {Message}";

    internal static LapicFileReadResult Fail(InteropError error, int offset, string message) => new(default, error, offset, message);
}
