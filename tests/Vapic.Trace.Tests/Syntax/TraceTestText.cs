using Vapic.Trace.Syntax;
using Xunit;

namespace Vapic.Trace.Tests.Syntax;

/// <summary>Parses test traces and asserts the outcome, so each test states only what it checks.</summary>
internal static class TraceTestText
{
    public const string FileName = "test.trace";

    public static TraceDocument ParseValid(string text)
    {
        TraceParseResult result = TraceParser.Parse(FileName, text);
        Assert.True(result.Succeeded, result.Errors.IsDefaultOrEmpty ? "no error reported" : result.Errors[0].ToString());
        Assert.Empty(result.Errors);
        return result.Document!;
    }

    /// <summary>Parses <paramref name="line"/> as the only command after <paramref name="machine"/>.</summary>
    public static TraceCommand ParseSingle(string line, string machine = "machine vcpus=4")
    {
        TraceDocument document = ParseValid(machine + "\n" + line + "\n");
        return Assert.Single(document.Commands);
    }

    public static TraceParseError ParseInvalid(string text)
    {
        TraceParseResult result = TraceParser.Parse(FileName, text);
        Assert.False(result.Succeeded, "the trace was accepted");
        Assert.Null(result.Document);
        return Assert.Single(result.Errors);
    }

    /// <summary>Asserts that <paramref name="text"/> is rejected with <paramref name="kind"/> at exactly line:column.</summary>
    public static TraceParseError AssertError(string text, TraceErrorKind kind, int line, int column)
    {
        TraceParseError error = ParseInvalid(text);
        Assert.Equal(kind, error.Kind);
        Assert.Equal(new SourceLocation(FileName, line, column), error.Location);
        return error;
    }
}
