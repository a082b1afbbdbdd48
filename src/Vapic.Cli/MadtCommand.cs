using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using Vapic.Machine;
using Vapic.Machine.Acpi;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic madt [--vcpus N] [--ids A,B,...] [--force-x2apic] --out FILE</c> writes the ACPI MADT of
/// a machine (<see cref="Madt.Build"/>); <c>vapic madt show FILE [--json]</c> decodes and checks any
/// MADT given as raw table bytes (<see cref="Madt.Decode"/>). Exit status: 0 done and valid,
/// 2 bad options, an unreadable file or an invalid table (with one line on stderr saying why).
/// </summary>
public static class MadtCommand
{
    // A 4,096-vCPU table is about 64 KiB; anything past 1 MiB is not an MADT (and a device such
    // as /dev/zero must not be read forever).
    private const int MaxTableBytes = 1 << 20;
    private const int ConsoleWidth = 120;

    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command and its <c>show</c> subcommand.</summary>
    public static Command Create()
    {
        var vcpus = new Option<string?>("--vcpus")
        {
            Description = $"Number of vCPUs, 1 to {MachineOptions.MaxVcpus} (default: the number of --ids, else 1).",
            HelpName = "N",
        };
        var ids = new Option<string?>("--ids")
        {
            Description = "APIC IDs in vCPU order, comma-separated, decimal or 0x-hex (default: 0..N-1).",
            HelpName = "A,B,...",
        };
        var forceX2Apic = new Option<bool>("--force-x2apic")
        {
            Description = "The machine is locked in x2APIC mode: describe every vCPU with a Processor Local x2APIC structure.",
        };
        var output = new Option<string?>("--out")
        {
            Description = "File to write the raw table to (required).",
            HelpName = "FILE",
        };
        var command = new Command("madt", "Write the ACPI MADT (APIC table) of a machine, or decode and check one with 'madt show'.")
        {
            vcpus,
            ids,
            forceX2Apic,
            output,
        };
        command.SetAction(parseResult => Build(
            parseResult.GetValue(vcpus),
            parseResult.GetValue(ids),
            parseResult.GetValue(forceX2Apic),
            parseResult.GetValue(output),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));

        var file = new Argument<string>("file") { Description = "A raw MADT (the bytes 'iasl -d' disassembles)." };
        var json = new Option<bool>("--json") { Description = "Print the decoded table as JSON instead of a table." };
        var show = new Command("show", "Decode and check an MADT: print its structures; exit 2 if it is invalid.")
        {
            file,
            json,
        };
        show.SetAction(parseResult => Show(
            parseResult.GetValue(file) ?? "",
            parseResult.GetValue(json),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        command.Subcommands.Add(show);
        return command;
    }

    private static int Build(string? vcpuText, string? idsText, bool forceX2Apic, string? path, TextWriter output, TextWriter error)
    {
        const string Name = "vapic madt";
        if (string.IsNullOrEmpty(path))
        {
            return CliErrors.Usage(error, Name, "--out FILE is required (or use 'vapic madt show FILE')");
        }

        uint[]? apicIds = null;
        if (idsText is not null && !TryParseIds(idsText, out apicIds, out string? idsProblem))
        {
            return CliErrors.Usage(error, Name, idsProblem);
        }

        int count = apicIds?.Length ?? 1;
        if (vcpuText is not null)
        {
            if (!int.TryParse(vcpuText, NumberStyles.None, s_invariant, out count) || count < 1 || count > MachineOptions.MaxVcpus)
            {
                return CliErrors.Usage(error, Name, $"--vcpus must be a whole number from 1 to {MachineOptions.MaxVcpus}, not '{vcpuText}'");
            }
        }

        var options = new MachineOptions { VcpuCount = count, ApicIds = apicIds, ForceX2Apic = forceX2Apic };
        if (options.Validate() is string problem)
        {
            return CliErrors.Usage(error, Name, problem);
        }

        byte[] table = Madt.Build(options);
        try
        {
            File.WriteAllBytes(path, table);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            return CliErrors.Usage(error, Name, $"cannot write {path}: {ex.Message}");
        }

        MadtDecodeResult decoded = Madt.Decode(table);
        output.WriteLine(
            $"{Name}: wrote {path}: {Number(table.Length)} bytes, {Number(count)} vCPUs " +
            $"({Number(decoded.Count(MadtEntryType.LocalApic))} Processor Local APIC, {Number(decoded.Count(MadtEntryType.LocalX2Apic))} Processor Local x2APIC)");
        return CliExitCode.Success;
    }

    private static bool TryParseIds(string text, out uint[] ids, out string problem)
    {
        string[] parts = text.Split(',');
        ids = new uint[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            string part = parts[i].Trim();
            bool parsed = part.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? uint.TryParse(part.AsSpan(2), NumberStyles.AllowHexSpecifier, s_invariant, out ids[i])
                : uint.TryParse(part, NumberStyles.None, s_invariant, out ids[i]);
            if (!parsed)
            {
                problem = $"--ids: '{part}' is not an APIC ID (decimal or 0x-hex, 0 to 0xfffffffe)";
                return false;
            }
        }

        problem = "";
        return true;
    }

    private static int Show(string path, bool json, TextWriter output, TextWriter error)
    {
        const string Name = "vapic madt show";
        if (!TryRead(path, out byte[] table, out string? readProblem))
        {
            return CliErrors.Usage(error, Name, readProblem);
        }

        MadtDecodeResult result = Madt.Decode(table);
        if (json)
        {
            output.Write(MadtJson.Serialize(result));
            output.Write('\n');
        }
        else
        {
            Render(path, result, output);
        }

        if (!result.IsValid)
        {
            string more = result.Errors.Count == 1 ? "" : $" (and {Number(result.Errors.Count - 1)} more)";
            return CliErrors.Usage(error, Name, $"{path}: invalid MADT: {result.Errors[0]}{more}");
        }

        return CliExitCode.Success;
    }

    private static bool TryRead(string path, out byte[] table, out string problem)
    {
        table = [];
        problem = "";
        if (Directory.Exists(path))
        {
            problem = $"cannot read {path}: it is a directory";
            return false;
        }

        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var buffer = new byte[MaxTableBytes + 1];
            int total = 0;
            int read;
            while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0)
            {
                total += read;
            }

            if (total > MaxTableBytes)
            {
                problem = $"{path} is larger than {Number(MaxTableBytes)} bytes: not an MADT";
                return false;
            }

            table = buffer[..total];
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            problem = $"cannot read {path}: {ex.Message}";
            return false;
        }
    }

    private static void Render(string path, MadtDecodeResult result, TextWriter output)
    {
        if (result.Header is not MadtHeader header)
        {
            output.WriteLine($"{path}: {Number(result.ByteCount)} bytes, too short for an MADT header");
        }
        else
        {
            output.WriteLine($"{path}: signature \"{header.Signature}\", {Number(header.Length)} bytes, revision {Number(header.Revision)}, checksum 0x{header.Checksum:x2}");
            output.WriteLine($"OEM \"{header.OemId}\" \"{header.OemTableId}\" revision {Number(header.OemRevision)}, creator \"{header.CreatorId}\" revision {Number(header.CreatorRevision)}");
            string pcat = (header.Flags & MadtFlags.PcAtCompatible) != 0 ? " (PCAT_COMPAT)" : "";
            output.WriteLine($"Local APIC address 0x{header.LocalApicAddress:x8}, flags 0x{(uint)header.Flags:x}{pcat}");
            output.WriteLine();
            WriteTable(output, EntryTable(result));
        }

        if (result.IsValid)
        {
            output.WriteLine($"Valid: {Number(result.Entries.Count)} structures ({Summary(result)})");
            return;
        }

        output.WriteLine($"Invalid: {Number(result.Errors.Count)} {(result.Errors.Count == 1 ? "error" : "errors")}");
        foreach (MadtError error in result.Errors)
        {
            output.WriteLine($"  {error.Kind}: {error}");
        }
    }

    private static string Summary(MadtDecodeResult result)
    {
        var counts = new SortedDictionary<byte, int>();
        foreach (MadtDecodedEntry entry in result.Entries)
        {
            byte type = (byte)entry.Entry.Type;
            counts[type] = counts.GetValueOrDefault(type) + 1;
        }

        var parts = new List<string>(counts.Count);
        foreach ((byte type, int count) in counts)
        {
            parts.Add($"{Number(count)} {Madt.TypeName(type)}");
        }

        return string.Join(", ", parts);
    }

    private static Table EntryTable(MadtDecodeResult result)
    {
        var table = new Table { Border = TableBorder.Simple };
        table.Title("Interrupt controller structures");
        AddColumn(table, "Offset", leftAligned: false);
        AddColumn(table, "Type", leftAligned: false);
        AddColumn(table, "Structure", leftAligned: true);
        AddColumn(table, "Len", leftAligned: false);
        AddColumn(table, "Fields", leftAligned: true);
        foreach (MadtDecodedEntry decoded in result.Entries)
        {
            byte type = (byte)decoded.Entry.Type;
            table.AddRow(new IRenderable[]
            {
                new Text("0x" + decoded.Offset.ToString("x3", s_invariant)),
                new Text("0x" + type.ToString("x2", s_invariant)),
                new Text(Madt.TypeName(type)),
                new Text(Number(decoded.Entry.Length)),
                new Text(decoded.Entry.Describe()),
            });
        }

        return table;
    }

    private static void AddColumn(Table table, string header, bool leftAligned) =>
        table.AddColumn(new TableColumn(new Text(header))
        {
            Alignment = leftAligned ? Justify.Left : Justify.Right,
            NoWrap = true,
            Padding = new Padding(0, 0, 1, 0),
        });

    // Renders at a fixed width without colour, so the text is the same on a terminal and in a
    // pipe, and drops the padding Spectre adds at the ends of lines.
    private static void WriteTable(TextWriter output, Table table)
    {
        CliTables.Write(output, table, ConsoleWidth);
    }

    private static string Number(long value) => value.ToString(s_invariant);
}
