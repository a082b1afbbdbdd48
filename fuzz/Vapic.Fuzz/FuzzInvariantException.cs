namespace Vapic.Fuzz;

/// <summary>
/// The code under test returned normally but broke the oracle: a refused restore changed the
/// machine, a decoded value does not re-encode, an APIC's priority registers disagree. Thrown so
/// that SharpFuzz, the replay and the smoke run report the input exactly like an escaped exception.
/// </summary>
public sealed class FuzzInvariantException : Exception
{
    /// <summary>Creates the exception with the broken invariant as its message.</summary>
    public FuzzInvariantException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the broken invariant and what caused it.</summary>
    public FuzzInvariantException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception without a message (for serializers; the harness always gives one).</summary>
    public FuzzInvariantException()
    {
    }
}
