using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Vapic.Virtualization.Configuration;
using Xunit;

namespace Vapic.Virtualization.Tests.Configuration;

/// <summary>The clock frequencies of <c>[machine]</c> and the <c>[[devices.msi]]</c> / <c>[[devices.ioapic]]</c> arrays.</summary>
public sealed class MachineConfigurationDeviceTests
{
    private static MachineConfiguration Loaded(string text)
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse(text, "test.toml");
        Assert.Null(result.Error);
        return result.Configuration!;
    }

    [Fact]
    public void LoadsTheFrequencies()
    {
        MachineConfiguration c = Loaded("mode = \"apicv\"\n[machine]\ntsc_frequency_hz = 2100000000\napic_timer_frequency_hz = 25000000\n");
        Assert.Equal(2_100_000_000, c.Machine.TscFrequencyHz);
        Assert.Equal(25_000_000, c.Machine.ApicTimerFrequencyHz);
        Assert.Equal(40, c.Machine.ApicBusCycleNs);
    }

    [Fact]
    public void FrequenciesDefaultToOneGigahertz()
    {
        MachineConfiguration c = Loaded("mode = \"apicv\"\n");
        Assert.Equal(MachineOptions.DefaultFrequencyHz, c.Machine.TscFrequencyHz);
        Assert.Equal(MachineOptions.DefaultFrequencyHz, c.Machine.ApicTimerFrequencyHz);
        Assert.Empty(c.Workload.Devices);
    }

    [Fact]
    public void LoadsEveryDeviceKey()
    {
        const string text = """
            mode = "emulated"

            [machine]
            vcpus = 3

            [workload]
            kind = "idle"
            rounds = 10

            [[devices.msi]]
            name = "nic"
            vector = 0x50
            target = 2
            delivery = "lowest-priority"
            period_ns = 3000
            start_ns = 1500
            count = 7
            trigger = "edge"

            [[devices.ioapic]]
            name = "disk"
            vector = 0x61
            target = 1
            delivery = "fixed"
            period_ns = 7000
            start_ns = 100
            count = 2
            pin = 10
            trigger = "level"
            polarity = "low"
            """;
        MachineConfiguration c = Loaded(text);
        Assert.Equal(CompareWorkloadKind.Idle, c.Workload.Workload);
        Assert.Equal(2, c.Workload.Devices.Count);

        DeviceSource nic = c.Workload.Devices[0];
        Assert.Equal(
            ("nic", DeviceSourceKind.Msi, (byte)0x50, 2, DeliveryMode.LowestPriority, 3_000L, (long?)1_500L, (long?)7L, false),
            (nic.Name, nic.Kind, nic.Vector, nic.Target, nic.Delivery, nic.PeriodNs, nic.StartNs, nic.Count, nic.LevelTriggered));

        DeviceSource disk = c.Workload.Devices[1];
        Assert.Equal(
            ("disk", DeviceSourceKind.IoApic, (byte)0x61, 1, DeliveryMode.Fixed, 7_000L, (long?)100L, (long?)2L),
            (disk.Name, disk.Kind, disk.Vector, disk.Target, disk.Delivery, disk.PeriodNs, disk.StartNs, disk.Count));
        Assert.Equal((10, true, true), (disk.Pin, disk.LevelTriggered, disk.ActiveLow));

        // Pin 10 is free when the workload is not mixed. 7 + 2 device interrupts in 10 rounds.
        ComparisonResult result = c.Run(out IReadOnlyList<DeviceSourceRun> devices);
        Assert.Empty(result.Failures);
        Assert.Equal(9, Assert.Single(result.Modes).InterruptsDelivered);
        Assert.Equal([("nic", 7L, 7L), ("disk", 2L, 2L)], devices.Select(d => (d.Source.Name, d.Firings, d.InterruptsTaken)));
    }

    [Fact]
    public void DeviceDefaultsAreNamedByIndexFixedEdgeActiveHighFromThePeriod()
    {
        const string text = """
            mode = "emulated"
            [[devices.msi]]
            vector = 0x50
            target = 0
            period_ns = 1000
            [[devices.ioapic]]
            vector = 0x60
            target = 1
            pin = 3
            period_ns = 2000
            [[devices.msi]]
            delivery = "nmi"
            target = 1
            period_ns = 5000
            """;
        MachineConfiguration c = Loaded(text);
        Assert.Equal(["msi0", "ioapic0", "msi1"], c.Workload.Devices.Select(d => d.Name));
        DeviceSource msi = c.Workload.Devices[0];
        Assert.Equal((DeliveryMode.Fixed, (long?)null, (long?)null, 1_000L, false), (msi.Delivery, msi.StartNs, msi.Count, msi.FirstFiringNs, msi.LevelTriggered));
        DeviceSource pin = c.Workload.Devices[1];
        Assert.Equal((false, false), (pin.LevelTriggered, pin.ActiveLow));
        DeviceSource nmi = c.Workload.Devices[2];
        Assert.True(nmi.IsNmi);
        Assert.Equal(0, nmi.Vector);
    }

    [Fact]
    public void ExactlyTheFiringLimitIsAccepted()
    {
        // 10^9 ns / 1000 ns = 10^6 firings, the most a run allows.
        MachineConfiguration c = Loaded("mode = \"emulated\"\n[workload]\nduration_ns = 1000000000\n[[devices.msi]]\nvector = 0x50\ntarget = 1\nperiod_ns = 1000\n");
        Assert.Equal(CompareWorkloadOptions.MaxDeviceFirings, c.Workload.Devices[0].FiringsWithin(c.Workload.EffectiveDurationNs));
        Assert.Null(c.Workload.Validate());
        Assert.Contains("more than the 1000000", (c.Workload with { DurationNs = 1_000_001_000 }).Validate() ?? "", StringComparison.Ordinal);
    }

    [Fact]
    public void AnIdleMachineWithDevicesRunsOnlyTheDevices()
    {
        MachineConfiguration c = Loaded("mode = \"avic\"\n[machine]\nvcpus = 2\n[workload]\nkind = \"idle\"\nrounds = 10\n[[devices.msi]]\nvector = 0x50\ntarget = 1\nperiod_ns = 3000\n");
        ComparisonResult result = c.Run();
        Assert.True(result.Passed, string.Join("; ", result.Failures));
        Assert.Equal(33, result.ExpectedInterrupts);
        Assert.Equal(33, Assert.Single(result.Modes).InterruptsDelivered);
    }

    [Theory]
    [InlineData(24_000_000L, false, 25_000_000L)]    // 41.7 ns: 40 ns (25 MHz) is nearer than 50 ns (20 MHz)
    [InlineData(2_000_000_000L, false, 1_000_000_000L)]
    [InlineData(0L, false, 1_000L)]                   // 1 kHz, the lowest frequency accepted
    [InlineData(999L, false, 1_000L)]
    [InlineData(0L, true, 100_000L)]                  // the timer workloads need cycles dividing 10,000 ns
    [InlineData(31_250_000L, false, 31_250_000L)]     // 32 ns divides 10^9
    [InlineData(31_250_000L, true, 25_000_000L)]      // but not 10,000
    [InlineData(300_000_000L, true, 250_000_000L)]    // 3.3 ns: 4 ns
    public void NearestApicTimerFrequencyDividesOneGigahertz(long hz, bool wholeRoundPeriod, long nearest) =>
        Assert.Equal(nearest, MachineConfigurationLoader.NearestApicTimerFrequency(hz, wholeRoundPeriod));

    [Fact]
    public void ABusCycleThatDoesNotDivideTheRoundPeriodIsFineWithoutTimers()
    {
        MachineConfiguration c = Loaded("mode = \"emulated\"\n[workload]\nkind = \"ipi-storm\"\nrounds = 2\n[machine]\nvcpus = 2\napic_timer_frequency_hz = 31250000\n");
        Assert.Equal(32, c.Machine.ApicBusCycleNs);
        Assert.True(c.Run().Passed);
    }

    private const string Mode = "mode = \"emulated\"\n";
    private const string Msi = "[[devices.msi]]\n";
    private const string IoApicTable = "[[devices.ioapic]]\n";

    [Theory]
    // Frequencies: at the value, with the nearest valid frequency.
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = 24000000\n", 3, 27, "apic_timer_frequency_hz must divide 1000000000 (1 GHz), so that one APIC bus cycle is a whole number of ns, not 24000000; did you mean 25000000 (40 ns)?")]
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = 2000000000\n", 3, 27, "did you mean 1000000000 (1 ns)?")]
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = 0\n", 3, 27, "not 0; did you mean 100000 (10000 ns)?")]
    [InlineData(Mode + "[workload]\nkind = \"timer\"\n[machine]\napic_timer_frequency_hz = 31250000\n", 5, 27, "the timer workload programs its timers for the round period (10000 ns), which must be a whole number of APIC bus cycles, but 31250000 Hz makes 32 ns cycles; did you mean 25000000 (40 ns)?")]
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = 50000\n", 3, 27, "the mixed workload programs its timers")]
    [InlineData(Mode + "[workload]\nduration_ns = 1000000000\n[[devices.msi]]\nvector = 0x50\ntarget = 1\nperiod_ns = 500\n", 7, 13, "the devices fire 2000000 times in the run's 1000000000 ns with this one")]
    [InlineData(Mode + "[workload]\nduration_ns = 1000000000\n[[devices.msi]]\nvector = 0x50\ntarget = 1\nperiod_ns = 999\n", 7, 13, "the devices fire 1001001 times in the run's 1000000000 ns with this one, more than the 1000000 a run allows")]
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = 500\n", 3, 27, "apic_timer_frequency_hz must be between 1000 (1 kHz) and 1000000000 (1 GHz), not 500")]
    [InlineData(Mode + "[workload]\nkind = \"device\"\n[machine]\nvcpus = 2\napic_ids = [0, 0x100]\nextended_destination_id = false\n", 7, 27, "the device workload sends device interrupts to every vCPU, but vCPU 1 has APIC ID 0x100, which a device reaches only with extended_destination_id = true")]
    [InlineData(Mode + "[machine]\nvcpus = 2\napic_ids = [0, 0x100]\nextended_destination_id = false\n", 5, 27, "the mixed workload sends device interrupts")]
    [InlineData(Mode + "[machine]\napic_timer_frequency_hz = \"25 MHz\"\n", 3, 27, "apic_timer_frequency_hz must be an integer, not a string")]
    [InlineData(Mode + "[machine]\ntsc_frequency_hz = 500\n", 3, 20, "tsc_frequency_hz must be between 1000000 (1 MHz) and 100000000000 (100 GHz), not 500; did you mean 1000000?")]
    [InlineData(Mode + "[machine]\ntsc_frequency_hz = 200000000000\n", 3, 20, "did you mean 100000000000?")]
    [InlineData(Mode + "[machine]\ntsc_frequency_hz = 2.1e9\n", 3, 20, "tsc_frequency_hz must be an integer, not a float")]
    [InlineData(Mode + "[machine]\ntsc_frequncy_hz = 1\n", 3, 1, "did you mean 'tsc_frequency_hz'?")]
    // Tables: the device arrays, with suggestions.
    [InlineData(Mode + "[[devices.msx]]\nperiod_ns = 1\n", 2, 3, "unknown array of tables [[devices.msx]]; did you mean 'devices.msi'?")]
    [InlineData(Mode + "[[devices.ioapc]]\n", 2, 3, "did you mean 'devices.ioapic'?")]
    [InlineData(Mode + "[devices.msi]\nperiod_ns = 1\n", 2, 2, "devices are an array of tables: write [[devices.msi]], one per device")]
    [InlineData(Mode + "[devices]\n", 2, 2, "[devices] holds no keys: write each device as a [[devices.msi]] or [[devices.ioapic]] table")]
    [InlineData(Mode + "[[machine]]\nvcpus = 2\n", 2, 3, "[machine] is one table, not an array of tables: write it as [machine]")]
    [InlineData(Mode + "devices = 1\n", 2, 1, "'devices' holds the device lists")]
    [InlineData(Mode + Msi + "periodns = 1\n", 3, 1, "unknown key 'periodns' in [[devices.msi]]; did you mean 'period_ns'?")]
    [InlineData(Mode + Msi + "pin = 1\n", 3, 1, "unknown key 'pin' in [[devices.msi]]")]
    [InlineData(Mode + "[workload]\nkind = \"idel\"\n", 3, 8, "unknown workload 'idel'; did you mean 'idle'?")]
    // Vectors: at the value.
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0x05\n", 5, 10, "vector 0x05 is illegal: a LAPIC refuses vectors 0x00-0x0F (ESR \"Receive Illegal Vector\"); use 0x20 to 0xFE")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0x15\n", 5, 10, "vector 0x15 is reserved: 0x10-0x1F belong to architecture-defined exceptions")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0xFF\n", 5, 10, "vector 0xFF is the spurious-interrupt vector (SVR)")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 256\n", 5, 10, "vector must be between 0x20 and 0xFE, not 256")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0xEC\n", 5, 10, "vector 0xEC is the built-in workload's LAPIC timer vector; pick another; did you mean 0xED?")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0xFB\n", 5, 10, "vector 0xFB is the built-in workload's unicast IPI vector; pick another; did you mean 0xFC?")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0x41\n", 5, 10, "the built-in workload's MSI vector")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\nvector = 0x3A\n", 5, 10, "the built-in workload's level IOAPIC line vector")]
    [InlineData(Mode + Msi + "name = \"a\"\ntarget = 0\nperiod_ns = 1\nvector = 0x50\n" + IoApicTable + "pin = 1\ntarget = 1\nperiod_ns = 1\nvector = 0x50\n", 11, 10, "vector 0x50 is already device 'a''s: two devices cannot share a vector; did you mean 0x51?")]
    [InlineData(Mode + Msi + "delivery = \"nmi\"\ntarget = 0\nperiod_ns = 1\nvector = 0x50\n", 6, 1, "an NMI has no vector (NMI delivery ignores the vector field)")]
    [InlineData(Mode + Msi + "target = 0\nperiod_ns = 1\n", 2, 3, "[[devices.msi]] 'msi0' needs a vector, 0x20 to 0xFE")]
    // Targets, deliveries, periods and counts.
    [InlineData(Mode + "[machine]\nvcpus = 2\n" + Msi + "vector = 0x50\nperiod_ns = 1\ntarget = 2\n", 7, 10, "target must be a vCPU index, 0 to 1 (the machine has 2 vCPUs), not 2")]
    [InlineData(Mode + Msi + "vector = 0x50\nperiod_ns = 1\ntarget = -1\n", 5, 10, "target must be a vCPU index")]
    [InlineData(Mode + Msi + "vector = 0x50\nperiod_ns = 1\n", 2, 3, "[[devices.msi]] 'msi0' needs a target, the index of the vCPU it interrupts (0 to 7)")]
    [InlineData(Mode + "[workload]\nkind = \"idle\"\n[machine]\nvcpus = 2\napic_ids = [0, 0x100]\nextended_destination_id = false\n" + Msi + "vector = 0x50\nperiod_ns = 1\ntarget = 1\n", 11, 10, "vCPU 1 has APIC ID 0x100, which a device reaches only through the extended destination ID, but [machine] extended_destination_id = false")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 1\ndelivery = \"nmii\"\n", 6, 12, "unknown delivery 'nmii'; did you mean 'nmi'? (deliveries: fixed, lowest-priority, nmi)")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\ndelivery = \"lowest_priority\"\n", 5, 12, "did you mean 'lowest-priority'?")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\n", 2, 3, "[[devices.msi]] 'msi0' needs period_ns, the time between its firings in ns")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 0\n", 5, 13, "period_ns must be between 1 and 1000000000, not 0")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 1000000001\n", 5, 13, "period_ns must be between 1 and 1000000000")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\nstart_ns = 0\n", 6, 12, "start_ns must be at least 1, not 0: setup ends at time 0")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\ncount = 0\n", 6, 9, "count must be between 1 and")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\ncount = \"3\"\n", 6, 9, "count must be an integer, not a string")]
    // Triggers, pins and polarities.
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\ntrigger = \"level\"\n", 6, 11, "level-triggered MSIs are not modeled: PCI MSI is edge-triggered only")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\ntrigger = \"egde\"\n", 6, 11, "unknown trigger 'egde'; did you mean 'edge'? (triggers: edge)")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\ntrigger = \"levle\"\npin = 1\n", 6, 11, "unknown trigger 'levle'; did you mean 'level'? (triggers: edge, level)")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\npolarity = \"lo\"\npin = 1\n", 6, 12, "unknown polarity 'lo'; did you mean 'low'? (polarities: high, low)")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\n", 2, 3, "[[devices.ioapic]] 'ioapic0' needs a pin, its IOAPIC input (0 to 23)")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\npin = 24\n", 6, 7, "pin must be between 0 and 23, not 24")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\npin = 10\n", 6, 7, "pin 10 is the mixed workload's level-triggered line (GSI 10); did you mean 11?")]
    [InlineData(Mode + IoApicTable + "vector = 0x50\ntarget = 0\nperiod_ns = 10\npin = 3\n" + IoApicTable + "vector = 0x51\ntarget = 0\nperiod_ns = 10\npin = 3\n", 11, 7, "pin 3 is already device 'ioapic0''s: one device per IOAPIC pin; did you mean 4?")]
    [InlineData(Mode + IoApicTable + "delivery = \"nmi\"\ntarget = 0\nperiod_ns = 10\npin = 3\ntrigger = \"level\"\n", 7, 11, "an IOAPIC entry with NMI delivery must be edge-triggered")]
    // Names.
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\nname = \"\"\n", 6, 8, "name must not be empty")]
    [InlineData(Mode + Msi + "name = \"nic\"\nvector = 0x50\ntarget = 0\nperiod_ns = 10\n" + IoApicTable + "name = \"nic\"\nvector = 0x51\ntarget = 0\nperiod_ns = 10\npin = 1\n", 8, 8, "device name 'nic' is already used by the [[devices.msi]] at line 2: names must be unique")]
    [InlineData(Mode + Msi + "vector = 0x50\ntarget = 0\nperiod_ns = 10\n" + Msi + "name = \"msi0\"\nvector = 0x51\ntarget = 0\nperiod_ns = 10\n", 7, 8, "device name 'msi0' is already used")]
    public void RejectsWithPositionAndMessage(string text, int line, int column, string message)
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse(text, "bad.toml");
        Assert.False(result.Succeeded);
        ConfigurationError error = result.Error!;
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.StartsWith($"bad.toml:{line}:{column}: ", error.ToString(), StringComparison.Ordinal);
    }
}
