namespace Vapic.Trace.Syntax;

/// <summary>Why a trace was rejected.</summary>
public enum TraceErrorKind : byte
{
    /// <summary>The trace file does not exist.</summary>
    FileNotFound,

    /// <summary>The trace file exists but cannot be read (permissions, I/O error, invalid path).</summary>
    FileUnreadable,

    /// <summary>The first command is not <c>machine</c>, or the trace has no command at all.</summary>
    MissingMachine,

    /// <summary>A second <c>machine</c> line.</summary>
    DuplicateMachine,

    /// <summary>A command word that the format does not define.</summary>
    UnknownCommand,

    /// <summary>A keyword operand (option, event, run state, line action, ...) that the command does not define.</summary>
    UnknownKeyword,

    /// <summary>A token where a number belongs that is not a decimal or <c>0x</c> hexadecimal number.</summary>
    InvalidNumber,

    /// <summary>A number that does not fit in 64 bits.</summary>
    NumberTooLarge,

    /// <summary>A number that fits in 64 bits but not in the operand (32-bit value, GSI, vector, ...).</summary>
    ValueOutOfRange,

    /// <summary>An MMIO address that is not 4-byte aligned.</summary>
    MisalignedAddress,

    /// <summary>A <c>&lt;cpu&gt;</c> index at or above the machine's vCPU count.</summary>
    CpuOutOfRange,

    /// <summary>A per-CPU command written without its <c>&lt;cpu&gt;</c> index.</summary>
    MissingCpu,

    /// <summary>A machine-level command (ioapic, irq, msi, time) written with a <c>&lt;cpu&gt;</c> index.</summary>
    CpuNotAllowed,

    /// <summary>The line ends (or something else comes) where an operand is required.</summary>
    MissingOperand,

    /// <summary>A token after the end of a complete command (trailing garbage, or both <c>= VALUE</c> and <c>!gp</c>).</summary>
    UnexpectedToken,

    /// <summary><c>= ...</c> on a command that takes no expectation.</summary>
    ExpectationNotAllowed,

    /// <summary><c>!gp</c> on a command other than <c>rdmsr</c> and <c>wrmsr</c>.</summary>
    GeneralProtectionNotAllowed,

    /// <summary>A <c>machine</c> option given twice.</summary>
    DuplicateOption,

    /// <summary>A <c>machine</c> line without <c>vcpus=N</c>.</summary>
    MissingOption,

    /// <summary><c>ids=</c> lists a different number of APIC IDs than <c>vcpus=</c>.</summary>
    ApicIdCountMismatch,

    /// <summary>Two vCPUs given the same APIC ID.</summary>
    DuplicateApicId,
}
