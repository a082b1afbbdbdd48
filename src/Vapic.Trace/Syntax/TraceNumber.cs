namespace Vapic.Trace.Syntax;

/// <summary>The outcome of reading a number token.</summary>
internal enum NumberStatus : byte
{
    Ok,
    Malformed,
    TooLarge,
}

/// <summary>
/// Reads trace numbers: decimal (<c>42</c>) or hexadecimal with a lower-case <c>0x</c> prefix
/// (<c>0x2a</c>, digits in either case), up to 64 bits, with <c>_</c> allowed between two digits.
/// </summary>
internal static class TraceNumber
{
    /// <summary>Parses <paramref name="token"/>; a malformed token wins over an overflowing one.</summary>
    public static NumberStatus TryParse(ReadOnlySpan<char> token, out ulong value)
    {
        value = 0;
        if (token.Length > 2 && token[0] == '0' && token[1] == 'x')
        {
            return ParseDigits(token[2..], hex: true, out value);
        }

        return ParseDigits(token, hex: false, out value);
    }

    private static NumberStatus ParseDigits(ReadOnlySpan<char> digits, bool hex, out ulong value)
    {
        ulong result = 0;
        bool tooLarge = false;
        bool previousWasDigit = false;
        foreach (char c in digits)
        {
            if (c == '_')
            {
                // "_ may separate digits": never first, last or doubled.
                if (!previousWasDigit)
                {
                    value = 0;
                    return NumberStatus.Malformed;
                }

                previousWasDigit = false;
                continue;
            }

            uint digit = hex ? HexDigit(c) : (uint)(c - '0');
            if (digit >= (hex ? 16u : 10u))
            {
                value = 0;
                return NumberStatus.Malformed;
            }

            if (hex)
            {
                tooLarge |= (result >> 60) != 0;
                result = (result << 4) | digit;
            }
            else
            {
                tooLarge |= result > (ulong.MaxValue - digit) / 10;
                result = unchecked((result * 10) + digit);
            }

            previousWasDigit = true;
        }

        if (!previousWasDigit)
        {
            value = 0;
            return NumberStatus.Malformed;
        }

        value = tooLarge ? 0 : result;
        return tooLarge ? NumberStatus.TooLarge : NumberStatus.Ok;
    }

    private static uint HexDigit(char c) => c switch
    {
        >= '0' and <= '9' => (uint)(c - '0'),
        >= 'a' and <= 'f' => (uint)(c - 'a' + 10),
        >= 'A' and <= 'F' => (uint)(c - 'A' + 10),
        _ => uint.MaxValue,
    };
}
