using Vapic.Fuzz.Smoke;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>The whole checked-in seed corpus of every target replays with no exception and every oracle holding.</summary>
public sealed class CorpusReplayTests
{
    [Theory]
    [MemberData(nameof(TargetData.Names), MemberType = typeof(TargetData))]
    public void Replay_WholeSeedCorpus_EveryInputPasses(string target)
    {
        IReadOnlyList<FuzzInput> corpus = TargetData.Corpus(target);
        Assert.NotEmpty(corpus);

        FuzzRunReport report = SmokeRunner.Replay(TargetData.Target(target), corpus);

        Assert.Equal(corpus.Count, report.Executions);
        TargetData.AssertPassed(report);
    }

    [Theory]
    [MemberData(nameof(TargetData.Names), MemberType = typeof(TargetData))]
    public void Corpus_HoldsEverySeedTheTargetGenerates(string target)
    {
        // The binary seeds come from the code (--write-seeds); each must be on disk so AFL starts
        // from it. Their bytes may lag the generator, so only presence is required here.
        IReadOnlyList<FuzzInput> corpus = TargetData.Corpus(target);
        foreach (FuzzSeed seed in TargetData.Target(target).GenerateSeeds(TargetData.Root))
        {
            Assert.Contains(corpus, input => input.Name == seed.FileName);
        }
    }

    [Fact]
    public void Load_CrashFolderNotes_AreNotInputs()
    {
        string folder = Path.Combine(Path.GetTempPath(), "vapic-fuzz-load-" + Environment.ProcessId);
        Directory.CreateDirectory(Path.Combine(folder, ".state"));
        try
        {
            File.WriteAllBytes(Path.Combine(folder, "b"), [2]);
            File.WriteAllBytes(Path.Combine(folder, "a"), [1]);
            File.WriteAllText(Path.Combine(folder, "a" + FuzzCorpus.StackExtension), "stack");
            File.WriteAllText(Path.Combine(folder, "README.txt"), "afl");
            File.WriteAllBytes(Path.Combine(folder, ".state", "c"), [3]);

            IReadOnlyList<FuzzInput> inputs = FuzzCorpus.Load(folder);

            Assert.Equal(["a", "b"], inputs.Select(i => i.Name));
            Assert.Equal([1], inputs[0].Data);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
