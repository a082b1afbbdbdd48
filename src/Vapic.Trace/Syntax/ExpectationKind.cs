namespace Vapic.Trace.Syntax;

/// <summary>The kind of result a trace command expects the guest to see.</summary>
public enum ExpectationKind : byte
{
    /// <summary>No expectation: the replay only prints what it observed.</summary>
    None,

    /// <summary><c>= VALUE</c>: a read returns this value.</summary>
    Value,

    /// <summary><c>= unmapped</c>: the MMIO address is not decoded by this CPU's LAPIC.</summary>
    Unmapped,

    /// <summary><c>!gp</c>: the guest receives #GP and nothing in the APIC changes.</summary>
    GeneralProtection,

    /// <summary><c>= EVENT</c> on <c>accept</c>: the CPU takes this event.</summary>
    Event,

    /// <summary><c>= running | wait-for-sipi</c> on <c>state</c>.</summary>
    RunState,

    /// <summary><c>= ok | vmfail N | internal-error ... | l1-exit ... | not-in-l2 | set | clear</c> on a nested command (<see cref="NestedOutcome"/>).</summary>
    Nested,
}
