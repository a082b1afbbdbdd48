using System.Text.Json;
using Vapic.Apic;

namespace Vapic.Machine.Workloads;

/// <summary>
/// Writes a <see cref="DemoResult"/> as JSON with a fixed property order and fixed names, so the
/// same run always produces the same bytes (no reflection, no culture, no host time).
/// </summary>
public static class DemoResultJson
{
    /// <summary>Returns <paramref name="result"/> as indented JSON (LF line endings) without a trailing newline.</summary>
    public static string Serialize(DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return Vapic.Machine.DeterministicJson.Serialize(result, Write);
    }

    /// <summary>Writes <paramref name="result"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, DemoResult result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(result);
        writer.WriteStartObject();
        writer.WriteNumber("durationNs", result.DurationNs);
        writer.WriteString("apicMode", ModeName(result.GuestApicMode));
        writer.WriteStartArray("cpus");
        foreach (DemoCpuResult cpu in result.Cpus)
        {
            writer.WriteStartObject();
            writer.WriteNumber("cpu", cpu.Cpu);
            writer.WriteNumber("apicId", cpu.ApicId);
            writer.WriteString("apicMode", ModeName(cpu.ApicMode));
            writer.WriteString("runState", cpu.RunState == VcpuRunState.Running ? "running" : "wait-for-sipi");
            WriteNullable(writer, "onlineAtNs", cpu.OnlineAtNs);
            writer.WriteNumber("timerPeriodNs", cpu.TimerPeriodNs);
            WriteNullable(writer, "timerArmedAtNs", cpu.TimerArmedAtNs);
            writer.WriteNumber("busyNs", cpu.BusyNs);
            WriteSources(writer, cpu.Sources);
            writer.WriteStartObject("apic");
            writer.WriteNumber("fixedAccepted", cpu.Apic.FixedAccepted);
            writer.WriteNumber("merged", cpu.Apic.Merged);
            writer.WriteNumber("acknowledged", cpu.Apic.Acknowledged);
            writer.WriteNumber("eois", cpu.Apic.Eois);
            writer.WriteNumber("timerExpiries", cpu.Apic.TimerExpiries);
            writer.WriteNumber("dropped", cpu.Apic.Dropped);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WritePropertyName("totals");
        WriteSourcesArray(writer, result.Totals);

        DemoMachineCounters c = result.Counters;
        writer.WriteStartObject("counters");
        writer.WriteNumber("ipisRouted", c.IpisRouted);
        writer.WriteNumber("ioApicMessagesRouted", c.IoApicMessagesRouted);
        writer.WriteNumber("msisRouted", c.MsisRouted);
        writer.WriteNumber("timerExpiries", c.TimerExpiries);
        writer.WriteNumber("eoiBroadcasts", c.EoiBroadcasts);
        writer.WriteNumber("initsTaken", c.InitsTaken);
        writer.WriteNumber("startupsTaken", c.StartupsTaken);
        writer.WriteNumber("startupsDiscarded", c.StartupsDiscarded);
        writer.WriteNumber("noDestination", c.NoDestination);
        writer.WriteNumber("reservedModeDropped", c.ReservedModeDropped);
        writer.WriteNumber("ioApicEdgesCoalesced", c.IoApicEdgesCoalesced);
        writer.WriteNumber("ioApicLevelCoalesced", c.IoApicLevelCoalesced);
        writer.WriteNumber("routingRebuilds", c.RoutingRebuilds);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>The name a source has in JSON and in the CLI: timer, ipi, ioapic, msi, init-sipi.</summary>
    public static string SourceName(DemoSource source) => source switch
    {
        DemoSource.Timer => "timer",
        DemoSource.Ipi => "ipi",
        DemoSource.IoApic => "ioapic",
        DemoSource.Msi => "msi",
        _ => "init-sipi",
    };

    /// <summary>The name an APIC mode has in JSON: disabled, xapic, x2apic.</summary>
    public static string ModeName(ApicMode mode) => mode switch
    {
        ApicMode.XApic => "xapic",
        ApicMode.X2Apic => "x2apic",
        _ => "disabled",
    };

    private static void WriteSources(Utf8JsonWriter writer, IReadOnlyList<DemoSourceStats> sources)
    {
        writer.WritePropertyName("sources");
        WriteSourcesArray(writer, sources);
    }

    private static void WriteSourcesArray(Utf8JsonWriter writer, IReadOnlyList<DemoSourceStats> sources)
    {
        writer.WriteStartArray();
        foreach (DemoSourceStats s in sources)
        {
            writer.WriteStartObject();
            writer.WriteString("source", SourceName(s.Source));
            writer.WriteNumber("requested", s.Requested);
            writer.WriteNumber("accepted", s.Accepted);
            writer.WriteNumber("merged", s.Merged);
            writer.WriteNumber("dropped", s.Dropped);
            writer.WriteNumber("pending", s.Pending);
            WriteNullable(writer, "latencyMinNs", s.LatencyMinNs);
            if (s.LatencyMeanNs is double mean)
            {
                // Rounded to 0.1 ns: the exact value is latencyTotalNs / accepted.
                writer.WriteNumber("latencyMeanNs", Math.Round(mean, 1, MidpointRounding.AwayFromZero));
            }
            else
            {
                writer.WriteNull("latencyMeanNs");
            }

            WriteNullable(writer, "latencyMaxNs", s.LatencyMaxNs);
            writer.WriteNumber("latencyTotalNs", s.LatencyTotalNs);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, long? value)
    {
        if (value is long v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }
}
