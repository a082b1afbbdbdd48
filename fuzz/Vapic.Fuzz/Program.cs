using System.Globalization;
using System.Text;
using SharpFuzz;
using Vapic.Fuzz.Smoke;

namespace Vapic.Fuzz;

/// <summary>
/// <c>dotnet run --project fuzz/Vapic.Fuzz -- TARGET [MODE]</c>. Without a mode the target runs
/// under SharpFuzz for AFL (<see cref="Fuzzer.OutOfProcess.Run(Action{Stream})"/>; one input from
/// standard input when not started by afl-fuzz). Modes: <c>--in-process</c> (SharpFuzz's
/// persistent <see cref="Fuzzer.Run(Action{Stream})"/>), <c>--libfuzzer</c> (libfuzzer-dotnet),
/// <c>--replay PATH...</c>, <c>--smoke N [--seed S]</c>, <c>--write-seeds</c>. TARGET <c>all</c>
/// runs replay, smoke or write-seeds for every target.
/// </summary>
internal static class Program
{
    private const int Ok = 0;
    private const int Failed = 1;
    private const int Usage = 2;

    private static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            PrintUsage(Console.Out);
            return args.Length == 0 ? Usage : Ok;
        }

        if (args[0] == "list")
        {
            foreach (FuzzTarget target in FuzzTargets.All)
            {
                Console.WriteLine($"{target.Name,-12} {target.Description}");
            }

            return Ok;
        }

        IReadOnlyList<FuzzTarget> targets = args[0] == "all" ? FuzzTargets.All : FuzzTargets.Find(args[0]) is FuzzTarget one ? [one] : [];
        if (targets.Count == 0)
        {
            return Fail($"unknown target '{args[0]}' (targets: {string.Join(", ", FuzzTargets.Names)}, all)");
        }

        string mode = args.Length > 1 ? args[1] : "--afl";
        try
        {
            return mode switch
            {
                "--afl" or "--in-process" or "--libfuzzer" when targets.Count == 1 && args.Length <= 2 => RunSharpFuzz(targets[0], mode),
                "--replay" when args.Length > 2 => Replay(targets, args[2..]),
                "--smoke" => Smoke(targets, args[2..]),
                "--write-seeds" when args.Length == 2 => WriteSeeds(targets),
                "--minimize" when targets.Count == 1 && args.Length == 4 => Minimize(targets[0], args[2], args[3]),
                _ => Fail($"bad arguments: {string.Join(' ', args)}"),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"vapic-fuzz: {e.Message}");
            return Usage;
        }
    }

    private static int RunSharpFuzz(FuzzTarget target, string mode)
    {
        switch (mode)
        {
            case "--libfuzzer":
                Fuzzer.LibFuzzer.Run(span => target.Run(span));
                break;
            case "--in-process":
                Fuzzer.Run(stream => target.Run(ReadAll(stream)));
                break;
            default:
                Fuzzer.OutOfProcess.Run(stream => target.Run(ReadAll(stream)));
                break;
        }

        return Ok;
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    private static int Replay(IReadOnlyList<FuzzTarget> targets, string[] paths)
    {
        int failures = 0;
        foreach (FuzzTarget target in targets)
        {
            var inputs = new List<FuzzInput>();
            foreach (string path in paths)
            {
                // With 'all', each path is a parent of per-target folders (fuzz/corpus, fuzz/crashes).
                string folder = targets.Count > 1 ? Path.Combine(path, target.Name) : path;
                if (targets.Count > 1 && !Directory.Exists(folder))
                {
                    continue;
                }

                inputs.AddRange(FuzzCorpus.Load(folder));
            }

            FuzzRunReport report = SmokeRunner.Replay(target, inputs);
            Print(report);
            failures += report.Failures.Count;
        }

        return failures == 0 ? Ok : Failed;
    }

    private static int Smoke(IReadOnlyList<FuzzTarget> targets, string[] options)
    {
        // --smoke N [--seed S] [--no-save]
        if (options.Length == 0 || !int.TryParse(options[0], NumberStyles.None, CultureInfo.InvariantCulture, out int iterations) || iterations <= 0)
        {
            return Fail("--smoke needs a positive count: --smoke N [--seed S] [--no-save]");
        }

        ulong seed = 1;
        bool save = true;
        for (int i = 1; i < options.Length; i++)
        {
            if (options[i] == "--no-save")
            {
                save = false;
            }
            else if (options[i] == "--seed" && i + 1 < options.Length
                && ulong.TryParse(options[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out seed))
            {
                i++;
            }
            else
            {
                return Fail($"bad --smoke option '{options[i]}'");
            }
        }

        string root = FuzzCorpus.FindRepositoryRoot();
        int failures = 0;
        foreach (FuzzTarget target in targets)
        {
            IReadOnlyList<FuzzInput> corpus = FuzzCorpus.Load(FuzzCorpus.CorpusDirectory(root, target.Name));
            if (corpus.Count == 0)
            {
                return Fail($"the corpus of '{target.Name}' is empty; run --write-seeds first");
            }

            FuzzRunReport report = SmokeRunner.Smoke(target, corpus, iterations, seed);
            Print(report);
            failures += report.Failures.Count;
            if (save && !report.Passed)
            {
                foreach (string path in SmokeRunner.SaveFailures(report, FuzzCorpus.CrashDirectory(root, target.Name)))
                {
                    Console.WriteLine($"  saved {Path.GetRelativePath(root, path)}");
                }
            }
        }

        return failures == 0 ? Ok : Failed;
    }

    private static int Minimize(FuzzTarget target, string input, string output)
    {
        byte[] data = File.ReadAllBytes(input);
        byte[] smaller = SmokeRunner.Minimize(target, data);
        if (ReferenceEquals(smaller, data))
        {
            Console.WriteLine($"{input} does not fail; nothing written");
            return Failed;
        }

        File.WriteAllBytes(output, smaller);
        Console.WriteLine($"{input}: {data.Length} → {smaller.Length} bytes in {output}");
        return Ok;
    }

    private static int WriteSeeds(IReadOnlyList<FuzzTarget> targets)
    {
        string root = FuzzCorpus.FindRepositoryRoot();
        foreach (FuzzTarget target in targets)
        {
            string folder = FuzzCorpus.CorpusDirectory(root, target.Name);
            Directory.CreateDirectory(folder);
            IReadOnlyList<FuzzSeed> seeds = target.GenerateSeeds(root);
            foreach (FuzzSeed seed in seeds)
            {
                File.WriteAllBytes(Path.Combine(folder, seed.FileName), seed.Data);
            }

            Console.WriteLine($"{target.Name}: {seeds.Count} seeds in {Path.GetRelativePath(root, folder)}");
            if (target.IsText)
            {
                string dictionary = FuzzCorpus.DictionaryFile(root, target.Name);
                Directory.CreateDirectory(Path.GetDirectoryName(dictionary)!);
                File.WriteAllText(dictionary, AflDictionary(target.Dictionary));
                Console.WriteLine($"{target.Name}: dictionary {Path.GetRelativePath(root, dictionary)}");
            }
        }

        return Ok;
    }

    /// <summary>An afl-fuzz <c>-x</c> file: one quoted token per line, with \" \\ and non-printable bytes escaped.</summary>
    private static string AflDictionary(IReadOnlyList<string> tokens)
    {
        var text = new StringBuilder();
        for (int i = 0; i < tokens.Count; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"t{i}=\"");
            foreach (byte b in Encoding.UTF8.GetBytes(tokens[i]))
            {
                if (b is (byte)'"' or (byte)'\\' || b < 0x20 || b > 0x7E)
                {
                    text.Append(CultureInfo.InvariantCulture, $"\\x{b:X2}");
                }
                else
                {
                    text.Append((char)b);
                }
            }

            text.Append("\"\n");
        }

        return text.ToString();
    }

    private static void Print(FuzzRunReport report)
    {
        Console.WriteLine(
            $"{report.Target}: {report.Executions} inputs, {report.Failures.Count} failing, {report.Elapsed.TotalSeconds:F1} s " +
            $"(slowest {report.SlowestTime.TotalMilliseconds:F0} ms: {report.SlowestInput})");
        foreach (FuzzFailure failure in report.Failures)
        {
            Console.WriteLine($"  FAIL {failure}");
            Console.WriteLine(Indent(failure.Exception.ToString()));
        }
    }

    private static string Indent(string text) => "    " + text.ReplaceLineEndings("\n    ");

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"vapic-fuzz: {message}");
        PrintUsage(Console.Error);
        return Usage;
    }

    private static void PrintUsage(TextWriter writer)
    {
        writer.WriteLine("usage: dotnet run --project fuzz/Vapic.Fuzz -c Release -- TARGET [--afl | --in-process | --libfuzzer]");
        writer.WriteLine("       ... -- TARGET|all --replay PATH...          run files (or every file below folders) once each");
        writer.WriteLine("       ... -- TARGET|all --smoke N [--seed S] [--no-save]   N seeded mutations of fuzz/corpus/TARGET");
        writer.WriteLine("       ... -- TARGET|all --write-seeds              (re)write fuzz/corpus/TARGET from the code");
        writer.WriteLine("       ... -- TARGET --minimize IN OUT              shrink a failing input, keeping its failure");
        writer.WriteLine("       ... -- list");
        writer.WriteLine($"targets: {string.Join(", ", FuzzTargets.Names)}");
    }
}
