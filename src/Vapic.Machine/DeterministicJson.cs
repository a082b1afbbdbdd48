using System.Text.Encodings.Web;
using System.Text.Json;

namespace Vapic.Machine;

/// <summary>
/// The one JSON text form of every <c>--json</c> output: indented, LF line endings, no trailing
/// newline, relaxed escaping; the caller writes properties in a fixed order, so the same result
/// always gives the same bytes.
/// </summary>
public static class DeterministicJson
{
    /// <summary>Runs <paramref name="write"/> against a writer and returns the text.</summary>
    public static string Serialize<T>(T value, Action<Utf8JsonWriter, T> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            NewLine = "\n",
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            write(writer, value);
        }

        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }
}
