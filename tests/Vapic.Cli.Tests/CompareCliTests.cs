using System.Text.Json;
using Xunit;

namespace Vapic.Cli.Tests;

/// <summary><c>vapic compare</c> as a process: output, determinism, exit codes 0/1/2.</summary>
public class CompareCliTests
{
    private static string WriteTrace(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-compare-{Guid.NewGuid():N}.trace");
        File.WriteAllText(path, text);
        return path;
    }

    private static void AssertUsageError(string[] args, string mention)
    {
        var (code, stdout, stderr) = CliTests.Run(args);
        Assert.Equal(2, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(mention, stderr, StringComparison.Ordinal);
        Assert.Equal("", stdout);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void JsonIsOneDeterministicObjectWithEveryModeDeliveringTheSame()
    {
        var first = CliTests.Run("compare", "ipi-storm", "--json");
        var second = CliTests.Run("compare", "ipi-storm", "--json");
        Assert.Equal(0, first.ExitCode);
        Assert.Equal(first.Stdout, second.Stdout);

        using JsonDocument json = JsonDocument.Parse(first.Stdout);
        JsonElement root = json.RootElement;
        Assert.Equal("ipi-storm", root.GetProperty("workload").GetString());
        Assert.Equal(8, root.GetProperty("vcpus").GetInt32());
        Assert.Equal("x2apic", root.GetProperty("apic").GetString());
        Assert.Equal(100, root.GetProperty("rounds").GetInt32());
        JsonElement[] modes = [.. root.GetProperty("modes").EnumerateArray()];
        Assert.Equal("emulated", modes[0].GetProperty("mode").GetString());
        foreach (JsonElement mode in modes)
        {
            // 8 vCPUs × 100 rounds, one IPI each.
            Assert.Equal(800, mode.GetProperty("interruptsDelivered").GetInt64());
            Assert.Equal(JsonValueKind.Object, mode.GetProperty("exits").ValueKind);
            Assert.Equal(JsonValueKind.Number, mode.GetProperty("exitsTotal").ValueKind);
            Assert.Equal(JsonValueKind.Number, mode.GetProperty("cyclesPerInterrupt").ValueKind);
        }

        // Emulated x2APIC: ICR and EOI WRMSR exits and one kick per IPI.
        Assert.Equal(1600, modes[0].GetProperty("exits").GetProperty("MsrWrite").GetInt64());
        Assert.Equal(800, modes[0].GetProperty("exits").GetProperty("ExternalInterrupt").GetInt64());
        Assert.Equal(3600.0, modes[0].GetProperty("cyclesPerInterrupt").GetDouble());
    }

    [Fact]
    public void OptionsShapeTheRun()
    {
        var (code, stdout, _) = CliTests.Run("compare", "device", "--vcpus", "4", "--xapic", "--halt-idle", "--duration", "50000", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        JsonElement root = json.RootElement;
        Assert.Equal(4, root.GetProperty("vcpus").GetInt32());
        Assert.Equal("xapic", root.GetProperty("apic").GetString());
        Assert.True(root.GetProperty("haltIdle").GetBoolean());
        Assert.Equal(5, root.GetProperty("rounds").GetInt32());
        JsonElement emulated = root.GetProperty("modes")[0];
        Assert.Equal(20, emulated.GetProperty("interruptsDelivered").GetInt64());
        Assert.Equal(20, emulated.GetProperty("events").GetProperty("WakeupBlockedVcpu").GetInt64());
        Assert.Equal(20, emulated.GetProperty("exits").GetProperty("ApicMmio").GetInt64());
    }

    [Fact]
    public void CostOverridesChangeTheEstimate()
    {
        var (code, stdout, _) = CliTests.Run("compare", "timer", "--rounds", "3", "--cost", "ExitRoundTrip=1000,Injection=50", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        JsonElement emulated = json.RootElement.GetProperty("modes")[0];

        // Per timer interrupt: a kick and an EOI WRMSR exit (1000 each) and an injection (50).
        Assert.Equal(2050.0, emulated.GetProperty("cyclesPerInterrupt").GetDouble());
        Assert.Equal(24 * 2050, emulated.GetProperty("cycles").GetInt64());
    }

    [Fact]
    public void TableAndChartShowEveryMode()
    {
        var (code, stdout, _) = CliTests.Run("compare", "mixed", "--rounds", "2");
        Assert.Equal(0, code);
        Assert.StartsWith("vapic compare: mixed, 8 vCPUs, x2APIC guest, targets running, 2 rounds (20000 ns)", stdout, StringComparison.Ordinal);
        foreach (string row in new[] { "exit: MsrWrite", "exit: ExternalInterrupt", "total exits", "interrupts delivered", "estimated cycles", "cycles per interrupt", "estimated cycles per delivered interrupt", "emulated" })
        {
            Assert.Contains(row, stdout, StringComparison.Ordinal);
        }

        Assert.Contains("█", stdout, StringComparison.Ordinal);
        Assert.Equal(stdout, CliTests.Run("compare", "mixed", "--rounds", "2").Stdout);
    }

    [Fact]
    public void TraceIsReplayedUnderEveryMode()
    {
        string path = WriteTrace("""
            machine vcpus=2
            0 write 0xfee000f0 0x1ff
            0 write 0xfee00300 0x00040041
            0 accept = 0x41
            0 write 0xfee000b0 0
            """);
        var (code, stdout, _) = CliTests.Run("compare", path, "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        JsonElement root = json.RootElement;
        Assert.Equal(path, root.GetProperty("workload").GetString());
        Assert.Equal(2, root.GetProperty("vcpus").GetInt32());
        Assert.False(root.TryGetProperty("rounds", out _));
        JsonElement emulated = root.GetProperty("modes")[0];
        Assert.Equal(1, emulated.GetProperty("interruptsDelivered").GetInt64());
        // SVR, ICR (self-IPI, no kick) and EOI writes.
        Assert.Equal(3, emulated.GetProperty("exits").GetProperty("ApicMmio").GetInt64());
        Assert.Equal(3, emulated.GetProperty("exitsTotal").GetInt64());

        var table = CliTests.Run("compare", path);
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("whole replay", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TraceWithAFailedExpectationIsStatusOne()
    {
        string path = WriteTrace("machine vcpus=1\n0 read 0xfee00030 = 0x5\n");
        var (code, _, stderr) = CliTests.Run("compare", path, "--json");
        Assert.Equal(1, code);
        Assert.Contains("vapic compare: mode emulated: ", stderr, StringComparison.Ordinal);
        Assert.Contains("expected = 0x5", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedTraceIsStatusTwoWithLineAndColumn()
    {
        string path = WriteTrace("machine vcpus=1\n0 read 0xfee00031\n");
        var (code, _, stderr) = CliTests.Run("compare", path);
        Assert.Equal(2, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(":2:8:", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void BadInputIsOneLineAndStatusTwo()
    {
        AssertUsageError(["compare", "bogus"], "'bogus' is neither a workload");
        AssertUsageError(["compare", "ipi-storm", "--vcpus", "1"], "--vcpus");
        AssertUsageError(["compare", "ipi-storm", "--vcpus", "256"], "--vcpus");
        AssertUsageError(["compare", "ipi-storm", "--vcpus", "x"], "--vcpus");
        AssertUsageError(["compare", "timer", "--duration", "9999"], "--duration");
        AssertUsageError(["compare", "timer", "--duration", "1000000001"], "--duration");
        AssertUsageError(["compare", "timer", "--rounds", "0"], "--rounds");
        AssertUsageError(["compare", "timer", "--duration", "20000", "--rounds", "2"], "not both");
        AssertUsageError(["compare", "timer", "--cost", "Bogus=1"], "unknown cost figure 'Bogus'");
        AssertUsageError(["compare", "timer", "--cost", "ExitRoundTrip=-1"], "must not be negative");
        AssertUsageError(["compare", "timer", "--cost", "junk"], "not of the form Name=cycles");
        AssertUsageError(["compare"], "vapic compare");
        AssertUsageError(["compare", "timer", "--bogus"], "--bogus");
    }

    [Fact]
    public void WorkloadOptionsAreRefusedForATrace()
    {
        string path = WriteTrace("machine vcpus=1\n");
        AssertUsageError(["compare", path, "--vcpus", "4"], "--vcpus applies to the built-in workloads");
        AssertUsageError(["compare", path, "--halt-idle"], "--halt-idle applies to the built-in workloads");
        Assert.Equal(0, CliTests.Run("compare", path, "--cost", "ExitRoundTrip=1").ExitCode);
    }
}
