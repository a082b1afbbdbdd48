namespace Vapic.Trace.Syntax;

/// <summary>Why and where a trace was rejected.</summary>
/// <param name="Kind">The class of error, for programs.</param>
/// <param name="Location">The offending token (line 0 for errors about the file as a whole).</param>
/// <param name="Message">What was wrong, for people; names the token and, for likely typos, the nearest keyword.</param>
public sealed record TraceParseError(TraceErrorKind Kind, SourceLocation Location, string Message)
{
    /// <summary>Returns <c>file:line:column: message</c>.</summary>
    public override string ToString() => $"{Location}: {Message}";
}
