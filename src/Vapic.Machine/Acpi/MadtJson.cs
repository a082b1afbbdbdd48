using System.Text.Json;

namespace Vapic.Machine.Acpi;

/// <summary>
/// Writes a <see cref="MadtDecodeResult"/> as JSON with fixed property names and order, so the same
/// table always gives the same text. Each entry carries its type's fields under their ACPI names.
/// </summary>
public static class MadtJson
{
    /// <summary>Returns <paramref name="result"/> as indented JSON (LF line endings) without a trailing newline.</summary>
    public static string Serialize(MadtDecodeResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return Vapic.Machine.DeterministicJson.Serialize(result, Write);
    }

    /// <summary>Writes <paramref name="result"/> as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, MadtDecodeResult result)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(result);
        writer.WriteStartObject();
        writer.WriteBoolean("valid", result.IsValid);
        writer.WriteNumber("bytes", result.ByteCount);
        if (result.Header is MadtHeader header)
        {
            writer.WriteStartObject("header");
            writer.WriteString("signature", header.Signature);
            writer.WriteNumber("length", header.Length);
            writer.WriteNumber("revision", header.Revision);
            writer.WriteNumber("checksum", header.Checksum);
            writer.WriteString("oemId", header.OemId);
            writer.WriteString("oemTableId", header.OemTableId);
            writer.WriteNumber("oemRevision", header.OemRevision);
            writer.WriteString("creatorId", header.CreatorId);
            writer.WriteNumber("creatorRevision", header.CreatorRevision);
            writer.WriteNumber("localApicAddress", header.LocalApicAddress);
            writer.WriteNumber("flags", (uint)header.Flags);
            writer.WriteBoolean("pcAtCompatible", (header.Flags & MadtFlags.PcAtCompatible) != 0);
            writer.WriteEndObject();
        }
        else
        {
            writer.WriteNull("header");
        }

        writer.WriteStartArray("entries");
        foreach (MadtDecodedEntry decoded in result.Entries)
        {
            WriteEntry(writer, decoded);
        }

        writer.WriteEndArray();
        writer.WriteStartArray("errors");
        foreach (MadtError error in result.Errors)
        {
            writer.WriteStartObject();
            writer.WriteString("kind", error.Kind.ToString());
            writer.WriteNumber("offset", error.Offset);
            writer.WriteString("message", error.Message);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteEntry(Utf8JsonWriter writer, MadtDecodedEntry decoded)
    {
        MadtEntry entry = decoded.Entry;
        writer.WriteStartObject();
        writer.WriteNumber("offset", decoded.Offset);
        writer.WriteNumber("type", (byte)entry.Type);
        writer.WriteString("name", Madt.TypeName((byte)entry.Type));
        writer.WriteNumber("length", entry.Length);
        switch (entry)
        {
            case MadtLocalApicEntry local:
                writer.WriteNumber("processorUid", local.ProcessorUid);
                writer.WriteNumber("apicId", local.ApicId);
                WriteProcessorFlags(writer, local.Flags);
                break;
            case MadtLocalX2ApicEntry local:
                writer.WriteNumber("processorUid", local.ProcessorUid);
                writer.WriteNumber("apicId", local.X2ApicId);
                WriteProcessorFlags(writer, local.Flags);
                break;
            case MadtIoApicEntry ioApic:
                writer.WriteNumber("ioApicId", ioApic.IoApicId);
                writer.WriteNumber("address", ioApic.Address);
                writer.WriteNumber("gsiBase", ioApic.GsiBase);
                break;
            case MadtInterruptSourceOverrideEntry source:
                writer.WriteNumber("bus", source.Bus);
                writer.WriteNumber("source", source.Source);
                writer.WriteNumber("gsi", source.Gsi);
                WriteIntiFlags(writer, source.Flags);
                break;
            case MadtNmiSourceEntry nmi:
                writer.WriteNumber("gsi", nmi.Gsi);
                WriteIntiFlags(writer, nmi.Flags);
                break;
            case MadtLocalApicNmiEntry nmi:
                writer.WriteNumber("processorUid", nmi.ProcessorUid);
                writer.WriteNumber("lint", nmi.Lint);
                WriteIntiFlags(writer, nmi.Flags);
                break;
            case MadtLocalX2ApicNmiEntry nmi:
                writer.WriteNumber("processorUid", nmi.ProcessorUid);
                writer.WriteNumber("lint", nmi.Lint);
                WriteIntiFlags(writer, nmi.Flags);
                break;
            case MadtLocalApicAddressOverrideEntry address:
                writer.WriteNumber("address", address.Address);
                break;
            case MadtOtherEntry other:
                writer.WriteString("body", Convert.ToHexString(other.Body.Span));
                break;
        }

        writer.WriteString("description", entry.Describe());
        writer.WriteEndObject();
    }

    private static void WriteProcessorFlags(Utf8JsonWriter writer, MadtProcessorFlags flags)
    {
        writer.WriteNumber("flags", (uint)flags);
        writer.WriteBoolean("enabled", (flags & MadtProcessorFlags.Enabled) != 0);
        writer.WriteBoolean("onlineCapable", (flags & MadtProcessorFlags.OnlineCapable) != 0);
    }

    private static void WriteIntiFlags(Utf8JsonWriter writer, MpsIntiFlags flags)
    {
        writer.WriteNumber("flags", flags.Value);
        writer.WriteString("polarity", flags.Polarity switch
        {
            MpsPolarity.BusDefault => "bus-default",
            MpsPolarity.ActiveHigh => "active-high",
            MpsPolarity.ActiveLow => "active-low",
            _ => "reserved",
        });
        writer.WriteString("triggerMode", flags.TriggerMode switch
        {
            MpsTriggerMode.BusDefault => "bus-default",
            MpsTriggerMode.Edge => "edge",
            MpsTriggerMode.Level => "level",
            _ => "reserved",
        });
    }
}
