namespace Vapic.Trace.Syntax;

/// <summary>
/// One parsed trace command. The operands are untyped 64-bit slots whose meaning depends on
/// <paramref name="Kind"/> (see <see cref="TraceCommandKind"/>), so the command is a small value that
/// a replay loop reads without indirection.
/// </summary>
/// <param name="Kind">What the command does.</param>
/// <param name="Cpu">The 0-based vCPU index, or <see cref="NoCpu"/> for machine-level commands (ioapic, irq, msi, time).</param>
/// <param name="A">The first operand (address, MSR, value, index, GSI, pin or nanoseconds).</param>
/// <param name="B">The second operand (value, data or <see cref="LineAction"/>), or 0.</param>
/// <param name="Expectation">What the guest must observe.</param>
/// <param name="Location">Where the command's first token is.</param>
/// <param name="SourceLine">The command's line as written, without its line terminator (a slice of the trace text, not a copy).</param>
public readonly record struct TraceCommand(
    TraceCommandKind Kind,
    int Cpu,
    ulong A,
    ulong B,
    Expectation Expectation,
    SourceLocation Location,
    ReadOnlyMemory<char> SourceLine)
{
    /// <summary>The <see cref="Cpu"/> of a machine-level command.</summary>
    public const int NoCpu = -1;

    /// <summary>The action of an <see cref="TraceCommandKind.Irq"/> or <see cref="TraceCommandKind.Lint"/> command.</summary>
    public LineAction LineAction => (LineAction)B;

    /// <summary>Returns the command in canonical trace syntax.</summary>
    public override string ToString() => TraceFormatter.Format(this);
}
