namespace Vapic.Trace.Syntax;

/// <summary>What a trace does to an interrupt line (an IOAPIC pin or a LAPIC LINT pin).</summary>
public enum LineAction : byte
{
    /// <summary>The line is asserted (lapic-reference A23: regardless of the programmed polarity).</summary>
    High,

    /// <summary>The line is deasserted.</summary>
    Low,

    /// <summary>The line goes high, then low, within the one command.</summary>
    Pulse,
}
