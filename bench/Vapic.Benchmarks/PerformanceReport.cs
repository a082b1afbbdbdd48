using System.Globalization;
using System.Text.Json;

namespace Vapic.Benchmarks;

/// <summary>
/// Turns BenchmarkDotNet's JSON results (<c>results/*-report-brief.json</c> under the artifacts
/// folder) into the table of docs/performance.md: each benchmark's figure in the unit its target
/// is stated in (ns per operation, ns per target, expiries or lines per second, a ratio), the
/// target, and whether it is met. Figures come from the median of the measured iterations. The
/// newest result of each benchmark case wins, so a filtered run updates only its own rows.
/// </summary>
internal static class PerformanceReport
{
    private const string Register = nameof(RegisterAccessBenchmarks);
    private const string Unicast = nameof(UnicastIpiBenchmarks);
    private const string Broadcast = nameof(BroadcastIpiBenchmarks);
    private const string Timer = nameof(TimerExpiryBenchmarks);
    private const string Replay = nameof(TraceReplayBenchmarks);
    private const string ModeDelivery = nameof(ModeDeliveryBenchmarks);

    private sealed record Result(string Type, string Method, string Parameters, double? MedianNs, long? BytesPerOperation);

    private sealed record Row(string Benchmark, string Figure, string Target, string Met, string Allocated);

    /// <summary>Prints the table for the results under <paramref name="artifactsPath"/>; returns false when there are none.</summary>
    public static bool Print(string artifactsPath, TextWriter output)
    {
        string resultsPath = Path.Combine(artifactsPath, "results");
        FileInfo[] files = Directory.Exists(resultsPath)
            ? new DirectoryInfo(resultsPath).GetFiles("*-report-brief.json")
            : [];
        if (files.Length == 0)
        {
            output.WriteLine($"No BenchmarkDotNet results in {resultsPath}: run the benchmarks first.");
            return false;
        }

        Array.Sort(files, (a, b) => a.LastWriteTimeUtc.CompareTo(b.LastWriteTimeUtc));
        var results = new Dictionary<(string Type, string Method, string Parameters), Result>();
        string host = "";
        foreach (FileInfo file in files)
        {
            using JsonDocument json = JsonDocument.Parse(File.ReadAllText(file.FullName));
            host = DescribeHost(json.RootElement, file.LastWriteTimeUtc);
            foreach (JsonElement benchmark in json.RootElement.GetProperty("Benchmarks").EnumerateArray())
            {
                Result result = ReadResult(benchmark);
                results[(result.Type, result.Method, result.Parameters)] = result;
            }
        }

        List<Row> rows = BuildRows(results);
        output.WriteLine(host);
        output.WriteLine();
        WriteTable(rows, output);
        output.WriteLine();
        output.WriteLine("Figures: median of the measured iterations. Allocated: bytes per operation as BenchmarkDotNet's memory diagnoser rounds them (per target, expiry or line where the figure is).");
        return true;
    }

    private static List<Row> BuildRows(Dictionary<(string, string, string), Result> results)
    {
        Result? Find(string type, string method, string parameters = "") =>
            results.GetValueOrDefault((type, method, NormalizeParameters(parameters)));

        Result? unicast4 = Find(Unicast, nameof(UnicastIpiBenchmarks.RoundTrip), "VcpuCount=4&Mode=none");
        Result? unicast4096 = Find(Unicast, nameof(UnicastIpiBenchmarks.RoundTrip), "VcpuCount=4096&Mode=none");
        Result? unicast4Emulated = Find(Unicast, nameof(UnicastIpiBenchmarks.RoundTrip), "VcpuCount=4&Mode=emulated");
        Result? unicast4096Emulated = Find(Unicast, nameof(UnicastIpiBenchmarks.RoundTrip), "VcpuCount=4096&Mode=emulated");
        var rows = new List<Row>
        {
            Time("xAPIC TPR read (MMIO 0xFEE00080)", Find(Register, nameof(RegisterAccessBenchmarks.XApicTprRead)), "ns", 10, zeroAllocation: true),
            Time("xAPIC TPR write (MMIO 0xFEE00080)", Find(Register, nameof(RegisterAccessBenchmarks.XApicTprWrite)), "ns", 10, zeroAllocation: true),
            Time("x2APIC EOI (WRMSR 0x80B), incl. accept + acknowledge", Find(Register, nameof(RegisterAccessBenchmarks.X2ApicAcceptAcknowledgeEoi)), "ns", 10, zeroAllocation: true),
            Time("x2APIC self IPI + vCPU accept + EOI", Find(Register, nameof(RegisterAccessBenchmarks.X2ApicSelfIpiAcceptEoi)), "ns", null, zeroAllocation: false),
            Time("Unicast IPI round trip, 4 vCPUs", unicast4, "ns", 60, zeroAllocation: false),
            Time("Unicast IPI round trip, 4096 vCPUs", unicast4096, "ns", 60, zeroAllocation: false),
            Ratio("Unicast IPI 4096 / 4 vCPUs", unicast4096, unicast4, 1.3),
            Time("Unicast IPI round trip, 4 vCPUs, 'emulated' mode", unicast4Emulated, "ns", 60, zeroAllocation: false),
            Time("Unicast IPI round trip, 4096 vCPUs, 'emulated' mode", unicast4096Emulated, "ns", 60, zeroAllocation: false),
            Ratio("Unicast IPI 4096 / 4 vCPUs, 'emulated' mode", unicast4096Emulated, unicast4Emulated, 1.3),
            Time("Broadcast IPI to 4096 vCPUs (routing + IRR)", Find(Broadcast, nameof(BroadcastIpiBenchmarks.Broadcast)), "ns/target", 5, zeroAllocation: false),
            Time("Broadcast IPI + accept + EOI on all 4096", Find(Broadcast, nameof(BroadcastIpiBenchmarks.BroadcastAcceptEoi)), "ns/target", null, zeroAllocation: false),
            Rate("Timer expiries, 4096 periodic LAPIC timers", Find(Timer, nameof(TimerExpiryBenchmarks.Expiries)), "expiries/s", 20e6),
            Rate("Trace parse + replay (1M lines)", Find(Replay, nameof(TraceReplayBenchmarks.ParseAndReplay)), "lines/s", 5e6),
            Time("Unicast IPI round trip, 8 vCPUs, no mode", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=none"), "ns", null, zeroAllocation: false),
            Time("  same under 'emulated'", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=emulated"), "ns", null, zeroAllocation: false),
            Time("  same under 'apicv'", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=apicv"), "ns", null, zeroAllocation: false),
            Time("  same under 'avic'", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=avic"), "ns", null, zeroAllocation: false),
            Time("  same under 'passthrough'", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=passthrough"), "ns", null, zeroAllocation: false),
            Time("  same under 'savic'", Find(ModeDelivery, nameof(ModeDeliveryBenchmarks.RoundTrip), "Mode=savic"), "ns", null, zeroAllocation: false),
            Rate("Trace parse only", Find(Replay, nameof(TraceReplayBenchmarks.ParseOnly)), "lines/s", null),
            Rate("Trace replay only (parsed document)", Find(Replay, nameof(TraceReplayBenchmarks.ReplayOnly)), "lines/s", null),
        };
        return rows;
    }

    private static Row Time(string name, Result? result, string unit, double? targetNs, bool zeroAllocation)
    {
        string target = targetNs is null ? "-" : $"<= {Format(targetNs.Value)} {unit}" + (zeroAllocation ? ", 0 B" : "");
        if (result?.MedianNs is not double median)
        {
            return Missing(name, target);
        }

        bool met = targetNs is null || (median <= targetNs.Value && (!zeroAllocation || result.BytesPerOperation == 0));
        return new Row(name, $"{Format(median)} {unit}", target, Verdict(targetNs is null, met), Allocated(result));
    }

    private static Row Rate(string name, Result? result, string unit, double? targetPerSecond)
    {
        string target = targetPerSecond is null ? "-" : $">= {targetPerSecond.Value / 1e6:0.#} M {unit}";
        if (result?.MedianNs is not double median)
        {
            return Missing(name, target);
        }

        double perSecond = 1e9 / median;
        bool met = targetPerSecond is null || perSecond >= targetPerSecond.Value;
        return new Row(name, $"{perSecond / 1e6:0.0} M {unit} ({Format(median)} ns each)", target, Verdict(targetPerSecond is null, met), Allocated(result));
    }

    private static Row Ratio(string name, Result? large, Result? small, double target)
    {
        string targetText = $"<= {target:0.0#}x";
        if (large?.MedianNs is not double l || small?.MedianNs is not double s || s <= 0)
        {
            return Missing(name, targetText);
        }

        double ratio = l / s;
        return new Row(name, $"{ratio:0.00}x", targetText, Verdict(false, ratio <= target), "");
    }

    private static Row Missing(string name, string target) => new(name, "not measured", target, "-", "");

    private static string Verdict(bool informational, bool met) => informational ? "info" : met ? "yes" : "NO";

    private static string Allocated(Result result) => result.BytesPerOperation is long bytes ? $"{bytes} B" : "?";

    private static string Format(double value) =>
        value.ToString(value >= 100 ? "0" : value >= 10 ? "0.0" : "0.00", CultureInfo.InvariantCulture);

    private static void WriteTable(List<Row> rows, TextWriter output)
    {
        string[] header = ["benchmark", "figure", "target", "met?", "allocated"];
        var cells = new List<string[]> { header };
        foreach (Row row in rows)
        {
            cells.Add([row.Benchmark, row.Figure, row.Target, row.Met, row.Allocated]);
        }

        int[] widths = new int[header.Length];
        foreach (string[] line in cells)
        {
            for (int c = 0; c < line.Length; c++)
            {
                widths[c] = Math.Max(widths[c], line[c].Length);
            }
        }

        for (int r = 0; r < cells.Count; r++)
        {
            output.WriteLine("| " + string.Join(" | ", cells[r].Select((cell, c) => cell.PadRight(widths[c]))) + " |");
            if (r == 0)
            {
                output.WriteLine("|" + string.Join("|", widths.Select(w => new string('-', w + 2))) + "|");
            }
        }
    }

    private static Result ReadResult(JsonElement benchmark)
    {
        string type = benchmark.GetProperty("Type").GetString() ?? "";
        string method = benchmark.GetProperty("Method").GetString() ?? "";
        string parameters = NormalizeParameters(benchmark.TryGetProperty("Parameters", out JsonElement p) ? p.GetString() ?? "" : "");
        double? median = null;
        if (benchmark.TryGetProperty("Statistics", out JsonElement statistics) && statistics.ValueKind == JsonValueKind.Object &&
            statistics.TryGetProperty("Median", out JsonElement medianElement) && medianElement.ValueKind == JsonValueKind.Number)
        {
            median = medianElement.GetDouble();
        }

        long? bytes = null;
        if (benchmark.TryGetProperty("Memory", out JsonElement memory) && memory.ValueKind == JsonValueKind.Object &&
            memory.TryGetProperty("BytesAllocatedPerOperation", out JsonElement bytesElement) && bytesElement.ValueKind == JsonValueKind.Number)
        {
            bytes = bytesElement.GetInt64();
        }

        return new Result(type, method, parameters, median, bytes);
    }

    /// <summary>"B=2&amp;A=1" and "A=1, B=2" both become "A=1&amp;B=2", whatever separator and order the exporter used.</summary>
    private static string NormalizeParameters(string parameters)
    {
        string[] pairs = parameters.Split(['&', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Array.Sort(pairs, StringComparer.Ordinal);
        return string.Join('&', pairs);
    }

    private static string DescribeHost(JsonElement root, DateTime writtenUtc)
    {
        if (!root.TryGetProperty("HostEnvironmentInfo", out JsonElement host))
        {
            return $"Results of {writtenUtc:yyyy-MM-dd HH:mm} UTC";
        }

        string Text(string name) => host.TryGetProperty(name, out JsonElement e) ? e.ToString() : "?";
        return $"Results of {writtenUtc:yyyy-MM-dd HH:mm} UTC: {Text("ProcessorName")}, {Text("LogicalCoreCount")} logical cores, " +
            $"{Text("OsVersion")}, {Text("RuntimeVersion")}, SDK {Text("DotNetCliVersion")}, BenchmarkDotNet {Text("BenchmarkDotNetVersion")}";
    }
}
