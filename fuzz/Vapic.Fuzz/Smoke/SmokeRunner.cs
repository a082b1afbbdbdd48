using System.Diagnostics;
using System.Security.Cryptography;

namespace Vapic.Fuzz.Smoke;

/// <summary>An input that made a target throw or break its oracle.</summary>
/// <param name="Target">The target's name.</param>
/// <param name="Origin">Where the input came from: a corpus file, or "mutation N of FILE".</param>
/// <param name="Input">The input bytes.</param>
/// <param name="Exception">The exception that escaped, with its stack.</param>
public sealed record FuzzFailure(string Target, string Origin, byte[] Input, Exception Exception)
{
    /// <summary>A short stable name for the input: the target and the first 16 hex digits of its SHA-256.</summary>
    public string Id => $"{Target}-{Convert.ToHexStringLower(SHA256.HashData(Input))[..16]}";

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Id} ({Origin}, {Input.Length} bytes): {Exception.GetType().Name}: {Exception.Message}";
}

/// <summary>What a replay or smoke run did.</summary>
/// <param name="Target">The target's name.</param>
/// <param name="Executions">How many inputs ran.</param>
/// <param name="Failures">The inputs that failed: every one in a replay, one per distinct exception site in a smoke run.</param>
/// <param name="Elapsed">The wall time.</param>
/// <param name="SlowestInput">The origin of the slowest input, for spotting near-hangs.</param>
/// <param name="SlowestTime">How long it took.</param>
public sealed record FuzzRunReport(string Target, int Executions, IReadOnlyList<FuzzFailure> Failures, TimeSpan Elapsed, string SlowestInput, TimeSpan SlowestTime)
{
    /// <summary>True when no input failed.</summary>
    public bool Passed => Failures.Count == 0;
}

/// <summary>Runs a target over fixed inputs (replay) or over seeded mutations of its corpus (smoke), without AFL.</summary>
public static class SmokeRunner
{
    /// <summary>Runs every input of <paramref name="inputs"/> once.</summary>
    public static FuzzRunReport Replay(FuzzTarget target, IReadOnlyList<FuzzInput> inputs)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(inputs);
        var run = new Run(target, everyFailure: true);
        foreach (FuzzInput input in inputs)
        {
            run.Execute(input.Name, input.Data);
        }

        return run.Report();
    }

    /// <summary>
    /// Runs <paramref name="iterations"/> mutations of <paramref name="corpus"/> made by a
    /// <see cref="Mutator"/> seeded with <paramref name="seed"/>: the same arguments run the same inputs.
    /// </summary>
    public static FuzzRunReport Smoke(FuzzTarget target, IReadOnlyList<FuzzInput> corpus, int iterations, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentOutOfRangeException.ThrowIfNegative(iterations);
        var mutator = new Mutator(corpus, target.IsText ? target.Dictionary : [], seed);
        var run = new Run(target, everyFailure: false);
        for (int i = 0; i < iterations; i++)
        {
            byte[] input = mutator.Next(out string baseName);
            run.Execute($"mutation {i} of {baseName}", input);
        }

        return run.Report();
    }

    /// <summary>
    /// Shrinks <paramref name="input"/> while it keeps failing the same way (same exception type and
    /// throwing method, or the same invariant): removes ever smaller chunks, then zeroes bytes.
    /// Returns the input unchanged when it does not fail.
    /// </summary>
    public static byte[] Minimize(FuzzTarget target, byte[] input)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(input);
        string? site = FailureSite(target, input);
        if (site is null)
        {
            return input;
        }

        byte[] best = input;
        for (int chunk = Math.Max(1, best.Length / 2); chunk >= 1; chunk /= 2)
        {
            for (int at = 0; at + chunk <= best.Length;)
            {
                byte[] candidate = [.. best.AsSpan(0, at), .. best.AsSpan(at + chunk)];
                if (FailureSite(target, candidate) == site)
                {
                    best = candidate;
                }
                else
                {
                    at += chunk;
                }
            }
        }

        for (int i = 0; i < best.Length; i++)
        {
            if (best[i] != 0)
            {
                byte[] candidate = [.. best];
                candidate[i] = 0;
                if (FailureSite(target, candidate) == site)
                {
                    best = candidate;
                }
            }
        }

        return best;
    }

    /// <summary>
    /// Writes each failure's input to <paramref name="directory"/> as <c>ID</c> and its exception
    /// as <c>ID.stack</c>; returns the input paths.
    /// </summary>
    public static IReadOnlyList<string> SaveFailures(FuzzRunReport report, string directory)
    {
        ArgumentNullException.ThrowIfNull(report);
        Directory.CreateDirectory(directory);
        var paths = new List<string>();
        foreach (FuzzFailure failure in report.Failures)
        {
            string path = Path.Combine(directory, failure.Id);
            File.WriteAllBytes(path, failure.Input);
            File.WriteAllText(path + FuzzCorpus.StackExtension, $"{failure.Origin}\n{failure.Exception}\n");
            paths.Add(path);
        }

        return paths;
    }

    private static string? FailureSite(FuzzTarget target, byte[] input)
    {
        try
        {
            target.Run(input);
            return null;
        }
        catch (Exception e)
        {
            return Run.Site(e);
        }
    }

    private sealed class Run(FuzzTarget target, bool everyFailure)
    {
        private readonly List<FuzzFailure> _failures = [];
        private readonly HashSet<string> _sites = [];
        private readonly Stopwatch _total = Stopwatch.StartNew();
        private int _executions;
        private string _slowest = "";
        private TimeSpan _slowestTime;

        public void Execute(string origin, byte[] input)
        {
            long start = Stopwatch.GetTimestamp();
            try
            {
                target.Run(input);
            }
            catch (Exception e)
            {
                // A smoke run keeps one failure per distinct exception type and throwing frame (a
                // thousand mutations of the same bug are one bug); a replay reports every input.
                if (_sites.Add(Site(e)) || everyFailure)
                {
                    _failures.Add(new FuzzFailure(target.Name, origin, input, e));
                }
            }

            _executions++;
            TimeSpan took = Stopwatch.GetElapsedTime(start);
            if (took > _slowestTime)
            {
                _slowestTime = took;
                _slowest = origin;
            }
        }

        public FuzzRunReport Report() => new(target.Name, _executions, _failures, _total.Elapsed, _slowest, _slowestTime);

        public static string Site(Exception e)
        {
            string? frame = new StackTrace(e, fNeedFileInfo: false).GetFrame(0)?.GetMethod() is { } method
                ? method.DeclaringType?.FullName + "." + method.Name
                : null;
            return e is FuzzInvariantException ? "invariant: " + e.Message.Split(':')[0] : e.GetType().FullName + " at " + frame;
        }
    }
}
