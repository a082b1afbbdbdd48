using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;

namespace Vapic.Trace.Syntax;

/// <summary>The outcome of parsing a trace: the document, or the errors that rejected it.</summary>
public sealed class TraceParseResult
{
    private TraceParseResult(TraceDocument? document, ImmutableArray<TraceParseError> errors)
    {
        Document = document;
        Errors = errors;
    }

    /// <summary>The parsed trace; null when <see cref="Errors"/> is not empty.</summary>
    public TraceDocument? Document { get; }

    /// <summary>Why the trace was rejected (the parser stops at the first error); empty on success.</summary>
    public ImmutableArray<TraceParseError> Errors { get; }

    /// <summary>True when the trace parsed and <see cref="Document"/> is set.</summary>
    [MemberNotNullWhen(true, nameof(Document))]
    public bool Succeeded => Document is not null;

    internal static TraceParseResult Success(TraceDocument document) => new(document, []);

    internal static TraceParseResult Failure(TraceParseError error) => new(null, [error]);
}
