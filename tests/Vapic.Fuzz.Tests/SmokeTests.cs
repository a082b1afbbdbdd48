using Vapic.Fuzz.Smoke;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>
/// A fixed-seed smoke run per target: a few thousand AFL-style mutations of the seed corpus, the
/// same inputs on every run, none of which may throw or break an oracle.
/// </summary>
public sealed class SmokeTests
{
    /// <summary>The mutations per target; the whole project stays within about a minute on two cores.</summary>
    public const int Iterations = 3000;

    /// <summary>The fixed seed of CI's smoke run.</summary>
    public const ulong Seed = 0x5EED_0001;

    [Theory]
    [MemberData(nameof(TargetData.Names), MemberType = typeof(TargetData))]
    public void Smoke_FixedSeed_NoInputFails(string target)
    {
        FuzzRunReport report = SmokeRunner.Smoke(TargetData.Target(target), TargetData.Corpus(target), Iterations, Seed);

        Assert.Equal(Iterations, report.Executions);
        TargetData.AssertPassed(report);
    }
}
