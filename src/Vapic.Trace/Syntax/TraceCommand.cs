namespace Vapic.Trace.Syntax;

/// <summary>
/// One parsed trace command. The operands are untyped 64-bit slots whose meaning depends on
/// <see cref="Kind"/> (see <see cref="TraceCommandKind"/>), so a replay loop reads the command
/// without indirection.
/// </summary>
/// <remarks>
/// Traces run to millions of lines, so the command is kept to 48 bytes with a single reference
/// (to the text and file name its document shares): the column and <see cref="SourceLine"/> are
/// recomputed from the line's start on demand, which only messages need.
/// </remarks>
public readonly struct TraceCommand : IEquatable<TraceCommand>
{
    /// <summary>The <see cref="Cpu"/> of a machine-level command.</summary>
    public const int NoCpu = -1;

    private readonly TraceSource? _source;
    private readonly ulong _expectationPayload;
    private readonly int _line;
    private readonly int _lineStart;
    private readonly ExpectationKind _expectationKind;

    /// <summary>Creates a command that has no place in a source text (for exporters, generators and tests).</summary>
    /// <param name="kind">What the command does.</param>
    /// <param name="cpu">The 0-based vCPU index, or <see cref="NoCpu"/> for machine-level commands.</param>
    /// <param name="a">The first operand (see <see cref="TraceCommandKind"/>).</param>
    /// <param name="b">The second operand, or 0.</param>
    /// <param name="expectation">What the guest must observe.</param>
    public TraceCommand(TraceCommandKind kind, int cpu, ulong a, ulong b, Expectation expectation)
    {
        Kind = kind;
        Cpu = cpu;
        A = a;
        B = b;
        _expectationKind = expectation.Kind;
        _expectationPayload = expectation.Payload;
    }

    internal TraceCommand(
        TraceCommandKind kind,
        int cpu,
        ulong a,
        ulong b,
        Expectation expectation,
        TraceSource source,
        int line,
        int lineStart)
        : this(kind, cpu, a, b, expectation)
    {
        _source = source;
        _line = line;
        _lineStart = lineStart;
    }

    /// <summary>What the command does.</summary>
    public TraceCommandKind Kind { get; }

    /// <summary>The 0-based vCPU index, or <see cref="NoCpu"/> for machine-level commands (ioapic, irq, msi, time).</summary>
    public int Cpu { get; }

    /// <summary>The first operand: address, MSR, value, IOAPIC index, GSI, LINT pin or nanoseconds.</summary>
    public ulong A { get; }

    /// <summary>The second operand: value, MSI data or <see cref="LineAction"/>; otherwise 0.</summary>
    public ulong B { get; }

    /// <summary>What the guest must observe.</summary>
    public Expectation Expectation => Expectation.FromParts(_expectationKind, _expectationPayload);

    /// <summary>The action of an <see cref="TraceCommandKind.Irq"/> or <see cref="TraceCommandKind.Lint"/> command.</summary>
    public LineAction LineAction => (LineAction)B;

    /// <summary>Where the command's first token is; <c>default</c> for a command built in code.</summary>
    public SourceLocation Location => _source is null
        ? default
        : new SourceLocation(_source.FileName, _line, _source.FirstTokenColumn(_lineStart));

    /// <summary>The command's line as written, without its terminator (a slice of the trace text, not a copy); empty for a command built in code.</summary>
    public ReadOnlyMemory<char> SourceLine => _source is null ? default : _source.LineAt(_lineStart);

    /// <summary>Equality of two commands.</summary>
    public static bool operator ==(TraceCommand left, TraceCommand right) => left.Equals(right);

    /// <summary>Inequality of two commands.</summary>
    public static bool operator !=(TraceCommand left, TraceCommand right) => !left.Equals(right);

    /// <summary>True when both commands do the same thing and expect the same result, wherever they were written.</summary>
    public bool IsSameOperation(in TraceCommand other) =>
        Kind == other.Kind
        && Cpu == other.Cpu
        && A == other.A
        && B == other.B
        && _expectationKind == other._expectationKind
        && _expectationPayload == other._expectationPayload;

    /// <summary>True when both commands do the same thing and come from the same place (file, line and column).</summary>
    public bool Equals(TraceCommand other) =>
        IsSameOperation(other)
        && _line == other._line
        && (ReferenceEquals(_source, other._source) ? _lineStart == other._lineStart : Location == other.Location);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is TraceCommand other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, Cpu, A, B, _expectationKind, _expectationPayload, _line);

    /// <summary>Returns the command in canonical trace syntax.</summary>
    public override string ToString() => TraceFormatter.Format(this);
}
