using System.Text.Encodings.Web;
using System.Text.Json;

namespace Vapic.Virtualization.Nested;

/// <summary>
/// Writes a <see cref="NestedScenarioResult"/> as one JSON object with a fixed property order:
/// <c>{"scenario", "quirks": [...], "outcome": "ok" | "internal-error", "error": "..." | null,
/// "l2TouchedL1Mmio", "inhibits": [...], "interruptsSent", "interruptsDelivered", "interruptsLost"}</c>.
/// </summary>
public static class NestedScenarioJson
{
    /// <summary>Returns <paramref name="result"/> as one line of JSON, without a newline.</summary>
    public static string Serialize(NestedScenarioResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            Write(writer, result);
        }

        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>Writes <paramref name="result"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, NestedScenarioResult result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(result);
        writer.WriteStartObject();
        writer.WriteString("scenario", result.Scenario);
        writer.WriteStartArray("quirks");
        foreach (string quirk in NestedQuirkNames.Enumerate(result.Quirks))
        {
            writer.WriteStringValue(quirk);
        }

        writer.WriteEndArray();
        writer.WriteString("outcome", result.Outcome);
        if (result.Error is string error)
        {
            writer.WriteString("error", error);
        }
        else
        {
            writer.WriteNull("error");
        }

        writer.WriteBoolean("l2TouchedL1Mmio", result.L2TouchedL1Mmio);
        writer.WriteStartArray("inhibits");
        foreach (string inhibit in result.InhibitNames)
        {
            writer.WriteStringValue(inhibit);
        }

        writer.WriteEndArray();
        writer.WriteNumber("interruptsSent", result.InterruptsSent);
        writer.WriteNumber("interruptsDelivered", result.InterruptsDelivered);
        writer.WriteNumber("interruptsLost", result.InterruptsLost);
        writer.WriteEndObject();
    }
}
