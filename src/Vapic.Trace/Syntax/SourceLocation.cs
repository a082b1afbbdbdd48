namespace Vapic.Trace.Syntax;

/// <summary>
/// A place in a trace: the file name, the 1-based line and the 1-based column (a tab counts as one
/// column). Line 0 designates the file as a whole, for errors such as "file not found".
/// </summary>
/// <param name="FileName">The name the trace was parsed under.</param>
/// <param name="Line">The 1-based line number, or 0 for the whole file.</param>
/// <param name="Column">The 1-based column of the token, or 0 for the whole file.</param>
public readonly record struct SourceLocation(string FileName, int Line, int Column)
{
    /// <summary>Returns <c>file:line:column</c>, the form compilers use, or the bare file name for line 0.</summary>
    public override string ToString() => Line == 0 ? FileName : $"{FileName}:{Line}:{Column}";
}
