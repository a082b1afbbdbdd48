using System.Text.Json;
using Xunit;

namespace Vapic.Cli.Tests;

/// <summary><c>vapic run</c> on a machine with device sources (examples/devices.toml), as a real process.</summary>
public class RunDevicesCliTests
{
    private static string Example(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "examples", name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("examples/" + name + " not found above " + AppContext.BaseDirectory);
    }

    private static string WriteConfig(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-devices-{Guid.NewGuid():N}.toml");
        File.WriteAllText(path, text);
        return path;
    }

    // examples/devices.toml: mixed on 4 vCPUs for 10 rounds (16 × 10) plus, over (0, 100,000 ns],
    // four MSI queues every 3,000 ns (33 each), a level line every 7,000 ns (14), an edge pin every
    // 20,000 ns (5) and an NMI every 25,000 ns limited to 3.
    [Fact]
    public void JsonListsEveryDeviceWithItsFiringsAndTheInterruptsTaken()
    {
        var (code, stdout, stderr) = CliTests.Run("run", Example("devices.toml"), "--json");
        Assert.True(code == 0, stderr);
        using JsonDocument json = JsonDocument.Parse(stdout);
        JsonElement root = json.RootElement;
        Assert.Equal("apicv", root.GetProperty("mode").GetString());
        Assert.Equal("mixed", root.GetProperty("workload").GetString());
        Assert.Equal(314, root.GetProperty("interrupts_delivered").GetInt64());
        Assert.Equal(314, root.GetProperty("expected_interrupts").GetInt64());
        Assert.Equal(0, root.GetProperty("problems").GetArrayLength());

        var devices = root.GetProperty("devices").EnumerateArray().Select(d => (
            d.GetProperty("name").GetString(),
            d.GetProperty("kind").GetString(),
            d.GetProperty("delivery").GetString(),
            d.GetProperty("vector").ValueKind == JsonValueKind.Null ? -1 : d.GetProperty("vector").GetInt32(),
            d.GetProperty("target").GetInt32(),
            d.GetProperty("firings").GetInt64(),
            d.GetProperty("interrupts_taken").GetInt64())).ToList();
        Assert.Equal(
            [
                ("nic-rx0", "msi", "fixed", 0x50, 0, 33L, 33L),
                ("nic-rx1", "msi", "fixed", 0x51, 1, 33L, 33L),
                ("nic-rx2", "msi", "lowest-priority", 0x52, 2, 33L, 33L),
                ("nic-rx3", "msi", "fixed", 0x53, 3, 33L, 33L),
                ("storage", "ioapic", "fixed", 0x61, 1, 14L, 14L),
                ("legacy-timer", "ioapic", "fixed", 0x30, 0, 5L, 5L),
                ("watchdog", "msi", "nmi", -1, 3, 3L, 3L),
            ],
            devices);
    }

    [Fact]
    public void TheTableShowsADeviceRowPerSource()
    {
        var (code, stdout, _) = CliTests.Run("run", Example("devices.toml"));
        Assert.Equal(0, code);
        string[] lines = stdout.Split('\n');
        Assert.Contains(lines, l => l.Contains("device", StringComparison.Ordinal) && l.Contains("firings", StringComparison.Ordinal) && l.Contains("taken", StringComparison.Ordinal));
        string storage = Assert.Single(lines, l => l.TrimStart().StartsWith("storage ", StringComparison.Ordinal));
        Assert.Equal(["storage", "ioapic", "fixed", "0x61", "1", "14", "14"], storage.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        string watchdog = Assert.Single(lines, l => l.TrimStart().StartsWith("watchdog ", StringComparison.Ordinal));
        Assert.Equal(["watchdog", "msi", "nmi", "-", "3", "3", "3"], watchdog.Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void AMachineWithoutDevicesHasAnEmptyDevicesArray()
    {
        var (code, stdout, _) = CliTests.Run("run", Example("emulated.toml"), "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        Assert.Equal(0, json.RootElement.GetProperty("devices").GetArrayLength());
    }

    [Fact]
    public void ABadDeviceIsOneLineAtItsValueAndStatusTwo()
    {
        string path = WriteConfig("mode = \"emulated\"\n[[devices.msi]]\ntarget = 0\nperiod_ns = 1000\nvector = 0xEC\n");
        var (code, stdout, stderr) = CliTests.Run("run", path);
        Assert.Equal(2, code);
        string line = Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Equal($"{path}:5:10: vector 0xEC is the built-in workload's LAPIC timer vector; pick another; did you mean 0xED?", line);
        Assert.Empty(stdout);
    }

    [Fact]
    public void CompareAcceptsTheIdleWorkload()
    {
        var (code, stdout, _) = CliTests.Run("compare", "idle", "--rounds", "2", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        Assert.Equal("idle", json.RootElement.GetProperty("workload").GetString());
        Assert.Equal(0, json.RootElement.GetProperty("expectedInterrupts").GetInt64());
        Assert.All(json.RootElement.GetProperty("modes").EnumerateArray(), m => Assert.Equal(0, m.GetProperty("interruptsDelivered").GetInt64()));
    }
}
