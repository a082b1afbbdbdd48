using System.Text.Json;
using CsCheck;
using Vapic.Apic;
using Vapic.Machine.Workloads;
using Xunit;

namespace Vapic.Machine.Tests.Workloads;

public class DemoWorkloadTests
{
    // The boot chain: AP k comes online when its SIPI (InitToStartupNs after its INIT) has been
    // followed by ApStartupCodeNs of start-up code, and the BSP sends the next INIT at that moment.
    private const long ApBootNs = DemoWorkload.InitToStartupNs + DemoWorkload.ApStartupCodeNs;

    private static DemoResult Run(long durationNs = DemoOptions.DefaultDurationNs, bool x2Apic = false) =>
        new DemoWorkload(new DemoOptions { DurationNs = durationNs, UseX2Apic = x2Apic }).Run();

    private static long ExpectedOnlineAt(int cpu) => cpu * ApBootNs;

    // The number of k >= 0 with first + k * period <= duration.
    private static long Occurrences(long firstNs, long periodNs, long durationNs) =>
        durationNs < firstNs ? 0 : ((durationNs - firstNs) / periodNs) + 1;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TwoRunsGiveIdenticalResults(bool x2Apic)
    {
        DemoResult first = Run(x2Apic: x2Apic);
        DemoResult second = Run(x2Apic: x2Apic);

        Assert.Equal(DemoResultJson.Serialize(first), DemoResultJson.Serialize(second));
        for (int cpu = 0; cpu < DemoWorkload.CpuCount; cpu++)
        {
            Assert.Equal(first.Cpus[cpu].Sources, second.Cpus[cpu].Sources);
            Assert.Equal(first.Cpus[cpu].Apic, second.Cpus[cpu].Apic);
        }

        Assert.Equal(first.Counters, second.Counters);
    }

    [Fact]
    public void BootWakesEveryApWithInitThenSipi()
    {
        var workload = new DemoWorkload(new DemoOptions());
        DemoResult result = workload.Run();

        for (int cpu = 0; cpu < DemoWorkload.CpuCount; cpu++)
        {
            DemoCpuResult r = result.Cpus[cpu];
            Vcpu vcpu = workload.Machine.GetVcpu(cpu);
            Assert.Equal(VcpuRunState.Running, r.RunState);
            Assert.Equal(ExpectedOnlineAt(cpu), r.OnlineAtNs);
            Assert.True(vcpu.Apic.SoftwareEnabled);
            Assert.Equal(DemoWorkload.SpuriousVectorValue, vcpu.Apic.SpuriousVector);
            if (cpu == 0)
            {
                Assert.Equal(0, r[DemoSource.InitSipi].Requested);
                continue;
            }

            // SIPI vector 0x08: real mode at CS = 0x0800, IP = 0, i.e. physical 0x8000 (SDM "MP Initialization Protocol").
            Assert.Equal(0x8000UL, vcpu.EntryPoint);
            Assert.Equal((ushort)0x0800, vcpu.CodeSegment);

            // An AP waiting for SIPI is idle, so INIT and SIPI are each taken the instant they arrive.
            Assert.Equal(new DemoSourceStats(DemoSource.InitSipi, 2, 2, 0, 0, 0, 0, 0, 0), r[DemoSource.InitSipi]);
        }

        Assert.Equal(3, result.Counters.InitsTaken);
        Assert.Equal(3, result.Counters.StartupsTaken);
        Assert.Equal(0, result.Counters.StartupsDiscarded);
    }

    [Fact]
    public void ShortRunStopsInTheMiddleOfTheBoot()
    {
        // At 50 us: AP1 is online (30 us), AP2 took its SIPI at 40 us and is still in start-up code,
        // AP3 has not been sent anything.
        var workload = new DemoWorkload(new DemoOptions { DurationNs = 50_000 });
        DemoResult result = workload.Run();

        Assert.Equal(30_000, result.Cpus[1].OnlineAtNs);
        Assert.Equal(VcpuRunState.Running, result.Cpus[2].RunState);
        Assert.Null(result.Cpus[2].OnlineAtNs);
        Assert.Null(result.Cpus[2].TimerArmedAtNs);
        Assert.Equal(10_000, result.Cpus[2].BusyNs);
        Assert.False(workload.Machine.GetVcpu(2).Apic.SoftwareEnabled);
        Assert.Equal(VcpuRunState.WaitForSipi, result.Cpus[3].RunState);
        Assert.Equal(0, result.Cpus[3][DemoSource.InitSipi].Requested);
    }

    [Theory]
    [InlineData(1_000_000L)]
    [InlineData(250_000L)]
    [InlineData(777_777L)]
    [InlineData(3_000_000L)]
    public void TimerExpiriesFollowEachCpusPeriod(long durationNs)
    {
        DemoResult result = Run(durationNs);

        for (int cpu = 0; cpu < DemoWorkload.CpuCount; cpu++)
        {
            long period = DemoWorkload.TimerPeriodNs(cpu);
            long armedAt = ExpectedOnlineAt(cpu);

            // A periodic timer armed at T0 with TMICT = N and divide-by-1 (1 ns ticks) expires at
            // T0 + k * N (lapic-reference section 9); a 2 us handler never blocks a >= 50 us period.
            long expected = (durationNs - armedAt) / period;
            DemoSourceStats timer = result.Cpus[cpu][DemoSource.Timer];
            Assert.Equal(armedAt, result.Cpus[cpu].TimerArmedAtNs);
            Assert.Equal(expected, timer.Requested);
            Assert.Equal(expected, result.Cpus[cpu].Apic.TimerExpiries);
            Assert.Equal(0, timer.Merged);
            Assert.Equal(expected, timer.Accepted + timer.Pending);
        }
    }

    [Fact]
    public void TimerPeriodsAtOneMillisecond()
    {
        DemoResult result = Run();

        // floor((1 ms - online) / period): 1000/50, 970/60, 940/75, 910/100.
        Assert.Equal(20, result.Cpus[0][DemoSource.Timer].Requested);
        Assert.Equal(16, result.Cpus[1][DemoSource.Timer].Requested);
        Assert.Equal(12, result.Cpus[2][DemoSource.Timer].Requested);
        Assert.Equal(9, result.Cpus[3][DemoSource.Timer].Requested);
        Assert.Equal(57, result.Counters.TimerExpiries);
    }

    [Theory]
    [InlineData(1_000_000L)]
    [InlineData(120_000L)]
    [InlineData(2_345_678L)]
    public void DeviceAndIpiRequestsFollowTheSchedule(long durationNs)
    {
        DemoResult result = Run(durationNs);

        long ipiRounds = Occurrences(DemoWorkload.IpiFirstNs, DemoWorkload.IpiPeriodNs, durationNs);
        long msis = Occurrences(DemoWorkload.MsiFirstNs, DemoWorkload.MsiPeriodNs, durationNs);
        long levels = Occurrences(DemoWorkload.LevelFirstNs, DemoWorkload.LevelPeriodNs, durationNs);
        long pulses = 0;
        for (int p = 0; p < DemoWorkload.EdgeBurstPulses; p++)
        {
            pulses += Occurrences(DemoWorkload.EdgeBurstFirstNs + (p * DemoWorkload.EdgePulseSpacingNs), DemoWorkload.EdgeBurstPeriodNs, durationNs);
        }

        for (int cpu = 0; cpu < DemoWorkload.CpuCount; cpu++)
        {
            // The ring: every CPU receives one IPI per round from its predecessor.
            Assert.Equal(ipiRounds, result.Cpus[cpu][DemoSource.Ipi].Requested);
            Assert.Equal(cpu == DemoWorkload.MsiTargetCpu ? msis : 0, result.Cpus[cpu][DemoSource.Msi].Requested);
            long ioApic = cpu == DemoWorkload.EdgeTargetCpu ? pulses : cpu == DemoWorkload.LevelTargetCpu ? levels : 0;
            Assert.Equal(ioApic, result.Cpus[cpu][DemoSource.IoApic].Requested);
        }

        Assert.Equal(4 * ipiRounds, result.Counters.IpisRouted - 6);  // 6 = INIT + SIPI for three APs
        Assert.Equal(msis, result.Counters.MsisRouted);
    }

    [Fact]
    public void ScheduleCountsAtOneMillisecond()
    {
        DemoResult result = Run();

        // IPI rounds at 100 + 40r us (r = 0..22), MSIs at 105 + 30k us (k = 0..29), level
        // assertions at 120 + 70k us (k = 0..12), edge bursts of 3 at 110 + 100k us (k = 0..8).
        Assert.Equal(92, result[DemoSource.Ipi].Requested);
        Assert.Equal(30, result[DemoSource.Msi].Requested);
        Assert.Equal(27 + 13, result[DemoSource.IoApic].Requested);
        Assert.Equal(6, result[DemoSource.InitSipi].Requested);
    }

    [Fact]
    public void EdgeBurstsMergeWhileTheHandlerRuns()
    {
        DemoResult result = Run();
        DemoSourceStats edge = result.Cpus[DemoWorkload.EdgeTargetCpu][DemoSource.IoApic];

        // CPU 1's timer (online 30 us, period 60 us) expires at 210, 510 and 810 us, exactly when a
        // burst starts; no IPI round (100 + 40r us) falls within a burst. A normal burst (6 of 9):
        // pulse 1 is taken at once (latency 0) and runs 4 us, pulse 2 waits in IRR until the EOI
        // (latency 3 us), pulse 3 finds 0x34 in IRR and merges. A burst that meets the timer (3 of 9):
        // 0xEC (class 0xE) is taken before 0x34 (class 0x3), runs 2 us, then 0x34 is taken with
        // latency 2 us while pulses 2 and 3 have merged into it.
        Assert.Equal(27, edge.Requested);
        Assert.Equal((6 * 2) + 3, edge.Accepted);
        Assert.Equal(6 + (3 * 2), edge.Merged);
        Assert.Equal(0, edge.Pending);
        Assert.Equal(0, edge.LatencyMinNs);
        Assert.Equal(3_000, edge.LatencyMaxNs);
        Assert.Equal((6 * 3_000) + (3 * 2_000), edge.LatencyTotalNs);
        Assert.Equal(edge.Merged, result.Cpus[DemoWorkload.EdgeTargetCpu].Apic.Merged);
    }

    [Fact]
    public void LevelHandlerDeassertsBeforeEoiSoRemoteIrrClears()
    {
        var workload = new DemoWorkload(new DemoOptions());
        DemoResult result = workload.Run();
        DemoSourceStats level = result.Cpus[DemoWorkload.LevelTargetCpu][DemoSource.IoApic];

        // Every assertion finds the line low with Remote IRR clear (the previous handler ended long
        // before), so each is sent, taken and EOI'd; each EOI of the level vector is broadcast.
        Assert.Equal(13, level.Requested);
        Assert.Equal(13, level.Accepted);
        Assert.Equal(0, result.Counters.IoApicLevelCoalesced);
        Assert.Equal(13, result.Counters.EoiBroadcasts);

        var entry = new RedirectionEntry(workload.Machine.IoApic.GetRedirectionEntry(DemoWorkload.LevelGsi));
        Assert.True(entry.LevelTriggered);
        Assert.False(entry.Masked);
        Assert.False(entry.RemoteIrr);
        Assert.False(workload.Machine.IoApic.GetLine(DemoWorkload.LevelGsi));
        Assert.Equal(DemoWorkload.LevelVector, entry.Vector);
        Assert.Equal((byte)DemoWorkload.LevelTargetCpu, entry.Destination);
    }

    [Fact]
    public void RequestsWaitWhileTheCpuIsBusy()
    {
        DemoResult result = Run();

        // Some request had to wait for a handler (latency > 0), and none waited longer than the
        // longest handler plus the shorter ones that can run ahead of it.
        Assert.True(result[DemoSource.IoApic].LatencyMaxNs > 0);
        Assert.True(result[DemoSource.Msi].LatencyMaxNs > 0);
        long bound = DemoWorkload.TimerHandlerNs + DemoWorkload.IpiHandlerNs + DemoWorkload.IoApicHandlerNs + DemoWorkload.MsiHandlerNs;
        foreach (DemoSourceStats s in result.Totals)
        {
            Assert.InRange(s.LatencyMaxNs ?? 0, 0, bound);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NothingIsLost(bool x2Apic)
    {
        DemoResult result = Run(x2Apic: x2Apic);
        AssertNothingLost(result);
        Assert.Equal(0, result.Counters.NoDestination);
        Assert.Equal(0, result.Counters.ReservedModeDropped);
    }

    [Fact]
    public void NothingIsLostAtAnyDuration()
    {
        Gen.Select(Gen.Long[1, 2_500_000], Gen.Bool).Sample((durationNs, x2Apic) => AssertNothingLost(Run(durationNs, x2Apic)), iter: 40);
    }

    [Fact]
    public void X2ApicGuestSeesTheSameInterruptsAsXApicGuest()
    {
        DemoResult xapic = Run();
        var workload = new DemoWorkload(new DemoOptions { UseX2Apic = true });
        DemoResult x2apic = workload.Run();

        Assert.Equal(ApicMode.X2Apic, x2apic.GuestApicMode);
        for (int cpu = 0; cpu < DemoWorkload.CpuCount; cpu++)
        {
            Assert.Equal(ApicMode.X2Apic, x2apic.Cpus[cpu].ApicMode);
            Assert.Equal(ApicMode.X2Apic, workload.Machine.GetVcpu(cpu).Apic.Mode);
            Assert.Equal(xapic.Cpus[cpu].Sources, x2apic.Cpus[cpu].Sources);
            Assert.Equal(xapic.Cpus[cpu].Apic, x2apic.Cpus[cpu].Apic);
        }
    }

    [Fact]
    public void JsonHasTheDocumentedShape()
    {
        DemoResult result = Run();
        string json = DemoResultJson.Serialize(result);
        using JsonDocument doc = JsonDocument.Parse(json);
        JsonElement root = doc.RootElement;

        Assert.Equal(1_000_000, root.GetProperty("durationNs").GetInt64());
        Assert.Equal("xapic", root.GetProperty("apicMode").GetString());
        Assert.Equal(4, root.GetProperty("cpus").GetArrayLength());
        JsonElement cpu1 = root.GetProperty("cpus")[1];
        Assert.Equal("running", cpu1.GetProperty("runState").GetString());
        JsonElement edge = cpu1.GetProperty("sources")[(int)DemoSource.IoApic];
        Assert.Equal("ioapic", edge.GetProperty("source").GetString());
        Assert.Equal(27, edge.GetProperty("requested").GetInt64());
        Assert.Equal(1600.0, edge.GetProperty("latencyMeanNs").GetDouble());  // 24000 ns / 15
        JsonElement cpu0Msi = root.GetProperty("cpus")[0].GetProperty("sources")[(int)DemoSource.Msi];
        Assert.Equal(JsonValueKind.Null, cpu0Msi.GetProperty("latencyMinNs").ValueKind);
        Assert.Equal(92, root.GetProperty("totals")[(int)DemoSource.Ipi].GetProperty("accepted").GetInt64());
        Assert.Equal(57, root.GetProperty("counters").GetProperty("timerExpiries").GetInt64());
        Assert.DoesNotContain("\r", json);
    }

    [Fact]
    public void InvalidOptionsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new DemoWorkload(new DemoOptions { DurationNs = 0 }));
        Assert.Throws<ArgumentException>(() => new DemoWorkload(new DemoOptions { DurationNs = DemoOptions.MaxDurationNs + 1 }));
        Assert.NotNull(new DemoOptions { DurationNs = -5 }.Validate());
        Assert.Null(new DemoOptions().Validate());
    }

    [Fact]
    public void AWorkloadRunsOnce()
    {
        var workload = new DemoWorkload(new DemoOptions { DurationNs = 1_000 });
        workload.Run();
        Assert.Throws<InvalidOperationException>(() => workload.Run());
    }

    private static void AssertNothingLost(DemoResult result)
    {
        foreach (DemoCpuResult cpu in result.Cpus)
        {
            long fixedSetIrr = 0;
            long fixedAccepted = 0;
            foreach (DemoSourceStats s in cpu.Sources)
            {
                Assert.Equal(0, s.Dropped);
                Assert.Equal(s.Requested, s.Accepted + s.Merged + s.Pending);
                if (s.Source != DemoSource.InitSipi)
                {
                    fixedSetIrr += s.Accepted + s.Pending;
                    fixedAccepted += s.Accepted;
                }
            }

            // The workload's bookkeeping agrees with the LAPIC's own counters: every request that set
            // IRR was either taken (IRR -> ISR) or is still pending; nothing was refused.
            Assert.Equal(cpu.Apic.FixedAccepted, fixedSetIrr);
            Assert.Equal(cpu.Apic.Acknowledged, fixedAccepted);
            Assert.Equal(0, cpu.Apic.Dropped);
            Assert.InRange(cpu.Apic.Acknowledged - cpu.Apic.Eois, 0, 1);
        }
    }
}
