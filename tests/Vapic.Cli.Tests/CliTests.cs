using System.Diagnostics;
using CsCheck;
using Xunit;

namespace Vapic.Cli.Tests;

/// <summary>Runs the real <c>vapic</c> program as a process and checks exit codes and output.</summary>
public class CliTests
{
    private static readonly string s_vapic = Path.Combine(AppContext.BaseDirectory, "vapic.dll");

    internal static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(s_vapic);
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string WriteTrace(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-cli-{Guid.NewGuid():N}.trace");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void VersionPrintsTheVersion()
    {
        var (code, stdout, _) = Run("--version");
        Assert.Equal(0, code);
        Assert.Equal("0.1.0", stdout.Trim());
    }

    [Fact]
    public void DemoRunsOnDefaultsAndIsDeterministic()
    {
        var first = Run("demo", "--json");
        var second = Run("demo", "--json");
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(first.Stdout, second.Stdout);
        Assert.Contains("\"cpus\"", first.Stdout, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void BadOptionValueIsOneLineAndStatusTwo()
    {
        var (code, stdout, stderr) = Run("demo", "--duration", "abc");
        Assert.Equal(2, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", stderr + stdout);
    }

    [Fact]
    public void UnknownCommandIsStatusTwo()
    {
        var (code, _, stderr) = Run("nosuchcommand");
        Assert.Equal(2, code);
        Assert.NotEmpty(stderr.Trim());
    }

    [Fact]
    public void ReplayPassingTraceIsStatusZero()
    {
        string path = WriteTrace("machine vcpus=1\n0 read 0xfee00030 = 0x01050014\n");
        var (code, stdout, _) = Run("replay", path);
        Assert.Equal(0, code);
        Assert.Contains("PASS", stdout);
    }

    [Fact]
    public void ReplayFailedExpectationIsStatusOneAndNamesTheLine()
    {
        string path = WriteTrace("machine vcpus=1\n0 read 0xfee00030 = 0x5\n");
        var (code, _, stderr) = Run("replay", path);
        Assert.Equal(1, code);
        Assert.Contains(":2:1:", stderr);
        Assert.Contains("expected = 0x5", stderr);
    }

    [Fact]
    public void ReplayMalformedTraceIsStatusTwoWithLineAndColumn()
    {
        string path = WriteTrace("machine vcpus=1\n0 read 0xfee00031\n");
        var (code, _, stderr) = Run("replay", path);
        Assert.Equal(2, code);
        Assert.Contains(":2:8:", stderr);
    }

    [Fact]
    public void ReplayMissingFileIsStatusTwo()
    {
        var (code, _, stderr) = Run("replay", "/nonexistent/x.trace");
        Assert.Equal(2, code);
        Assert.Contains("x.trace", stderr);
    }

    [Fact]
    public void ReplayUnknownModeIsStatusTwo()
    {
        string path = WriteTrace("machine vcpus=1\n");
        var (code, _, stderr) = Run("replay", "--mode", "bogus", path);
        Assert.Equal(2, code);
        Assert.Contains("bogus", stderr);
    }

    [Fact]
    public void ReplayStatsPrintsExitsByMode()
    {
        string path = WriteTrace("machine vcpus=1\n0 write 0xfee000f0 0x1ff\n0 read 0xfee00080 = 0\n");
        var (code, stdout, _) = Run("replay", "--mode", "all", "--stats", path);
        Assert.Equal(0, code);
        Assert.Contains("exits (total)", stdout);
        Assert.Contains("emulated", stdout);
    }

    [Fact]
    public void RandomArgumentsNeverCrash()
    {
        string[] words = ["replay", "demo", "--mode", "all", "--stats", "--quiet", "--json", "--duration", "-1", "0", "x", "--help", "--version", "/nonexistent", "--x2apic", "99999999999999999999", ""];
        Gen.OneOf(words).Array[0, 5].Sample(args =>
        {
            var (code, stdout, stderr) = Run(args);
            return code is 0 or 1 or 2 && !(stdout + stderr).Contains("Unhandled exception", StringComparison.Ordinal);
        }, iter: 25, threads: 1);
    }
}

public class DemoSavicCliTests
{
    [Fact]
    public void DemoSavicRunsDeterministically()
    {
        var first = CliTests.Run("demo", "--mode", "savic");
        var second = CliTests.Run("demo", "--mode", "savic");
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(first.Stdout, second.Stdout);
        Assert.Contains("Secure AVIC", first.Stdout);
    }
}

public class ReplayStatsModeCountersTests
{
    [Fact]
    public void PassthroughRefusalAndTranslationCountersAreInStats()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-pt-{Guid.NewGuid():N}.trace");
        File.WriteAllText(path, """
            machine vcpus=2
            0 wrmsr 0x1b 0xfee00d00
            1 wrmsr 0x1b 0xfee00c00
            1 wrmsr 0x80f 0x1ff
            1 wrmsr 0x830 0x0000000000000200
            0 accept = smi
            """);
        var (code, stdout, _) = CliTests.Run("replay", "--mode", "passthrough", "--stats", path);
        Assert.Equal(0, code);
        Assert.Contains("passthrough: SMIs", stdout);
        Assert.Contains("passthrough: physical", stdout);
    }
}

public class RunAndStateCliTests
{
    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "examples")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("examples/ not found");
    }

    [Fact]
    public void RunAnExampleConfigIsStatusZero()
    {
        var (code, stdout, _) = CliTests.Run("run", Path.Combine(Root(), "examples", "apicv.toml"), "--json");
        Assert.Equal(0, code);
        Assert.Contains("interrupts_delivered", stdout);
    }

    [Fact]
    public void RunABadConfigIsOneLineWithLineAndColumnAndStatusTwo()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, "mode = \"emulated\"\n[machine]\nvcpuz = 4\n");
        var (code, _, stderr) = CliTests.Run("run", path);
        Assert.Equal(2, code);
        Assert.Contains(":3:1:", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public void StateShowOnJunkIsStatusTwo()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        var (code, stdout, stderr) = CliTests.Run("state", "show", path, "--from", "kvm");
        Assert.Equal(2, code);
        Assert.DoesNotContain("   at ", stdout + stderr);
    }

    [Fact]
    public void StateConvertWithUnknownFormatIsStatusTwo()
    {
        var (code, _, _) = CliTests.Run("state", "convert", "/nonexistent", "--from", "bogus", "--to", "kvm", "--out", "/tmp/x");
        Assert.Equal(2, code);
    }
}
