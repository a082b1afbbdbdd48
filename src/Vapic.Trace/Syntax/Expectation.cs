using Vapic.Machine;

namespace Vapic.Trace.Syntax;

/// <summary>
/// The result a trace command expects: nothing, a value, <c>unmapped</c>, #GP, an event taken by
/// <c>accept</c>, or a run state. Sixteen bytes: the kind plus one packed payload.
/// </summary>
public readonly record struct Expectation
{
    private readonly ulong _payload;

    private Expectation(ExpectationKind kind, ulong payload)
    {
        Kind = kind;
        _payload = payload;
    }

    /// <summary>What is expected.</summary>
    public ExpectationKind Kind { get; }

    /// <summary>The packed value, event or run state, for compact storage in <see cref="TraceCommand"/>.</summary>
    internal ulong Payload => _payload;

    /// <summary>No expectation.</summary>
    public static Expectation None => default;

    /// <summary><c>= unmapped</c>.</summary>
    public static Expectation Unmapped => new(ExpectationKind.Unmapped, 0);

    /// <summary><c>!gp</c>.</summary>
    public static Expectation GeneralProtection => new(ExpectationKind.GeneralProtection, 0);

    /// <summary>The expected value when <see cref="Kind"/> is <see cref="ExpectationKind.Value"/>, otherwise 0.</summary>
    public ulong Value => Kind == ExpectationKind.Value ? _payload : 0;

    /// <summary>The expected event when <see cref="Kind"/> is <see cref="ExpectationKind.Event"/>, otherwise <see cref="CpuEvent.None"/>.</summary>
    public CpuEvent Event => Kind == ExpectationKind.Event
        ? new CpuEvent((CpuEventKind)(_payload >> 8), (byte)_payload)
        : CpuEvent.None;

    /// <summary>The expected run state when <see cref="Kind"/> is <see cref="ExpectationKind.RunState"/>, otherwise <see cref="VcpuRunState.Running"/>.</summary>
    public VcpuRunState RunState => Kind == ExpectationKind.RunState ? (VcpuRunState)_payload : VcpuRunState.Running;

    /// <summary>Rebuilds an expectation from <see cref="Kind"/> and <see cref="Payload"/>.</summary>
    internal static Expectation FromParts(ExpectationKind kind, ulong payload) => new(kind, payload);

    /// <summary><c>= VALUE</c>.</summary>
    public static Expectation OfValue(ulong value) => new(ExpectationKind.Value, value);

    /// <summary><c>= EVENT</c> (on <c>accept</c>).</summary>
    public static Expectation OfEvent(CpuEvent cpuEvent) =>
        new(ExpectationKind.Event, ((ulong)cpuEvent.Kind << 8) | cpuEvent.Vector);

    /// <summary><c>= running</c> or <c>= wait-for-sipi</c> (on <c>state</c>).</summary>
    public static Expectation OfRunState(VcpuRunState runState) => new(ExpectationKind.RunState, (ulong)runState);

    /// <summary><c>= OUTCOME</c> on a nested command (<c>ok</c>, <c>vmfail 7</c>, <c>internal-error ...</c>, ...).</summary>
    public static Expectation OfNested(NestedOutcome outcome) => new(ExpectationKind.Nested, outcome.Pack());

    /// <summary>The expected nested outcome when <see cref="Kind"/> is <see cref="ExpectationKind.Nested"/>, otherwise <c>default</c>.</summary>
    public NestedOutcome Nested => Kind == ExpectationKind.Nested ? NestedOutcome.Unpack(_payload) : default;

    /// <summary>Returns the canonical trace text (<c>= 0x10</c>, <c>!gp</c>, ...), or an empty string for <see cref="None"/>.</summary>
    public override string ToString() => TraceFormatter.Format(this);
}
