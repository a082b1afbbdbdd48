using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vapic.Apic;

/// <summary>
/// A 256-bit vector bitmap (IRR, ISR, TMR): bit V stands for interrupt vector V. Stored as four
/// 64-bit words so that the highest set vector is found with at most four LZCNTs.
/// </summary>
public struct InterruptBitmap : IEquatable<InterruptBitmap>
{
    private Words _words;

    [InlineArray(4)]
    private struct Words
    {
        private ulong _element0;
    }

    /// <summary>True when no vector is set.</summary>
    public readonly bool IsEmpty => (_words[0] | _words[1] | _words[2] | _words[3]) == 0;

    /// <summary>Tests vector <paramref name="vector"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Get(int vector) => (_words[(vector >> 6) & 3] & (1UL << vector)) != 0;

    /// <summary>Sets vector <paramref name="vector"/>; returns true if it was already set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Set(int vector)
    {
        ref ulong w = ref _words[(vector >> 6) & 3];
        ulong bit = 1UL << vector;
        bool was = (w & bit) != 0;
        w |= bit;
        return was;
    }

    /// <summary>Clears vector <paramref name="vector"/>; returns true if it was set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Clear(int vector)
    {
        ref ulong w = ref _words[(vector >> 6) & 3];
        ulong bit = 1UL << vector;
        bool was = (w & bit) != 0;
        w &= ~bit;
        return was;
    }

    /// <summary>Sets or clears vector <paramref name="vector"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Assign(int vector, bool value)
    {
        if (value)
        {
            Set(vector);
        }
        else
        {
            Clear(vector);
        }
    }

    /// <summary>The highest set vector, or -1 when empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Highest()
    {
        for (int i = 3; i >= 0; i--)
        {
            ulong w = _words[i];
            if (w != 0)
            {
                return (i << 6) + 63 - BitOperations.LeadingZeroCount(w);
            }
        }

        return -1;
    }

    /// <summary>The number of set vectors.</summary>
    public readonly int Count =>
        BitOperations.PopCount(_words[0]) + BitOperations.PopCount(_words[1]) +
        BitOperations.PopCount(_words[2]) + BitOperations.PopCount(_words[3]);

    /// <summary>The 32-bit register chunk <paramref name="index"/> (0..7): vectors 32*index .. 32*index+31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly uint GetChunk(int index) => (uint)(_words[(index >> 1) & 3] >> ((index & 1) << 5));

    /// <summary>Replaces the 32-bit chunk <paramref name="index"/> (0..7).</summary>
    public void SetChunk(int index, uint value)
    {
        ref ulong w = ref _words[(index >> 1) & 3];
        int shift = (index & 1) << 5;
        w = (w & ~(0xFFFF_FFFFUL << shift)) | ((ulong)value << shift);
    }

    /// <summary>The 64-bit word <paramref name="index"/> (0..3): vectors 64*index .. 64*index+63.</summary>
    public readonly ulong GetWord(int index) => _words[index & 3];

    /// <summary>Replaces the 64-bit word <paramref name="index"/> (0..3).</summary>
    public void SetWord(int index, ulong value) => _words[index & 3] = value;

    /// <summary>The 64-bit word <paramref name="index"/> (0..3) in place, for acceptance loops that update it directly.</summary>
    [UnscopedRef]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref ulong Word(int index) => ref _words[index & 3];

    /// <summary>Clears every vector.</summary>
    public void ClearAll() => this = default;

    /// <summary>ORs <paramref name="other"/> into this bitmap.</summary>
    public void UnionWith(in InterruptBitmap other)
    {
        for (int i = 0; i < 4; i++)
        {
            _words[i] |= other._words[i];
        }
    }

    /// <inheritdoc/>
    public readonly bool Equals(InterruptBitmap other) =>
        _words[0] == other._words[0] && _words[1] == other._words[1] &&
        _words[2] == other._words[2] && _words[3] == other._words[3];

    /// <inheritdoc/>
    public override readonly bool Equals(object? obj) => obj is InterruptBitmap b && Equals(b);

    /// <inheritdoc/>
    public override readonly int GetHashCode() => HashCode.Combine(_words[0], _words[1], _words[2], _words[3]);

    public static bool operator ==(InterruptBitmap left, InterruptBitmap right) => left.Equals(right);

    public static bool operator !=(InterruptBitmap left, InterruptBitmap right) => !left.Equals(right);

    /// <inheritdoc/>
    public override readonly string ToString() =>
        $"{_words[3]:x16}{_words[2]:x16}{_words[1]:x16}{_words[0]:x16}";
}
