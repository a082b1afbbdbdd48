using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;

namespace Vapic.Benchmarks;

/// <summary>
/// The configuration <c>bench/run</c> uses: BenchmarkDotNet's short job (one launch, three warm-up
/// and three measured iterations) so that the whole suite runs in a few minutes on two cores, the
/// memory diagnoser, and a JSON export that <see cref="PerformanceReport"/> reads back.
/// </summary>
internal static class BenchmarkConfig
{
    public static IConfig Create(string artifactsPath) =>
        DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithId("short"))
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddExporter(JsonExporter.Brief)
            .WithArtifactsPath(artifactsPath)
            .WithOptions(ConfigOptions.JoinSummary);
}
