using Xunit;

namespace Vapic.Cli.Tests;

/// <summary><c>vapic replay</c> with the passthrough host options (<c>--host-cpus</c>, <c>--pinning</c>, <c>--intercept-*</c>).</summary>
public sealed class ReplayHostCliTests
{
    // The BSP starts the AP (INIT, SIPI), both enter x2APIC; vCPU 0 sends fixed 0x40 to APIC 1
    // and reads ICR back; vCPU 1 takes it.
    private const string IpiTrace = """
        machine vcpus=2
        0 wrmsr 0x1b 0xfee00d00
        0 wrmsr 0x80f 0x1ff
        0 wrmsr 0x830 0x0000000100004500
        1 accept = init
        0 wrmsr 0x830 0x0000000100004608
        1 accept = sipi 0x08
        1 wrmsr 0x1b 0xfee00c00
        1 wrmsr 0x80f 0x1ff
        0 wrmsr 0x830 0x0000000100000040
        0 rdmsr 0x830 = 0x0000000100000040
        1 accept = 0x40
        """;

    private static string WriteTrace(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-replay-host-{Guid.NewGuid():N}.trace");
        File.WriteAllText(path, text);
        return path;
    }

    private static long CounterOf(string stats, string row)
    {
        // The stats table has one column per mode; passthrough is the only one here.
        string line = stats.Split('\n').Single(l => l.Contains(row, StringComparison.Ordinal));
        string last = line.Split(['|', '│', ' '], StringSplitOptions.RemoveEmptyEntries)[^1];
        return long.Parse(last.Replace(",", ""), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void PinnedHost_RunsAndShowsTheReadBack()
    {
        string trace = WriteTrace(IpiTrace);
        var (code, stdout, stderr) = CliTests.Run("replay", "--mode", "passthrough", "--host-cpus", "12", "--pinning", "5,9", "--stats", trace);
        Assert.True(code == 0, stderr);
        Assert.Equal(1, CounterOf(stdout, "physical IPIs sent"));
        Assert.Equal(1, CounterOf(stdout, "physical ICR read-backs"));

        // Intercepting ICR reads hides the physical destination: no read-back.
        (code, stdout, stderr) = CliTests.Run("replay", "--mode", "passthrough", "--pinning", "5,9", "--host-cpus", "12", "--intercept-icr-read", "--stats", trace);
        Assert.True(code == 0, stderr);
        Assert.Equal(0, CounterOf(stdout, "physical ICR read-backs"));
    }

    [Fact]
    public void PinningOfTheWrongLength_IsAnErrorAtTheMachineLine()
    {
        string trace = WriteTrace(IpiTrace);
        var (code, _, stderr) = CliTests.Run("replay", "--mode", "all", "--pinning", "3", "--quiet", trace);
        Assert.Equal(2, code);
        Assert.Contains($"{trace}:1:1: error: passthrough host: the pinning lists 1 pCPUs for 2 vCPUs", stderr);
    }

    [Theory]
    [InlineData("--mode", "emulated", "--pinning", "1,3")]
    [InlineData("--mode", "passthrough", "--host-cpus", "zero")]
    [InlineData("--mode", "passthrough", "--pinning", "1,x")]
    public void BadHostOptions_AreUsageErrors(params string[] options)
    {
        string trace = WriteTrace(IpiTrace);
        var (code, stdout, stderr) = CliTests.Run(["replay", .. options, trace]);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
    }
}
