using BenchmarkDotNet.Attributes;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;

namespace Vapic.Benchmarks;

/// <summary>
/// Trace throughput: a 1,000,000-line trace (<see cref="BenchmarkTrace"/>) held in memory, parsed
/// and replayed in emulated mode, as <c>vapic replay</c> does after reading the file. Figures are
/// per line (OperationsPerInvoke = line count); parse and replay are also measured apart.
/// </summary>
[MemoryDiagnoser]
public class TraceReplayBenchmarks
{
    private const string FileName = "bench.trace";

    private string _text = null!;
    private TraceDocument _document = null!;

    /// <summary>Generates the trace, parses it and checks that it replays without a failed expectation.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _text = BenchmarkTrace.Generate();
        _document = ParseOnly();
        ModeRun run = TraceReplayer.Run(_document, ReplayMode.Emulated);
        if (!run.Passed)
        {
            throw new InvalidOperationException($"the benchmark trace does not replay: {run.Failure}");
        }
    }

    /// <summary>What <c>vapic replay</c> does per file once the text is read: parse, then replay.</summary>
    [Benchmark(OperationsPerInvoke = BenchmarkTrace.LineCount)]
    public ModeRun ParseAndReplay()
    {
        TraceDocument document = ParseOnly();
        return TraceReplayer.Run(document, ReplayMode.Emulated);
    }

    /// <summary>The parse alone.</summary>
    [Benchmark(OperationsPerInvoke = BenchmarkTrace.LineCount)]
    public TraceDocument ParseOnly()
    {
        TraceParseResult result = TraceParser.Parse(FileName, _text);
        return result.Document ?? throw new InvalidOperationException($"the benchmark trace does not parse: {result.Errors[0]}");
    }

    /// <summary>The replay alone, of the document parsed in setup.</summary>
    [Benchmark(OperationsPerInvoke = BenchmarkTrace.LineCount)]
    public ModeRun ReplayOnly() => TraceReplayer.Run(_document, ReplayMode.Emulated);
}
