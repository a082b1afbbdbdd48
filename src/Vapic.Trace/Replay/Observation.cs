using Vapic.Machine;
using Vapic.Trace.Syntax;

namespace Vapic.Trace.Replay;

/// <summary>
/// What the guest saw for one command: a value, <c>unmapped</c>, #GP, an accepted event or a run
/// state. Commands that show the guest nothing observe <see cref="ExpectationKind.None"/>. Two
/// modes are equivalent on a trace when their observation sequences are equal.
/// </summary>
public readonly record struct Observation(ExpectationKind Kind, ulong Payload)
{
    public static Observation Nothing => default;

    public static Observation Unmapped => new(ExpectationKind.Unmapped, 0);

    public static Observation GeneralProtection => new(ExpectationKind.GeneralProtection, 0);

    public static Observation OfValue(ulong value) => new(ExpectationKind.Value, value);

    public static Observation OfEvent(CpuEvent e) => new(ExpectationKind.Event, ((ulong)e.Kind << 8) | e.Vector);

    public static Observation OfRunState(VcpuRunState state) => new(ExpectationKind.RunState, (ulong)state);

    /// <summary>Whether this observation satisfies <paramref name="expectation"/>.</summary>
    public bool Satisfies(Expectation expectation) => expectation.Kind switch
    {
        ExpectationKind.None => true,
        ExpectationKind.Value => Kind == ExpectationKind.Value && Payload == expectation.Value,
        ExpectationKind.Unmapped => Kind == ExpectationKind.Unmapped,
        ExpectationKind.GeneralProtection => Kind == ExpectationKind.GeneralProtection,
        ExpectationKind.Event => Kind == ExpectationKind.Event && this == OfEvent(expectation.Event),
        ExpectationKind.RunState => Kind == ExpectationKind.RunState && Payload == (ulong)expectation.RunState,
        ExpectationKind.Nested => Kind == ExpectationKind.Nested && expectation.Nested.Matches(NestedOutcome.Unpack(Payload)),
        _ => false,
    };

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        ExpectationKind.None => "ok",
        ExpectationKind.Value => $"0x{Payload:x}",
        ExpectationKind.Unmapped => "unmapped",
        ExpectationKind.GeneralProtection => "#GP",
        ExpectationKind.Event => new CpuEvent((CpuEventKind)(Payload >> 8), (byte)Payload).ToString(),
        ExpectationKind.RunState => TraceFormatter.Format((VcpuRunState)Payload),
        ExpectationKind.Nested => TraceFormatter.Format(NestedOutcome.Unpack(Payload)),
        _ => "?",
    };
}
