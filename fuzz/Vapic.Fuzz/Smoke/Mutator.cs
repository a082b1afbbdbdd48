using System.Buffers.Binary;
using System.Text;

namespace Vapic.Fuzz.Smoke;

/// <summary>
/// Deterministic AFL-style mutations for the smoke run: bit flips, random bytes, byte inserts and
/// deletes, block duplication, splices with another corpus input, interesting integers (in both
/// byte orders) and, for text targets, dictionary tokens and interesting numbers as text.
/// </summary>
public sealed class Mutator
{
    /// <summary>The largest input the mutator produces; longer results are cut.</summary>
    public const int MaxInputLength = 64 * 1024;

    private static readonly ulong[] s_interesting =
    [
        0, 1, 2, 0xF, 0x10, 0x7F, 0x80, 0xFE, 0xFF, 0x100, 0x3FF, 0x400, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF,
        0x1_0000, 0xFEE0_0000, 0xFEC0_0000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF,
        0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF,
    ];

    private static readonly string[] s_interestingText =
    [
        "0", "1", "-1", "15", "16", "255", "256", "4095", "4096", "4097", "0xff", "0x100", "0xfe", "0xffffffff",
        "0x100000000", "0xffffffffffffffff", "0x1ffffffffffffffff", "18446744073709551616", "9223372036854775807",
        "-9223372036854775808", "1_000", "0x", "_", "=", "\n", "\r\n", "\t", " ", "#", "\"", "[", "]", ",", "\0", "\u00e9", "\ufffd",
    ];

    private readonly IReadOnlyList<FuzzInput> _corpus;
    private readonly byte[][] _tokens;
    private SplitMix64 _random;

    /// <summary>Creates a mutator over <paramref name="corpus"/> (for splices) with <paramref name="seed"/>.</summary>
    /// <param name="corpus">The seed inputs; must not be empty.</param>
    /// <param name="dictionary">Tokens of the input language; empty for binary targets.</param>
    /// <param name="seed">The seed: the same seed and corpus give the same inputs.</param>
    public Mutator(IReadOnlyList<FuzzInput> corpus, IReadOnlyList<string> dictionary, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(dictionary);
        if (corpus.Count == 0)
        {
            throw new ArgumentException("the corpus is empty", nameof(corpus));
        }

        _corpus = corpus;
        var tokens = new List<byte[]>();
        if (dictionary.Count > 0)
        {
            foreach (string token in dictionary)
            {
                tokens.Add(Encoding.UTF8.GetBytes(token));
            }

            foreach (string token in s_interestingText)
            {
                tokens.Add(Encoding.UTF8.GetBytes(token));
            }
        }

        _tokens = [.. tokens];
        _random = new SplitMix64(seed);
    }

    /// <summary>
    /// The next input: a corpus input picked at random with one to four stacked mutations.
    /// <paramref name="baseName"/> is the name of the input it came from.
    /// </summary>
    public byte[] Next(out string baseName)
    {
        FuzzInput source = _corpus[_random.Below(_corpus.Count)];
        baseName = source.Name;
        var data = new List<byte>(source.Data);
        int count = 1 + _random.Below(4);
        for (int i = 0; i < count; i++)
        {
            MutateOnce(data);
        }

        if (data.Count > MaxInputLength)
        {
            data.RemoveRange(MaxInputLength, data.Count - MaxInputLength);
        }

        return [.. data];
    }

    private void MutateOnce(List<byte> data)
    {
        int kinds = _tokens.Length > 0 ? 10 : 8;
        switch (_random.Below(kinds))
        {
            case 0:
                FlipBit(data);
                break;
            case 1:
                SetRandomByte(data);
                break;
            case 2:
                InsertBytes(data);
                break;
            case 3:
                DeleteBytes(data);
                break;
            case 4:
                DuplicateBlock(data);
                break;
            case 5:
                Splice(data);
                break;
            case 6:
            case 7:
                OverwriteInteresting(data);
                break;
            default:
                InsertToken(data);
                break;
        }
    }

    private void FlipBit(List<byte> data)
    {
        if (data.Count == 0)
        {
            data.Add(0);
        }

        int at = _random.Below(data.Count);
        data[at] ^= (byte)(1 << _random.Below(8));
    }

    private void SetRandomByte(List<byte> data)
    {
        if (data.Count == 0)
        {
            data.Add((byte)_random.Next());
            return;
        }

        data[_random.Below(data.Count)] = (byte)_random.Next();
    }

    private void InsertBytes(List<byte> data)
    {
        int at = _random.Below(data.Count + 1);
        int length = 1 + _random.Below(_random.OneIn(8) ? 64 : 4);
        byte fill = _random.OneIn(2) ? (byte)_random.Next() : (byte)s_interesting[_random.Below(s_interesting.Length)];
        for (int i = 0; i < length; i++)
        {
            data.Insert(at, _random.OneIn(2) ? fill : (byte)_random.Next());
        }
    }

    private void DeleteBytes(List<byte> data)
    {
        if (data.Count == 0)
        {
            return;
        }

        int at = _random.Below(data.Count);
        int length = 1 + _random.Below(Math.Min(data.Count - at, _random.OneIn(8) ? 256 : 8));
        data.RemoveRange(at, length);
    }

    private void DuplicateBlock(List<byte> data)
    {
        if (data.Count == 0)
        {
            return;
        }

        int from = _random.Below(data.Count);
        int length = 1 + _random.Below(Math.Min(data.Count - from, 128));
        int to = _random.Below(data.Count + 1);
        int copies = 1 + _random.Below(_random.OneIn(4) ? 16 : 2);
        byte[] block = data.GetRange(from, length).ToArray();
        for (int i = 0; i < copies; i++)
        {
            data.InsertRange(to, block);
        }
    }

    private void Splice(List<byte> data)
    {
        byte[] other = _corpus[_random.Below(_corpus.Count)].Data;
        if (other.Length == 0)
        {
            return;
        }

        int cut = _random.Below(data.Count + 1);
        int from = _random.Below(other.Length);
        if (_random.OneIn(2))
        {
            // AFL's splice: this input's head, the other's tail.
            data.RemoveRange(cut, data.Count - cut);
            data.AddRange(other.AsSpan(from).ToArray());
        }
        else
        {
            int length = 1 + _random.Below(Math.Min(other.Length - from, 256));
            data.InsertRange(cut, other.AsSpan(from, length).ToArray());
        }
    }

    private void OverwriteInteresting(List<byte> data)
    {
        ulong value = s_interesting[_random.Below(s_interesting.Length)];
        if (_random.OneIn(4))
        {
            // Near an interesting value: off-by-one and friends.
            value = unchecked(value + (ulong)(_random.Below(33) - 16));
        }

        int width = 1 << _random.Below(4);
        Span<byte> bytes = stackalloc byte[8];
        if (_random.OneIn(2))
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt64BigEndian(bytes, value << (8 * (8 - width)));
        }

        if (data.Count < width)
        {
            data.AddRange(new byte[width - data.Count]);
        }

        int at = _random.Below(data.Count - width + 1);
        for (int i = 0; i < width; i++)
        {
            data[at + i] = bytes[i];
        }
    }

    private void InsertToken(List<byte> data)
    {
        byte[] token = _tokens[_random.Below(_tokens.Length)];
        int at = _random.Below(data.Count + 1);
        if (_random.OneIn(2) && data.Count > 0)
        {
            // Replace the word at the cut (up to the next separator) instead of inserting.
            int end = at;
            while (end < data.Count && data[end] is not ((byte)' ' or (byte)'\n' or (byte)'=' or (byte)','))
            {
                end++;
            }

            data.RemoveRange(at, end - at);
        }

        data.InsertRange(at, token);
    }
}
