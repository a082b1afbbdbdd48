using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;
using Vapic.Virtualization;
using Vapic.Virtualization.Compare;
using Vapic.Virtualization.Configuration;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic run CONFIG.toml [--json]</c>: loads a TOML machine description (docs/configuration.md),
/// runs its workload under its mode and prints the exits by reason, the interrupts delivered and
/// the estimated cycles per interrupt. Exits 0 on a clean run, 1 when the run lost or invented an
/// interrupt, 2 on a bad configuration (one line on stderr: <c>file:line:column: message</c>).
/// </summary>
public static class RunCommand
{
    private const int ConsoleWidth = 100;

    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Creates the <c>run</c> command.</summary>
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "The TOML machine description (see examples/ and docs/configuration.md)." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object instead of a table." };
        var command = new Command("run", "Run the workload of a TOML machine description under its virtualization mode.")
        {
            config,
            json,
        };
        command.SetAction(parseResult =>
        {
            TextWriter output = parseResult.InvocationConfiguration.Output;
            TextWriter error = parseResult.InvocationConfiguration.Error;
            ConfigurationLoadResult loaded = MachineConfigurationLoader.Load(parseResult.GetValue(config)!);
            if (loaded.Error is ConfigurationError bad)
            {
                error.WriteLine(bad.ToString().ReplaceLineEndings(" "));
                return CliExitCode.Usage;
            }

            MachineConfiguration configuration = loaded.Configuration!;
            ComparisonResult result = configuration.Run(out IReadOnlyList<DeviceSourceRun> devices);
            if (parseResult.GetValue(json))
            {
                output.Write(Serialize(configuration, result, devices));
                output.Write('\n');
            }
            else
            {
                Render(configuration, result, devices, output);
            }

            foreach (string failure in result.Failures)
            {
                error.WriteLine($"vapic run: {failure}");
            }

            return result.Passed ? CliExitCode.Success : CliExitCode.Failure;
        });
        return command;
    }

    /// <summary>
    /// The result as one JSON object: <c>{"config", "mode", "workload", "vcpus", "x2apic",
    /// "halt_idle", "rounds", "duration_ns", "exits": {reason: n}, "exits_total",
    /// "interrupts_delivered", "expected_interrupts", "cycles", "cycles_per_interrupt", "devices":
    /// [{"name", "kind", "delivery", "vector", "target", "firings", "interrupts_taken"}],
    /// "problems": [...]}</c>. A device's <c>vector</c> is null for NMI delivery; <c>devices</c> is
    /// empty when the machine has none.
    /// </summary>
    public static string Serialize(MachineConfiguration configuration, ComparisonResult result, IReadOnlyList<DeviceSourceRun>? devices = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(result);
        devices ??= [];
        ModeComparison mode = result.Modes[0];
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteString("config", configuration.SourceName);
            writer.WriteString("mode", mode.Mode);
            writer.WriteString("workload", result.Workload);
            writer.WriteNumber("vcpus", result.VcpuCount);
            writer.WriteBoolean("x2apic", configuration.Workload.UseX2Apic);
            writer.WriteBoolean("halt_idle", configuration.Workload.HaltIdle);
            writer.WriteNumber("rounds", configuration.Workload.RoundCount);
            writer.WriteNumber("duration_ns", configuration.Workload.EffectiveDurationNs);
            writer.WriteStartObject("exits");
            foreach (ExitReason reason in ExitLedger.Reasons)
            {
                long count = mode.Counts.ExitsOf(reason);
                if (count != 0)
                {
                    writer.WriteNumber(reason.ToString(), count);
                }
            }

            writer.WriteEndObject();
            writer.WriteNumber("exits_total", mode.ExitsTotal);
            writer.WriteNumber("interrupts_delivered", mode.InterruptsDelivered);
            if (result.ExpectedInterrupts is long expected)
            {
                writer.WriteNumber("expected_interrupts", expected);
            }

            writer.WriteNumber("cycles", mode.Cycles);
            if (mode.CyclesPerInterrupt is double perInterrupt)
            {
                writer.WriteNumber("cycles_per_interrupt", Math.Round(perInterrupt, 1));
            }
            else
            {
                writer.WriteNull("cycles_per_interrupt");
            }

            writer.WriteStartArray("devices");
            foreach (DeviceSourceRun device in devices)
            {
                DeviceSource source = device.Source;
                writer.WriteStartObject();
                writer.WriteString("name", source.Name);
                writer.WriteString("kind", source.KindName);
                writer.WriteString("delivery", source.DeliveryName);
                if (source.IsNmi)
                {
                    writer.WriteNull("vector");
                }
                else
                {
                    writer.WriteNumber("vector", source.Vector);
                }

                writer.WriteNumber("target", source.Target);
                writer.WriteNumber("firings", device.Firings);
                writer.WriteNumber("interrupts_taken", device.InterruptsTaken);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteStartArray("problems");
            foreach (string problem in result.Failures)
            {
                writer.WriteStringValue(problem);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void Render(MachineConfiguration configuration, ComparisonResult result, IReadOnlyList<DeviceSourceRun> devices, TextWriter output)
    {
        CompareWorkloadOptions o = configuration.Workload;
        ModeComparison mode = result.Modes[0];
        output.WriteLine(
            $"vapic run: {configuration.SourceName}: {mode.Mode}, {result.Workload}, {Number(result.VcpuCount)} vCPUs, " +
            $"{(o.UseX2Apic ? "x2APIC" : "xAPIC")} guest, {(o.HaltIdle ? "idle vCPUs halted" : "targets running")}, " +
            $"{Number(o.RoundCount)} rounds ({Number(o.EffectiveDurationNs)} ns); boot and setup excluded");

        var table = new Table { Border = TableBorder.Simple };
        table.AddColumn(new TableColumn(new Text("")) { NoWrap = true });
        table.AddColumn(new TableColumn(new Text(mode.Mode)) { Alignment = Justify.Right, NoWrap = true });
        foreach (ExitReason reason in ExitLedger.Reasons)
        {
            long count = mode.Counts.ExitsOf(reason);
            if (count != 0)
            {
                AddRow(table, "exit: " + reason, Number(count));
            }
        }

        AddRow(table, "total exits", Number(mode.ExitsTotal));
        AddRow(table, "interrupts delivered", Number(mode.InterruptsDelivered));
        AddRow(table, "estimated cycles", Number(mode.Cycles));
        AddRow(table, "cycles per interrupt", mode.CyclesPerInterrupt is double c ? c.ToString("F1", s_invariant) : "-");
        Write(output, table);
        if (devices.Count == 0)
        {
            return;
        }

        var deviceTable = new Table { Border = TableBorder.Simple };
        deviceTable.AddColumn(new TableColumn(new Text("device")) { NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("kind")) { NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("delivery")) { NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("vector")) { NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("target")) { Alignment = Justify.Right, NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("firings")) { Alignment = Justify.Right, NoWrap = true });
        deviceTable.AddColumn(new TableColumn(new Text("taken")) { Alignment = Justify.Right, NoWrap = true });
        foreach (DeviceSourceRun device in devices)
        {
            DeviceSource source = device.Source;
            deviceTable.AddRow(
                new Text(source.Name),
                new Text(source.KindName),
                new Text(source.DeliveryName),
                new Text(source.IsNmi ? "-" : $"0x{source.Vector:x2}"),
                new Text(Number(source.Target)),
                new Text(Number(device.Firings)),
                new Text(Number(device.InterruptsTaken)));
        }

        Write(output, deviceTable);
    }

    private static void AddRow(Table table, string name, string value) => table.AddRow(new Text(name), new Text(value));

    private static string Number(long value) => value.ToString("N0", s_invariant);

    // Fixed width, no colour: the same text on a terminal and in a pipe.
    private static void Write(TextWriter output, IRenderable renderable)
    {
        var buffer = new StringWriter(s_invariant);
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(buffer),
        });
        console.Profile.Width = ConsoleWidth;
        console.Write(renderable);
        foreach (string line in buffer.ToString().TrimEnd().Split('\n'))
        {
            output.WriteLine(line.TrimEnd());
        }
    }
}
