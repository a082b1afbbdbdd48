namespace Vapic.Trace.Syntax;

/// <summary>
/// Builds "unknown keyword" messages and, for a likely typo, names the nearest keyword. Runs only
/// on the error path, so it may allocate.
/// </summary>
internal static class KeywordSuggestion
{
    private const int MaxWordLength = 40;

    /// <summary>
    /// Returns "unknown WHAT 'word'; did you mean 'x'?" when a keyword is within a small edit distance
    /// (or differs only in case), otherwise "unknown WHAT 'word'; expected 'a', 'b' or 'c'", where
    /// <paramref name="nonKeyword"/> (such as "a VALUE") ends the list when the position also takes a number.
    /// </summary>
    public static string UnknownMessage(string what, ReadOnlySpan<char> word, string[] keywords, string? nonKeyword = null)
    {
        string shown = Shorten(word);
        string? nearest = Nearest(word, keywords);
        if (nearest is null)
        {
            string expected = nonKeyword is null
                ? JoinAlternatives(keywords)
                : $"{string.Join(", ", keywords.Select(k => $"'{k}'"))} or {nonKeyword}";
            return $"unknown {what} '{shown}'; expected {expected}";
        }

        if (word.Equals(nearest, StringComparison.OrdinalIgnoreCase))
        {
            return $"unknown {what} '{shown}'; keywords are lower case: did you mean '{nearest}'?";
        }

        return $"unknown {what} '{shown}'; did you mean '{nearest}'?";
    }

    /// <summary>The keyword nearest to <paramref name="word"/> if it is a plausible typo of it, else null.</summary>
    public static string? Nearest(ReadOnlySpan<char> word, string[] keywords)
    {
        if (word.IsEmpty || word.Length > MaxWordLength)
        {
            return null;
        }

        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string keyword in keywords)
        {
            int distance = Distance(word, keyword);
            if (distance < bestDistance)
            {
                best = keyword;
                bestDistance = distance;
            }
        }

        if (best is null)
        {
            return null;
        }

        // One edit on short keywords ("irq"), two on longer ones ("ioapic-version"), and never a
        // suggestion that would replace most of what was typed.
        int limit = best.Length <= 4 ? 1 : 2;
        return bestDistance <= limit && bestDistance < word.Length ? best : null;
    }

    /// <summary>"a, b or c".</summary>
    public static string JoinAlternatives(string[] keywords) => keywords.Length switch
    {
        0 => string.Empty,
        1 => $"'{keywords[0]}'",
        _ => string.Join(", ", keywords[..^1].Select(k => $"'{k}'")) + $" or '{keywords[^1]}'",
    };

    /// <summary>The token as shown in a message: at most 32 characters.</summary>
    public static string Shorten(ReadOnlySpan<char> token) =>
        token.Length <= 32 ? token.ToString() : string.Concat(token[..29], "...");

    /// <summary>Case-insensitive optimal string alignment distance (insert, delete, substitute, swap neighbours).</summary>
    private static int Distance(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        int columns = b.Length + 1;
        Span<int> d = stackalloc int[(a.Length + 1) * columns];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i * columns] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                int best = Math.Min(
                    Math.Min(d[((i - 1) * columns) + j] + 1, d[(i * columns) + j - 1] + 1),
                    d[((i - 1) * columns) + j - 1] + cost);
                if (i > 1 && j > 1
                    && char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 2])
                    && char.ToLowerInvariant(a[i - 2]) == char.ToLowerInvariant(b[j - 1]))
                {
                    best = Math.Min(best, d[((i - 2) * columns) + j - 2] + 1);
                }

                d[(i * columns) + j] = best;
            }
        }

        return d[(a.Length * columns) + b.Length];
    }
}
