using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Vapic.Benchmarks;

// Usage:
//   Vapic.Benchmarks [run] [--artifacts DIR] [BenchmarkDotNet options, e.g. --filter *Timer*]
//       runs the benchmarks (all of them unless filtered) with the short job, then prints the table
//   Vapic.Benchmarks report [--artifacts DIR]
//       prints the table from the results already under DIR
const string DefaultArtifacts = "BenchmarkDotNet.Artifacts";

var rest = new List<string>(args);
bool reportOnly = false;
if (rest.Count > 0 && rest[0] is "run" or "report")
{
    reportOnly = rest[0] == "report";
    rest.RemoveAt(0);
}

string artifacts = DefaultArtifacts;
int artifactsAt = rest.IndexOf("--artifacts");
if (artifactsAt >= 0)
{
    if (artifactsAt + 1 >= rest.Count)
    {
        Console.Error.WriteLine("--artifacts needs a directory");
        return 2;
    }

    artifacts = rest[artifactsAt + 1];
    rest.RemoveRange(artifactsAt, 2);
}

artifacts = Path.GetFullPath(artifacts);
if (reportOnly)
{
    return PerformanceReport.Print(artifacts, Console.Out) ? 0 : 1;
}

if (!rest.Contains("--filter") && !rest.Contains("-f"))
{
    // Without a filter BenchmarkSwitcher asks interactively; the default is everything.
    rest.AddRange(["--filter", "*"]);
}

Type[] benchmarks =
[
    typeof(RegisterAccessBenchmarks),
    typeof(UnicastIpiBenchmarks),
    typeof(BroadcastIpiBenchmarks),
    typeof(TimerExpiryBenchmarks),
    typeof(TraceReplayBenchmarks),
    typeof(ModeDeliveryBenchmarks),
];
IEnumerable<Summary> summaries = BenchmarkSwitcher.FromTypes(benchmarks).Run([.. rest], BenchmarkConfig.Create(artifacts));
bool allRan = true;
foreach (Summary summary in summaries)
{
    foreach (BenchmarkReport report in summary.Reports)
    {
        if (!report.Success || report.ResultStatistics is null)
        {
            Console.Error.WriteLine($"benchmark failed: {report.BenchmarkCase.DisplayInfo}");
            allRan = false;
        }
    }

    allRan &= !summary.HasCriticalValidationErrors;
}

Console.WriteLine();
bool printed = PerformanceReport.Print(artifacts, Console.Out);
return allRan && printed ? 0 : 1;
