using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Xunit;

namespace Vapic.Virtualization.Tests.Compare;

/// <summary>
/// Device sources in the workload: exact firing counts, delivery by kind (edge MSI, edge and level
/// IOAPIC pins, NMI, lowest priority with one destination) and the same result under emulation,
/// APICv and AVIC.
/// </summary>
public class DeviceSourceWorkloadTests
{
    private const int Rounds = 10;

    // The modes the device tests compare: they must take exactly the same interrupts.
    public static TheoryData<string, bool, bool> ModesAndGuests()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (string mode in new[] { "emulated", "apicv", "avic" })
        {
            foreach (bool x2Apic in new[] { true, false })
            {
                foreach (bool haltIdle in new[] { false, true })
                {
                    data.Add(mode, x2Apic, haltIdle);
                }
            }
        }

        return data;
    }

    private static CompareWorkloadOptions Options(
        CompareWorkloadKind kind, int vcpus, bool x2Apic, bool haltIdle, params DeviceSource[] devices) =>
        new()
        {
            Workload = kind,
            VcpuCount = vcpus,
            UseX2Apic = x2Apic,
            HaltIdle = haltIdle,
            Rounds = Rounds,
            Devices = devices,
        };

    private static DeviceSource Msi(string name, byte vector, int target, long period) =>
        new() { Name = name, Kind = DeviceSourceKind.Msi, Vector = vector, Target = target, PeriodNs = period };

    private static DeviceSource IoApicPin(string name, int pin, byte vector, int target, long period) =>
        new() { Name = name, Kind = DeviceSourceKind.IoApic, Pin = pin, Vector = vector, Target = target, PeriodNs = period };

    private static CompareWorkloadRun RunClean(string mode, CompareWorkloadOptions options)
    {
        CompareWorkloadRun run = new CompareWorkload(options).Run(ModeRegistry.Create(mode));
        Assert.Empty(run.Problems);
        Assert.Equal(run.InterruptsTaken, run.Counts.InterruptsDelivered);
        return run;
    }

    // 2 vCPUs, 10 rounds (100,000 ns), one MSI every 3,000 ns: firings at 3,000 .. 99,000 = 33.
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void AnMsiEveryThreeMicrosecondsFires33TimesInTenRounds(string mode, bool x2Apic, bool haltIdle)
    {
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Idle, 2, x2Apic, haltIdle, Msi("nic", 0x50, 1, 3_000));
        Assert.Equal(33, CompareWorkload.ExpectedInterrupts(options));

        CompareWorkloadRun run = RunClean(mode, options);
        Assert.Equal(33, run.InterruptsTaken);
        Assert.Equal(33, run.Machine.Counters.MsisRouted);
        DeviceSourceRun nic = Assert.Single(run.Devices);
        Assert.Equal(("nic", 33L, 33L), (nic.Source.Name, nic.Firings, nic.InterruptsTaken));
        Assert.Equal(Rounds * CompareWorkloadOptions.RoundPeriodNs, run.Machine.Now);
    }

    // Mixed on 2 vCPUs sends 4n = 8 per round (80 in 10 rounds); the MSI adds its 33.
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void DeviceInterruptsAddToTheBuiltInSchedule(string mode, bool x2Apic, bool haltIdle)
    {
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Mixed, 2, x2Apic, haltIdle, Msi("nic", 0x50, 0, 3_000));
        Assert.Equal(113, CompareWorkload.ExpectedInterrupts(options));
        Assert.Equal(113, RunClean(mode, options).InterruptsTaken);
    }

    // A level, active-low line every 7,000 ns: firings at 7,000 .. 98,000 = 14. The handler quiets
    // the device before its EOI; the EOI broadcast (TMR set) clears Remote IRR, so each assertion
    // sends exactly one message (82093AA level-triggered operation, SDM "EOI Register").
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void ALevelActiveLowLineIsDeliveredAndItsRemoteIrrCleared(string mode, bool x2Apic, bool haltIdle)
    {
        DeviceSource storage = IoApicPin("storage", 16, 0x61, 1, 7_000) with { LevelTriggered = true, ActiveLow = true };
        CompareWorkloadRun run = RunClean(mode, Options(CompareWorkloadKind.Idle, 2, x2Apic, haltIdle, storage));

        Assert.Equal(14, run.InterruptsTaken);
        Assert.Equal((14L, 14L), (run.Devices[0].Firings, run.Devices[0].InterruptsTaken));
        Assert.Equal(14, run.Machine.Counters.IoApicMessagesRouted);
        Assert.Equal(14, run.Machine.Counters.EoiBroadcasts);
        Assert.Equal(0, run.Machine.IoApic.Counters.LevelCoalesced);

        ulong entry = run.Machine.IoApic.GetRedirectionEntry(16);
        Assert.Equal(0UL, entry & RedirectionEntry.RemoteIrrBit);
        Assert.Equal(0UL, entry & RedirectionEntry.MaskBit);
        Assert.Equal(RedirectionEntry.PolarityBit, entry & RedirectionEntry.PolarityBit);
        Assert.Equal(RedirectionEntry.TriggerModeBit, entry & RedirectionEntry.TriggerModeBit);
        Assert.Equal(0x61UL, entry & RedirectionEntry.VectorMask);
        Assert.Equal(1UL, entry >> RedirectionEntry.DestinationShift);
        Assert.False(run.Machine.IoApic.GetLine(16));
    }

    // An edge pin every 20,000 ns fires 5 times; a pulse leaves the line deasserted, and an edge
    // vector's EOI is not broadcast to the IOAPIC (TMR clear).
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void AnEdgePinPulsesItsLineOncePerFiring(string mode, bool x2Apic, bool haltIdle)
    {
        DeviceSource timer = IoApicPin("legacy-timer", 2, 0x30, 0, 20_000) with { ActiveLow = true };
        CompareWorkloadRun run = RunClean(mode, Options(CompareWorkloadKind.Idle, 2, x2Apic, haltIdle, timer));

        Assert.Equal(5, run.InterruptsTaken);
        Assert.Equal(5, run.Machine.Counters.IoApicMessagesRouted);
        Assert.Equal(0, run.Machine.Counters.EoiBroadcasts);
        Assert.Equal(0, run.Machine.IoApic.Counters.EdgesCoalesced);
        Assert.False(run.Machine.IoApic.GetLine(2));
        ulong entry = run.Machine.IoApic.GetRedirectionEntry(2);
        Assert.Equal(RedirectionEntry.PolarityBit, entry & (RedirectionEntry.PolarityBit | RedirectionEntry.TriggerModeBit));
    }

    // NMI delivery: an MSI (count 5 of the 25 its period would give) and an IOAPIC edge pin every
    // 10,000 ns (10). The guest takes NMI events, not vectors; the workload counts an NMI taken as
    // anything else as a problem. The RTE carries delivery mode 100b and vector 0.
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void NmiDevicesAreTakenAsNmis(string mode, bool x2Apic, bool haltIdle)
    {
        DeviceSource watchdog = Msi("watchdog", 0, 0, 4_000) with { Delivery = DeliveryMode.Nmi, Count = 5 };
        DeviceSource button = IoApicPin("button", 3, 0, 1, 10_000) with { Delivery = DeliveryMode.Nmi };
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Idle, 2, x2Apic, haltIdle, watchdog, button);
        Assert.Equal(15, CompareWorkload.ExpectedInterrupts(options));

        CompareWorkloadRun run = RunClean(mode, options);
        Assert.Equal(15, run.InterruptsTaken);
        Assert.Equal([(5L, 5L), (10L, 10L)], run.Devices.Select(d => (d.Firings, d.InterruptsTaken)));
        Assert.Equal(0, run.Machine.Counters.EoiBroadcasts);
        ulong entry = run.Machine.IoApic.GetRedirectionEntry(3);
        Assert.Equal((ulong)DeliveryMode.Nmi << RedirectionEntry.DeliveryModeShift, entry & (7UL << RedirectionEntry.DeliveryModeShift));
        Assert.Equal(0UL, entry & RedirectionEntry.VectorMask);
    }

    // Lowest priority with a single physical destination: the arbitration has one candidate, so
    // every message reaches the target, on 8 vCPUs as on 2.
    [Theory]
    [MemberData(nameof(ModesAndGuests))]
    public void LowestPriorityWithOneDestinationReachesItsTarget(string mode, bool x2Apic, bool haltIdle)
    {
        DeviceSource queue = Msi("queue", 0x52, 5, 5_000) with { Delivery = DeliveryMode.LowestPriority };
        DeviceSource line = IoApicPin("line", 5, 0x62, 3, 10_000) with { Delivery = DeliveryMode.LowestPriority, LevelTriggered = true };
        CompareWorkloadRun run = RunClean(mode, Options(CompareWorkloadKind.Idle, 8, x2Apic, haltIdle, queue, line));

        Assert.Equal(30, run.InterruptsTaken);
        Assert.Equal([(20L, 20L), (10L, 10L)], run.Devices.Select(d => (d.Firings, d.InterruptsTaken)));
        Assert.Equal(0, run.Machine.Counters.LowestPriorityNoCandidate);
        Assert.Equal(10, run.Machine.Counters.EoiBroadcasts);
    }

    // Firings at round instants run after the round's timer step: a firing that advanced the clock
    // to the instant first would take the timers in its own step, which the workload reports. A
    // firing between rounds (5,000, 15,000, ...) must not fire any LAPIC timer early either.
    // Timer on 2 vCPUs: 2 per round; the devices add 10 + 10; the mixed schedule 8 per round.
    [Theory]
    [InlineData("emulated", CompareWorkloadKind.Timer, 40L)]
    [InlineData("apicv", CompareWorkloadKind.Timer, 40L)]
    [InlineData("avic", CompareWorkloadKind.Timer, 40L)]
    [InlineData("emulated", CompareWorkloadKind.Mixed, 100L)]
    [InlineData("apicv", CompareWorkloadKind.Mixed, 100L)]
    [InlineData("avic", CompareWorkloadKind.Mixed, 100L)]
    public void FiringsAtRoundInstantsFollowTheRoundAndOthersKeepTheirTime(string mode, CompareWorkloadKind kind, long expected)
    {
        DeviceSource atRounds = Msi("at-rounds", 0x50, 0, CompareWorkloadOptions.RoundPeriodNs);
        DeviceSource between = Msi("between", 0x51, 1, CompareWorkloadOptions.RoundPeriodNs) with { StartNs = 5_000 };
        DeviceSource sameInstant = IoApicPin("same-instant", 4, 0x60, 0, CompareWorkloadOptions.RoundPeriodNs) with { Count = 3 };
        CompareWorkloadOptions options = Options(kind, 2, true, true, atRounds, between, sameInstant);
        Assert.Equal(expected + 3, CompareWorkload.ExpectedInterrupts(options));

        CompareWorkloadRun run = RunClean(mode, options);
        Assert.Equal(expected + 3, run.InterruptsTaken);
        Assert.Equal(2L * Rounds, run.Machine.Counters.TimerExpiries);
    }

    // The APIC timer at 25 MHz (40 ns a bus cycle): TMICT = 10,000 / 40 = 250 with divide by 1, so
    // the timers still expire once per round; at 100 kHz one bus cycle is the whole period.
    [Theory]
    [InlineData("emulated", 25_000_000L, 250u)]
    [InlineData("apicv", 25_000_000L, 250u)]
    [InlineData("avic", 25_000_000L, 250u)]
    [InlineData("emulated", 100_000L, 1u)]
    [InlineData("emulated", 1_000_000_000L, 10_000u)]
    public void TimersProgramTheRoundPeriodInBusCycles(string mode, long frequencyHz, uint initialCount)
    {
        var machine = new MachineOptions { VcpuCount = 2, ApicTimerFrequencyHz = frequencyHz };
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Timer, 2, true, false) with { Machine = machine };
        CompareWorkloadRun run = RunClean(mode, options);

        Assert.Equal(2L * Rounds, run.InterruptsTaken);
        Assert.Equal(2L * Rounds, run.Machine.Counters.TimerExpiries);
        foreach (Vcpu vcpu in run.Machine.Vcpus)
        {
            Assert.Equal(ApicAccessResult.Ok, vcpu.ReadMsr(ApicRegister.X2ApicMsrBase + (ApicRegister.InitialCountOffset >> 4), out ulong tmict));
            Assert.Equal(initialCount, tmict);
        }
    }

    [Theory]
    [InlineData(3_000L, null, null, 100_000L, 33L)]      // 3,000 .. 99,000
    [InlineData(3_000L, 1_500L, null, 100_000L, 33L)]    // 1,500 .. 97,500
    [InlineData(3_000L, null, 5L, 100_000L, 5L)]         // the count limits
    [InlineData(10_000L, null, null, 25_000L, 2L)]       // a duration that is not whole rounds
    [InlineData(10_000L, 25_000L, null, 25_000L, 1L)]    // the end of the duration is included
    [InlineData(10_000L, 25_001L, null, 25_000L, 0L)]    // after the end: never
    [InlineData(1L, null, null, 10_000L, 10_000L)]       // every ns
    public void FiringsAreCountedInZeroToTheDuration(long period, long? start, long? count, long duration, long firings)
    {
        var source = new DeviceSource { Name = "d", Vector = 0x50, PeriodNs = period, StartNs = start, Count = count };
        Assert.Equal(firings, source.FiringsWithin(duration));
    }

    [Theory]
    [InlineData("vector", "vector 0x0F is illegal")]
    [InlineData("reserved", "vector 0x1F is reserved")]
    [InlineData("spurious", "vector 0xFF is the spurious-interrupt vector")]
    [InlineData("built-in", "vector 0xEC is the built-in workload's LAPIC timer vector")]
    [InlineData("target", "target 2 is not a vCPU")]
    [InlineData("name", "two devices are named 'a'")]
    [InlineData("shared-vector", "vector 0x50 is also device 'a''s")]
    [InlineData("shared-pin", "pin 3 is also device 'a''s")]
    [InlineData("level-gsi", "pin 10 is the mixed workload's level line")]
    [InlineData("level-msi", "level-triggered MSIs are not modeled")]
    [InlineData("nmi-level", "an NMI redirection entry must be edge-triggered")]
    [InlineData("period", "period must be between 1 and")]
    [InlineData("start", "start must be between 1 and")]
    [InlineData("count", "count must be at least 1")]
    [InlineData("pin", "pin must be between 0 and 23")]
    [InlineData("delivery", "delivery must be fixed, lowest-priority, nmi")]
    [InlineData("bus-cycle", "round period (10000 ns) to be a whole number of APIC bus cycles, not of 32 ns")]
    [InlineData("extended-id", "needs the extended destination ID")]
    public void InvalidDevicesAreRefused(string what, string message)
    {
        DeviceSource a = Msi("a", 0x50, 0, 1_000);
        DeviceSource pinA = IoApicPin("a", 3, 0x50, 0, 1_000);
        DeviceSource pinB = IoApicPin("b", 3, 0x51, 0, 1_000);
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Mixed, 2, true, false) with
        {
            Devices = what switch
            {
                "vector" => [a with { Vector = 0x0F }],
                "reserved" => [a with { Vector = 0x1F }],
                "spurious" => [a with { Vector = 0xFF }],
                "built-in" => [a with { Vector = CompareWorkload.TimerVector }],
                "target" => [a with { Target = 2 }],
                "name" => [a, a with { Vector = 0x51 }],
                "shared-vector" => [a, a with { Name = "b" }],
                "shared-pin" => [pinA, pinB],
                "level-gsi" => [pinA with { Pin = CompareWorkload.LevelGsi }],
                "level-msi" => [a with { LevelTriggered = true }],
                "nmi-level" => [pinA with { Delivery = DeliveryMode.Nmi, LevelTriggered = true }],
                "period" => [a with { PeriodNs = 0 }],
                "start" => [a with { StartNs = 0 }],
                "count" => [a with { Count = 0 }],
                "pin" => [pinA with { Pin = 24 }],
                "delivery" => [a with { Delivery = DeliveryMode.ExtInt }],
                _ => [],
            },
            Machine = what switch
            {
                "bus-cycle" => new MachineOptions { VcpuCount = 2, ApicTimerFrequencyHz = 31_250_000 },
                "extended-id" => new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x100], ExtendedDestinationId = false },
                _ => null,
            },
        };
        if (what == "extended-id")
        {
            options = options with { Devices = [a with { Target = 1 }] };
        }

        string? error = options.Validate();
        Assert.NotNull(error);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new CompareWorkload(options));
    }

    [Fact]
    public void ANonTimerWorkloadAcceptsAnyBusCycle()
    {
        var machine = new MachineOptions { VcpuCount = 2, ApicTimerFrequencyHz = 31_250_000 };
        Assert.Null((Options(CompareWorkloadKind.IpiStorm, 2, true, false) with { Machine = machine }).Validate());
        Assert.NotNull((Options(CompareWorkloadKind.Timer, 2, true, false) with { Machine = machine }).Validate());
    }

    [Fact]
    public void IdleSendsNothingButBootsAndAdvancesTheClock()
    {
        CompareWorkloadOptions options = Options(CompareWorkloadKind.Idle, 4, true, true);
        Assert.Equal(0, CompareWorkload.ExpectedInterrupts(options));
        CompareWorkloadRun run = RunClean("emulated", options);
        Assert.Equal(0, run.InterruptsTaken);
        Assert.Equal(0, run.Counts.TotalExits);
        Assert.Empty(run.Devices);
        Assert.Equal(3, run.Machine.Counters.StartupsTaken);
        Assert.Equal(Rounds * CompareWorkloadOptions.RoundPeriodNs, run.Machine.Now);
    }
}
