using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using Vapic.Apic.SavedState;
using Vapic.Machine.Interop;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic state show FILE [--from kvm|xen|vapic] [--json]</c> prints every register of every
/// saved local APIC, decoded; <c>vapic state convert FILE --from F --to T --out FILE</c> converts
/// between Vapic's saved state, KVM LAPIC pages and Xen HVM LAPIC records (docs/state-interop.md).
/// Exit status: 0 done, 2 bad options or a file that is not a valid saved state (one line on stderr).
/// </summary>
public static class StateCommand
{
    private const int ConsoleWidth = 200;

    /// <summary>The largest file read: 4096 vCPUs of KVM pages fit well below it.</summary>
    private const int MaxFileBytes = 64 << 20;

    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command with its <c>show</c> and <c>convert</c> subcommands.</summary>
    public static Command Create()
    {
        var command = new Command("state", "Show or convert saved local APIC state (Vapic, KVM, Xen).");
        command.Subcommands.Add(CreateShow());
        command.Subcommands.Add(CreateConvert());
        command.SetAction(parseResult =>
            CliErrors.Usage(parseResult.InvocationConfiguration.Error, "vapic state", "a subcommand is required: show, convert (see 'vapic state --help')"));
        return command;
    }

    private static Command CreateShow()
    {
        var file = new Argument<string>("FILE") { Description = "The saved-state file." };
        var from = new Option<string?>("--from") { Description = "The file's format: kvm, xen or vapic (default: detected).", HelpName = "kvm|xen|vapic" };
        var json = new Option<bool>("--json") { Description = "Print {\"format\", \"apics\": [{\"id\", \"mode\", \"registers\"}]} instead of tables." };
        var command = new Command("show", "Print every register of every local APIC in a saved-state file, decoded.") { file, from, json };
        command.SetAction(parseResult => Show(
            parseResult.GetValue(file)!,
            parseResult.GetValue(from),
            parseResult.GetValue(json),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    private static Command CreateConvert()
    {
        var file = new Argument<string>("FILE") { Description = "The saved-state file to convert." };
        var from = new Option<string>("--from") { Description = "The input format: kvm, xen or vapic.", Required = true, HelpName = "kvm|xen|vapic" };
        var to = new Option<string>("--to") { Description = "The output format: kvm, xen or vapic.", Required = true, HelpName = "kvm|xen|vapic" };
        var output = new Option<string>("--out") { Description = "The file to write.", Required = true, HelpName = "FILE" };
        var command = new Command("convert", "Convert a saved-state file between the Vapic, KVM and Xen formats.") { file, from, to, output };
        command.SetAction(parseResult => Convert(
            parseResult.GetValue(file)!,
            parseResult.GetValue(from)!,
            parseResult.GetValue(to)!,
            parseResult.GetValue(output)!,
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    private static int Show(string path, string? fromName, bool json, TextWriter output, TextWriter error)
    {
        const string Name = "vapic state show";
        LapicStateFormat? from = null;
        if (fromName is not null)
        {
            if (!TryParseFormat(fromName, out LapicStateFormat parsed))
            {
                return CliErrors.Usage(error, Name, $"unknown format '{fromName}' for --from (formats: kvm, xen, vapic)");
            }

            from = parsed;
        }

        if (!TryReadFile(path, out byte[] data, out string? problem))
        {
            return CliErrors.Usage(error, Name, problem!);
        }

        LapicStateFormat format = from ?? LapicStateFile.Detect(data);
        LapicFileReadResult read = LapicStateFile.Read(format, data);
        if (!read.IsSuccess)
        {
            return CliErrors.Usage(error, Name, $"{path}: not a valid {FormatName(format)} LAPIC state: {read}");
        }

        if (json)
        {
            output.WriteLine(ToJson(format, read.Apics));
            return CliExitCode.Success;
        }

        output.WriteLine($"{path}: {FormatName(format)}, {read.Apics.Length} local APIC{(read.Apics.Length == 1 ? "" : "s")}");
        output.WriteLine();
        for (int i = 0; i < read.Apics.Length; i++)
        {
            LocalApicState apic = read.Apics[i];
            output.WriteLine($"vCPU {i}: APIC ID {LapicRegisterView.ApicId(apic)}, {LapicRegisterView.ModeName(apic)}");
            var table = new Table { Border = TableBorder.Simple };
            table.AddColumn("Register");
            table.AddColumn("Offset");
            table.AddColumn("Value");
            table.AddColumn("Decoded");
            foreach (LapicRegister register in LapicRegisterView.Registers(apic))
            {
                table.AddRow(
                    Markup.Escape(register.Name),
                    register.Offset < 0 ? "MSR" : "0x" + register.Offset.ToString("x3", s_invariant),
                    Markup.Escape(register.Value),
                    Markup.Escape(register.Decoded));
            }

            WriteTable(output, table);
        }

        return CliExitCode.Success;
    }

    private static int Convert(string path, string fromName, string toName, string outPath, TextWriter output, TextWriter error)
    {
        const string Name = "vapic state convert";
        if (!TryParseFormat(fromName, out LapicStateFormat from))
        {
            return CliErrors.Usage(error, Name, $"unknown format '{fromName}' for --from (formats: kvm, xen, vapic)");
        }

        if (!TryParseFormat(toName, out LapicStateFormat to))
        {
            return CliErrors.Usage(error, Name, $"unknown format '{toName}' for --to (formats: kvm, xen, vapic)");
        }

        if (!TryReadFile(path, out byte[] data, out string? problem))
        {
            return CliErrors.Usage(error, Name, problem!);
        }

        LapicFileReadResult read = LapicStateFile.Read(from, data);
        if (!read.IsSuccess)
        {
            return CliErrors.Usage(error, Name, $"{path}: not a valid {FormatName(from)} LAPIC state: {read}");
        }

        byte[] converted;
        try
        {
            converted = LapicStateFile.Write(to, read.Apics);
        }
        catch (ArgumentException ex)
        {
            // A Vapic machine cannot hold these APICs (for example repeated or out-of-range IDs).
            return CliErrors.Usage(error, Name, $"{path}: cannot build a {FormatName(to)} state: {ex.Message}");
        }

        try
        {
            File.WriteAllBytes(outPath, converted);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return CliErrors.Usage(error, Name, $"cannot write {outPath}: {ex.Message}");
        }

        output.WriteLine($"wrote {outPath}: {FormatName(to)}, {read.Apics.Length} local APIC{(read.Apics.Length == 1 ? "" : "s")}, {converted.Length} bytes");
        return CliExitCode.Success;
    }

    private static bool TryParseFormat(string name, out LapicStateFormat format)
    {
        switch (name)
        {
            case "kvm":
                format = LapicStateFormat.Kvm;
                return true;
            case "xen":
                format = LapicStateFormat.Xen;
                return true;
            case "vapic":
                format = LapicStateFormat.Vapic;
                return true;
            default:
                format = default;
                return false;
        }
    }

    private static string FormatName(LapicStateFormat format) => format switch
    {
        LapicStateFormat.Kvm => "kvm",
        LapicStateFormat.Xen => "xen",
        _ => "vapic",
    };

    private static bool TryReadFile(string path, out byte[] data, out string? problem)
    {
        data = [];
        problem = null;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                problem = $"{path}: no such file";
                return false;
            }

            if (info.Length > MaxFileBytes)
            {
                problem = $"{path} is larger than {MaxFileBytes} bytes: not a LAPIC saved state";
                return false;
            }

            data = File.ReadAllBytes(path);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            problem = $"cannot read {path}: {ex.Message}";
            return false;
        }
    }

    /// <summary>The <c>--json</c> document.</summary>
    internal static string ToJson(LapicStateFormat format, IReadOnlyList<LocalApicState> apics)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("format", FormatName(format));
            writer.WriteStartArray("apics");
            foreach (LocalApicState apic in apics)
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", LapicRegisterView.ApicId(apic));
                writer.WriteString("mode", LapicRegisterView.ModeName(apic));
                writer.WriteStartObject("registers");
                foreach (LapicRegister register in LapicRegisterView.Registers(apic))
                {
                    writer.WriteString(register.Name, register.Value);
                }

                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    // Renders at a fixed width without colour, so the text is the same on a terminal and in a pipe.
    private static void WriteTable(TextWriter output, Table table)
    {
        CliTables.Write(output, table, ConsoleWidth);
    }
}
