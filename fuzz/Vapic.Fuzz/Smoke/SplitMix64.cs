namespace Vapic.Fuzz.Smoke;

/// <summary>
/// A tiny seeded generator (SplitMix64) for the smoke mutations. <see cref="Random"/> with a seed
/// is repeatable too, but its sequence is an implementation detail of the runtime; this one is
/// fixed by the algorithm, so a seed names the same inputs on every machine and runtime.
/// </summary>
public struct SplitMix64
{
    private ulong _state;

    /// <summary>Starts the sequence of <paramref name="seed"/>.</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E37_79B9_7F4A_7C15;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB;
        return z ^ (z >> 31);
    }

    /// <summary>A value in [0, <paramref name="bound"/>); 0 when <paramref name="bound"/> is 0 or less.</summary>
    public int Below(int bound) => bound <= 0 ? 0 : (int)(Next() % (ulong)bound);

    /// <summary>True with probability 1 / <paramref name="n"/>.</summary>
    public bool OneIn(int n) => Below(n) == 0;
}
