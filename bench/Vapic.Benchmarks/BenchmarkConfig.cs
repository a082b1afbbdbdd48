using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;

namespace Vapic.Benchmarks;

/// <summary>
/// The configuration <c>bench/run</c> uses: a short job (one launch, three warm-up and five measured
/// iterations; BenchmarkDotNet's ShortRun has three, which on a small shared machine leaves a single
/// disturbed iteration in the middle of the figure) so that the whole suite runs in about five minutes
/// on two cores, the memory diagnoser, a Median column (the figure the report uses, as it shrugs
/// off an iteration slowed down by a neighbour), and a JSON export that
/// <see cref="PerformanceReport"/> reads back. The build of BenchmarkDotNet's generated project
/// may take several minutes on a busy two-core machine, so its timeout is raised from two minutes.
/// </summary>
internal static class BenchmarkConfig
{
    /// <summary>Warm-up iterations per benchmark case.</summary>
    public const int WarmupIterations = 3;

    /// <summary>Measured iterations per benchmark case.</summary>
    public const int MeasuredIterations = 5;

    /// <summary>The configuration, writing BenchmarkDotNet's artifacts under <paramref name="artifactsPath"/>.</summary>
    public static IConfig Create(string artifactsPath) =>
        DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithWarmupCount(WarmupIterations).WithIterationCount(MeasuredIterations).WithId("short"))
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddColumn(StatisticColumn.Median)
            .AddExporter(JsonExporter.Brief)
            .WithArtifactsPath(artifactsPath)
            .WithBuildTimeout(TimeSpan.FromMinutes(10))
            .WithOptions(ConfigOptions.JoinSummary);
}
