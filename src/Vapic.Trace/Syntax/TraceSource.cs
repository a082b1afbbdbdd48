namespace Vapic.Trace.Syntax;

/// <summary>The file name and text of one parsed trace, shared by all of its commands.</summary>
internal sealed class TraceSource(string fileName, string text)
{
    public string FileName { get; } = fileName;

    public string Text { get; } = text;

    /// <summary>The 1-based column of the first token of the line starting at <paramref name="lineStart"/>.</summary>
    public int FirstTokenColumn(int lineStart)
    {
        int position = lineStart;
        while (position < Text.Length && Text[position] is ' ' or '\t' or '\r')
        {
            position++;
        }

        return position - lineStart + 1;
    }

    /// <summary>The line starting at <paramref name="lineStart"/>, without its '\n' or "\r\n" terminator.</summary>
    public ReadOnlyMemory<char> LineAt(int lineStart)
    {
        int length = Text.AsSpan(lineStart).IndexOf('\n');
        if (length < 0)
        {
            length = Text.Length - lineStart;
        }

        if (length > 0 && Text[lineStart + length - 1] == '\r')
        {
            length--;
        }

        return Text.AsMemory(lineStart, length);
    }
}
