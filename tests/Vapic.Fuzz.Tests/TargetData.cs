using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>Every fuzz target by name, for theories, and the corpus read once per target.</summary>
internal static class TargetData
{
    private static readonly Dictionary<string, IReadOnlyList<FuzzInput>> s_corpora = [];

    /// <summary>The repository root (the tests run from bin/ below it).</summary>
    public static string Root { get; } = FuzzCorpus.FindRepositoryRoot();

    /// <summary>The target names as theory data.</summary>
    public static TheoryData<string> Names => [.. FuzzTargets.Names];

    /// <summary>The target called <paramref name="name"/>.</summary>
    public static FuzzTarget Target(string name) => FuzzTargets.Find(name) ?? throw new ArgumentException($"no target {name}", nameof(name));

    /// <summary>The checked-in seed corpus of <paramref name="name"/>, <c>fuzz/corpus/NAME/</c>.</summary>
    public static IReadOnlyList<FuzzInput> Corpus(string name)
    {
        lock (s_corpora)
        {
            if (!s_corpora.TryGetValue(name, out IReadOnlyList<FuzzInput>? corpus))
            {
                corpus = FuzzCorpus.Load(FuzzCorpus.CorpusDirectory(Root, name));
                s_corpora[name] = corpus;
            }

            return corpus;
        }
    }

    /// <summary>Fails with every failure's input origin and exception, so a red run says what to reproduce.</summary>
    public static void AssertPassed(Smoke.FuzzRunReport report)
    {
        string failures = string.Join("\n\n", report.Failures.Select(f => $"{f}\n{f.Exception}\ninput (hex): {Convert.ToHexString(f.Input)}"));
        Assert.True(report.Passed, $"{report.Target}: {report.Failures.Count} failing inputs\n{failures}");
    }
}
