using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Vapic.Virtualization.Configuration;
using Xunit;

namespace Vapic.Virtualization.Tests.Configuration;

public sealed class MachineConfigurationTests
{
    private static string ExamplesDirectory
    {
        get
        {
            for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "examples");
                if (Directory.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props")))
                {
                    return candidate;
                }
            }

            throw new DirectoryNotFoundException("examples/ not found above " + AppContext.BaseDirectory);
        }
    }

    public static TheoryData<string> ExampleFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(ExamplesDirectory, "*.toml").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ExampleFiles))]
    public void EveryExampleLoadsAndRunsClean(string file)
    {
        ConfigurationLoadResult loaded = MachineConfigurationLoader.Load(Path.Combine(ExamplesDirectory, file));
        Assert.Null(loaded.Error);
        ComparisonResult result = loaded.Configuration!.Run();
        Assert.True(result.Passed, string.Join("; ", result.Failures));
        ModeComparison mode = Assert.Single(result.Modes);
        Assert.Equal(loaded.Configuration.Mode, mode.Mode);
        Assert.Equal(CompareWorkload.ExpectedInterrupts(loaded.Configuration.Workload), mode.InterruptsDelivered);
    }

    [Fact]
    public void EveryModeHasAnExample()
    {
        var modes = new HashSet<string>();
        bool locked = false;
        foreach (string file in Directory.GetFiles(ExamplesDirectory, "*.toml"))
        {
            MachineConfiguration configuration = MachineConfigurationLoader.Load(file).Configuration!;
            modes.Add(configuration.Mode);
            locked |= configuration.Machine.ForceX2Apic;
        }

        Assert.Equal(["apicv", "avic", "emulated", "passthrough", "savic"], modes.Order(StringComparer.Ordinal));
        Assert.True(locked);
    }

    // Interrupts per round: ipi-storm n, broadcast n(n-1), timer n, device n, mixed 4n (n + n + (n-1) + n + 1).
    [Theory]
    [InlineData("emulated.toml", "emulated", 200)]      // ipi-storm, 4 vCPUs, 50 rounds: 4 × 50
    [InlineData("apicv.toml", "apicv", 640)]            // mixed, 8 vCPUs, 20 rounds: 32 × 20
    [InlineData("avic.toml", "avic", 300)]              // broadcast, 4 vCPUs, 25 rounds: 12 × 25
    [InlineData("passthrough.toml", "passthrough", 160)] // device, 4 vCPUs, 40 rounds: 4 × 40
    [InlineData("savic.toml", "savic", 120)]            // timer, 4 vCPUs, 30 rounds: 4 × 30
    [InlineData("locked-x2apic.toml", "apicv", 240)]    // ipi-storm, 16 vCPUs, 15 rounds: 16 × 15
    // mixed, 4 vCPUs, 10 rounds: 16 × 10, plus the devices over (0, 100,000 ns]: four MSI queues
    // every 3,000 ns (33 each, from 3,000 or 1,500), a level line every 7,000 (14), an edge pin
    // every 20,000 (5) and an NMI every 25,000 limited to 3: 160 + 132 + 14 + 5 + 3.
    [InlineData("devices.toml", "apicv", 314)]
    public void ExamplesDeliverEveryInterruptTheirScheduleSends(string file, string mode, long interrupts)
    {
        MachineConfiguration configuration = MachineConfigurationLoader.Load(Path.Combine(ExamplesDirectory, file)).Configuration!;
        ModeComparison result = Assert.Single(configuration.Run().Modes);
        Assert.Equal(mode, result.Mode);
        Assert.Equal(interrupts, result.InterruptsDelivered);
    }

    [Fact]
    public void LoadsEveryKey()
    {
        const string text = """
            mode = "passthrough"

            [machine]
            vcpus = 3
            apic_ids = [0, 0x100, 7]
            force_x2apic = true
            ioapic_version = 0x11
            vendor = "amd"
            tsc_offset = -5
            extended_destination_id = false
            max_physical_address_bits = 48
            tsc_frequency_hz = 3000000000
            apic_timer_frequency_hz = 31250000

            [cost]
            ExitRoundTrip = 1500
            VmgexitRoundTrip = 2000

            [passthrough]
            host_cpus = 4
            pinning = [3, 0, 2]
            intercept_thermal = true
            intercept_icr_read = true

            [workload]
            kind = "broadcast"
            duration_ns = 50000
            x2apic = true
            halt_idle = true
            """;
        MachineConfiguration c = Loaded(text);
        Assert.Equal("passthrough", c.Mode);
        Assert.Equal(3, c.Machine.VcpuCount);
        Assert.Equal([0u, 0x100u, 7u], c.Machine.ApicIds);
        Assert.True(c.Machine.ForceX2Apic);
        Assert.Equal(0x11, c.Machine.IoApicVersion);
        Assert.Equal(CpuVendor.Amd, c.Machine.CpuVendor);
        Assert.Equal(-5, c.Machine.TscOffset);
        Assert.False(c.Machine.ExtendedDestinationId);
        Assert.Equal(48, c.Machine.MaxPhysicalAddressBits);
        Assert.Equal(3_000_000_000, c.Machine.TscFrequencyHz);
        Assert.Equal(31_250_000, c.Machine.ApicTimerFrequencyHz);
        Assert.Equal(1500, c.CostModel.ExitRoundTrip);
        Assert.Equal(2000, c.CostModel.VmgexitRoundTrip);
        Assert.Equal(800, c.CostModel.MmioEmulation);
        Assert.Equal(4, c.Passthrough!.HostCpuCount);
        Assert.Equal([3, 0, 2], c.Passthrough.Pinning);
        Assert.True(c.Passthrough.InterceptThermal);
        Assert.True(c.Passthrough.InterceptIcrRead);
        Assert.Equal(CompareWorkloadKind.Broadcast, c.Workload.Workload);
        Assert.Equal(3, c.Workload.VcpuCount);
        Assert.Equal(50_000, c.Workload.DurationNs);
        Assert.Equal(5, c.Workload.RoundCount);
        Assert.True(c.Workload.UseX2Apic);
        Assert.True(c.Workload.HaltIdle);
    }

    [Fact]
    public void DefaultsAreTheMixedWorkloadOnEightX2ApicVcpus()
    {
        MachineConfiguration c = Loaded("mode = \"emulated\"\n");
        Assert.Equal(8, c.Machine.VcpuCount);
        Assert.Null(c.Machine.ApicIds);
        Assert.Same(CostModel.Default, c.CostModel);
        Assert.Null(c.Passthrough);
        Assert.Equal(CompareWorkloadKind.Mixed, c.Workload.Workload);
        Assert.True(c.Workload.UseX2Apic);
        Assert.Equal(100, c.Workload.RoundCount);
    }

    [Theory]
    // Unknown keys and tables, with the nearest valid name.
    [InlineData("mode = \"apicv\"\n[machine]\nvcpu = 4\n", 3, 1, "unknown key 'vcpu' in [machine]; did you mean 'vcpus'?")]
    [InlineData("mode = \"apicv\"\n[workloads]\nkind = \"timer\"\n", 2, 2, "unknown table [workloads]; did you mean 'workload'?")]
    [InlineData("mdoe = \"apicv\"\n", 1, 1, "unknown top-level key 'mdoe'; did you mean 'mode'?")]
    [InlineData("mode = \"apicv\"\n[cost]\nExitRoundTrp = 4\n", 3, 1, "unknown key 'ExitRoundTrp' in [cost]; did you mean 'ExitRoundTrip'?")]
    [InlineData("mode = \"apicv\"\n[cost]\nexitroundtrip = 4\n", 3, 1, "unknown key 'exitroundtrip' in [cost]; did you mean 'ExitRoundTrip'?")]
    [InlineData("mode = \"apicv\"\n[workload]\n  halt_idel = true\n", 3, 3, "unknown key 'halt_idel' in [workload]; did you mean 'halt_idle'?")]
    // Wrong types: at the value.
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = \"4\"\n", 3, 9, "vcpus must be an integer, not a string")]
    [InlineData("mode = \"apicv\"\n[machine]\nforce_x2apic = 1\n", 3, 16, "force_x2apic must be a boolean (true or false), not an integer")]
    [InlineData("mode = 5\n", 1, 8, "mode must be a string, not an integer")]
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 2\napic_ids = [0, \"1\"]\n", 4, 16, "APIC IDs must be integers")]
    // Unknown names in values.
    [InlineData("mode = \"apicc\"\n", 1, 8, "unknown mode 'apicc'; did you mean 'apicv'?")]
    [InlineData("mode = \"apicv\"\n[workload]\nkind = \"ipi_storm\"\n", 3, 8, "unknown workload 'ipi_storm'; did you mean 'ipi-storm'?")]
    [InlineData("mode = \"apicv\"\n[machine]\nvendor = \"amdd\"\n", 3, 10, "unknown vendor 'amdd'; did you mean 'amd'?")]
    // Out of range.
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 1\n", 3, 9, "vcpus must be between 2 and 255 (the built-in workloads), not 1")]
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 5000\n", 3, 9, "vcpus must be between 1 and 4096, not 5000")]
    [InlineData("mode = \"apicv\"\n[machine]\nioapic_version = 0x21\n", 3, 18, "ioapic_version must be 0x11 or 0x20")]
    [InlineData("mode = \"apicv\"\n[cost]\nPostedNotify = -1\n", 3, 16, "PostedNotify must be between 0 and")]
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 2\napic_ids = [0, 0xFFFFFFFF]\n", 4, 16, "APIC ID 4294967295 is out of range")]
    // Impossible combinations.
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 3\napic_ids = [0, 1, 1]\n", 4, 19, "APIC ID 0x1 is given to vCPU 1 and to vCPU 2")]
    [InlineData("mode = \"apicv\"\n[machine]\nvcpus = 3\napic_ids = [0, 1]\n", 4, 12, "2 APIC IDs given for 3 vCPUs")]
    [InlineData("mode = \"apicv\"\n[workload]\nx2apic = false\n[machine]\nvcpus = 2\napic_ids = [0, 0x1FF]\n", 6, 16, "APIC ID 0x1FF needs x2APIC")]
    [InlineData("mode = \"savic\"\n[workload]\nx2apic = false\n", 3, 10, "mode 'savic' needs an x2APIC guest")]
    [InlineData("mode = \"emulated\"\n[machine]\nforce_x2apic = true\n[workload]\nx2apic = false\n", 5, 10, "a locked-x2APIC machine (force_x2apic = true) cannot run an xAPIC guest")]
    [InlineData("mode = \"apicv\"\n[passthrough]\nhost_cpus = 8\n", 2, 2, "[passthrough] configures the host of mode 'passthrough', but the mode is 'apicv'")]
    [InlineData("mode = \"passthrough\"\n[machine]\nvcpus = 2\n[passthrough]\nhost_cpus = 4\npinning = [1, 1]\n", 6, 11, "pCPU 1 is given to vCPU 0 and to vCPU 1")]
    [InlineData("mode = \"apicv\"\n[workload]\nrounds = 3\nduration_ns = 30000\n", 4, 1, "give either rounds or duration_ns, not both")]
    // Structure and syntax.
    [InlineData("machine.vcpus = 4\nmode = \"apicv\"\n", 1, 1, "dotted key 'machine.vcpus'")]
    [InlineData("mode = \"apicv\"\nmachine = { vcpus = 4 }\n", 2, 1, "'machine' is a table: write it as [machine]")]
    [InlineData("[machine]\nvcpus = 4\n", 1, 1, "the key 'mode' is required")]
    [InlineData("mode = \"apicv\"\n[machine\nvcpus = 4\n", 2, 9, "expecting `]`")]
    public void RejectsWithPositionAndMessage(string text, int line, int column, string message)
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse(text, "bad.toml");
        Assert.False(result.Succeeded);
        ConfigurationError error = result.Error!;
        Assert.Equal("bad.toml", error.SourceName);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.StartsWith($"bad.toml:{line}:{column}: ", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void UnreadableFileIsAnErrorAtTheStart()
    {
        string path = Path.Combine(Path.GetTempPath(), $"vapic-missing-{Guid.NewGuid():N}.toml");
        ConfigurationError error = MachineConfigurationLoader.Load(path).Error!;
        Assert.Equal((path, 1, 1), (error.SourceName, error.Line, error.Column));
    }

    [Theory]
    [InlineData("vcpu", "vcpus")]
    [InlineData("forcex2apic", "force_x2apic")]
    [InlineData("APIC_IDS", "apic_ids")]
    [InlineData("tsc", null)]
    [InlineData("something_else_entirely", null)]
    public void SuggestsTheNearestMachineKey(string typed, string? expected) =>
        Assert.Equal(expected, MachineConfigurationLoader.Suggest(typed, MachineConfigurationLoader.MachineKeys));

    private static MachineConfiguration Loaded(string text)
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse(text, "test.toml");
        Assert.Null(result.Error);
        return result.Configuration!;
    }
}
