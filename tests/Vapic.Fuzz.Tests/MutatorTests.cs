using Vapic.Fuzz.Smoke;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>The smoke mutator is deterministic, so a failing CI input can be reproduced from its seed.</summary>
public sealed class MutatorTests
{
    private static readonly FuzzInput[] s_corpus =
    [
        new("a", [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80]),
        new("b", "machine vcpus=2\n0 read 0xfee00020\n"u8.ToArray()),
        new("empty", []),
    ];

    [Fact]
    public void Next_SameSeed_SameInputs()
    {
        var first = new Mutator(s_corpus, ["machine", "read"], seed: 42);
        var second = new Mutator(s_corpus, ["machine", "read"], seed: 42);

        for (int i = 0; i < 500; i++)
        {
            Assert.Equal(first.Next(out string firstBase), second.Next(out string secondBase));
            Assert.Equal(firstBase, secondBase);
        }
    }

    [Fact]
    public void Next_DifferentSeeds_DifferentInputs()
    {
        var first = new Mutator(s_corpus, [], seed: 1);
        var second = new Mutator(s_corpus, [], seed: 2);

        int same = 0;
        for (int i = 0; i < 200; i++)
        {
            if (first.Next(out _).AsSpan().SequenceEqual(second.Next(out _)))
            {
                same++;
            }
        }

        Assert.True(same < 20, $"{same} of 200 inputs were equal");
    }

    [Fact]
    public void Next_ManyMutations_StayWithinTheLengthLimitAndChangeTheInput()
    {
        var mutator = new Mutator(s_corpus, [], seed: 7);
        int changed = 0;
        for (int i = 0; i < 2000; i++)
        {
            byte[] input = mutator.Next(out string baseName);
            Assert.True(input.Length <= Mutator.MaxInputLength);
            if (!input.AsSpan().SequenceEqual(s_corpus.First(c => c.Name == baseName).Data))
            {
                changed++;
            }
        }

        Assert.True(changed > 1800, $"only {changed} of 2000 inputs differ from their base");
    }

    [Fact]
    public void SplitMix64_Seed0_MatchesTheReferenceSequence()
    {
        // The first outputs of SplitMix64 seeded with 0 (Steele, Lea and Flood's reference code).
        var random = new SplitMix64(0);

        Assert.Equal(0xE220_A839_7B1D_CDAFUL, random.Next());
        Assert.Equal(0x6E78_9E6A_A1B9_65F4UL, random.Next());
        Assert.Equal(0x06C4_5D18_8009_454FUL, random.Next());
    }
}
