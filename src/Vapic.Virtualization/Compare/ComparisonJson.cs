using System.Text.Json;

namespace Vapic.Virtualization.Compare;

/// <summary>
/// Writes a <see cref="ComparisonResult"/> as one JSON object with a fixed property order, so the
/// same comparison always produces the same bytes.
/// </summary>
/// <remarks>
/// Shape: <c>{"workload", "vcpus", ["apic", "haltIdle", "rounds", "durationNs", "expectedInterrupts"]
/// (built-in workloads only), "modes": [{"mode", "exitsTotal", "exits": {reason: n}, "events":
/// {event: n}, "interruptsDelivered", "cycles", "cyclesPerInterrupt", "exitsPerInterrupt"}]}</c>.
/// <c>exits</c> and <c>events</c> list only non-zero counts, by <see cref="ExitReason"/> and
/// <see cref="CostEvent"/> name in declaration order; the per-interrupt figures are null when no
/// interrupt was delivered.
/// </remarks>
public static class ComparisonJson
{
    /// <summary>Returns <paramref name="result"/> as indented JSON (LF line endings) without a trailing newline.</summary>
    public static string Serialize(ComparisonResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return Vapic.Machine.DeterministicJson.Serialize(result, Write);
    }

    /// <summary>Writes <paramref name="result"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, ComparisonResult result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(result);
        writer.WriteStartObject();
        writer.WriteString("workload", result.Workload);
        writer.WriteNumber("vcpus", result.VcpuCount);
        if (result.Options is CompareWorkloadOptions options)
        {
            writer.WriteString("apic", options.UseX2Apic ? "x2apic" : "xapic");
            writer.WriteBoolean("haltIdle", options.HaltIdle);
            writer.WriteNumber("rounds", options.RoundCount);
            writer.WriteNumber("durationNs", options.EffectiveDurationNs);
        }

        if (result.ExpectedInterrupts is long expected)
        {
            writer.WriteNumber("expectedInterrupts", expected);
        }

        writer.WriteStartArray("modes");
        foreach (ModeComparison mode in result.Modes)
        {
            writer.WriteStartObject();
            writer.WriteString("mode", mode.Mode);
            writer.WriteNumber("exitsTotal", mode.ExitsTotal);
            writer.WriteStartObject("exits");
            foreach (ExitReason reason in ExitLedger.Reasons)
            {
                long n = mode.Counts.ExitsOf(reason);
                if (n != 0)
                {
                    writer.WriteNumber(reason.ToString(), n);
                }
            }

            writer.WriteEndObject();
            writer.WriteStartObject("events");
            foreach (CostEvent costEvent in ExitLedger.Events)
            {
                long n = mode.Counts.EventsOf(costEvent);
                if (n != 0)
                {
                    writer.WriteNumber(costEvent.ToString(), n);
                }
            }

            writer.WriteEndObject();
            writer.WriteNumber("interruptsDelivered", mode.InterruptsDelivered);
            writer.WriteNumber("cycles", mode.Cycles);
            WriteNullable(writer, "cyclesPerInterrupt", mode.CyclesPerInterrupt);
            WriteNullable(writer, "exitsPerInterrupt", mode.ExitsPerInterrupt);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter writer, string name, double? value)
    {
        if (value is double v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }
}
