using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Machine.Workloads;
using Vapic.Virtualization.SecureAvic;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic demo [--duration NS] [--json] [--x2apic]</c>: boots the built-in 4-vCPU guest
/// (<see cref="DemoWorkload"/>), runs it for a fixed virtual time and reports, per CPU and source,
/// how many interrupts were requested, accepted and merged and how long they waited. The output
/// depends only on the options: no host time appears in it.
/// </summary>
public static class DemoCommand
{
    private const int ConsoleWidth = 80;

    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var duration = new Option<long>("--duration")
        {
            Description = $"Virtual time to run, in nanoseconds (1 to {DemoOptions.MaxDurationNs}).",
            HelpName = "NS",
            DefaultValueFactory = _ => DemoOptions.DefaultDurationNs,
            CustomParser = ParseDuration,
        };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON instead of tables." };
        var x2Apic = new Option<bool>("--x2apic")
        {
            Description = "Run the guest in x2APIC mode (MSR interface) instead of xAPIC (MMIO).",
        };
        var mode = new Option<string>("--mode")
        {
            Description = "Run a virtualization mode's scenario instead: 'savic' (Secure AVIC: what the guest allows, what a hostile hypervisor tries and what gets through, kexec without and with teardown).",
            HelpName = "MODE",
        };
        var command = new Command(
            "demo",
            "Boot a 4-vCPU guest (INIT/SIPI), run LAPIC timers, an IPI ring, IOAPIC edge and level lines and an MSI, and report deliveries and latencies.")
        {
            duration,
            json,
            x2Apic,
            mode,
        };
        command.SetAction(parseResult =>
        {
            if (parseResult.GetValue(mode) is string modeName)
            {
                TextWriter error = parseResult.InvocationConfiguration.Error;
                if (modeName != "savic")
                {
                    return CliErrors.Usage(error, "vapic demo", $"--mode '{modeName}' has no demo scenario (only 'savic' has one)");
                }

                foreach (Option builtInOnly in new Option[] { duration, x2Apic })
                {
                    if (parseResult.GetResult(builtInOnly) is { Implicit: false })
                    {
                        return CliErrors.Usage(error, "vapic demo", $"{builtInOnly.Name} applies to the built-in demo, not to --mode savic");
                    }
                }

                return RunSecureAvic(parseResult.GetValue(json), parseResult.InvocationConfiguration.Output);
            }

            var options = new DemoOptions
            {
                DurationNs = parseResult.GetValue(duration),
                UseX2Apic = parseResult.GetValue(x2Apic),
            };
            return Run(options, parseResult.GetValue(json), parseResult.InvocationConfiguration.Output);
        });
        return command;
    }

    private static long ParseDuration(System.CommandLine.Parsing.ArgumentResult result)
    {
        string text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        if (long.TryParse(text, NumberStyles.None, s_invariant, out long value) &&
            value >= 1 && value <= DemoOptions.MaxDurationNs)
        {
            return value;
        }

        result.AddError($"--duration must be a whole number of nanoseconds from 1 to {DemoOptions.MaxDurationNs}, not '{text}'");
        return 0;
    }

    private static int Run(DemoOptions options, bool json, TextWriter output)
    {
        DemoResult result = new DemoWorkload(options).Run();
        if (json)
        {
            output.Write(DemoResultJson.Serialize(result));
            output.Write('\n');
            return CliExitCode.Success;
        }

        Render(result, output);
        return CliExitCode.Success;
    }

    private static void Render(DemoResult result, TextWriter output)
    {
        string mode = result.GuestApicMode == ApicMode.X2Apic ? "x2APIC" : "xAPIC";
        output.WriteLine($"vapic demo: {result.Cpus.Count} vCPUs, {mode} guest, {Number(result.DurationNs)} ns of virtual time");
        WriteTable(output, CpuTable(result));
        WriteTable(output, InterruptTable(result));
        WriteSummary(output, result);
    }

    // Renders at a fixed width without colour, so the text is the same on a terminal and in a
    // pipe, and drops the padding Spectre adds at the ends of lines.
    private static void WriteTable(TextWriter output, Table table)
    {
        CliTables.Write(output, table, ConsoleWidth);
    }

    private static Table CpuTable(DemoResult result)
    {
        Table table = NewTable("CPUs");
        AddColumns(table, ("CPU", false), ("APIC ID", false), ("State", true), ("Online at ns", false), ("Timer period ns", false), ("Busy ns", false));
        foreach (DemoCpuResult cpu in result.Cpus)
        {
            AddRow(
                table,
                Number(cpu.Cpu),
                Number(cpu.ApicId),
                cpu.RunState == VcpuRunState.Running ? "running" : "wait-for-SIPI",
                cpu.OnlineAtNs is long online ? Number(online) : "-",
                Number(cpu.TimerPeriodNs),
                Number(cpu.BusyNs));
        }

        return table;
    }

    private static Table InterruptTable(DemoResult result)
    {
        Table table = NewTable("Interrupts by CPU and source (latency: request to acceptance, virtual ns)");
        AddColumns(
            table,
            ("CPU", true),
            ("Source", true),
            ("Requested", false),
            ("Accepted", false),
            ("Merged", false),
            ("Pending", false),
            ("Min", false),
            ("Mean", false),
            ("Max", false));
        foreach (DemoCpuResult cpu in result.Cpus)
        {
            foreach (DemoSourceStats stats in cpu.Sources)
            {
                if (stats.Requested != 0)
                {
                    AddStatsRow(table, Number(cpu.Cpu), stats);
                }
            }
        }

        table.AddEmptyRow();
        foreach (DemoSourceStats stats in result.Totals)
        {
            AddStatsRow(table, "all", stats);
        }

        return table;
    }

    private static void AddStatsRow(Table table, string cpu, in DemoSourceStats stats) => AddRow(
        table,
        cpu,
        DemoResultJson.SourceName(stats.Source),
        Number(stats.Requested),
        Number(stats.Accepted),
        Number(stats.Merged),
        Number(stats.Pending),
        stats.LatencyMinNs is long min ? Number(min) : "-",
        stats.LatencyMeanNs is double mean ? mean.ToString("F1", s_invariant) : "-",
        stats.LatencyMaxNs is long max ? Number(max) : "-");

    private static void WriteSummary(TextWriter output, DemoResult result)
    {
        DemoMachineCounters c = result.Counters;
        long dropped = 0;
        long running = 0;
        foreach (DemoSourceStats stats in result.Totals)
        {
            dropped += stats.Dropped;
        }

        foreach (DemoCpuResult cpu in result.Cpus)
        {
            if (cpu.Cpu != 0 && cpu.RunState == VcpuRunState.Running)
            {
                running++;
            }
        }

        output.WriteLine($"APs running: {Number(running)} of {Number(result.Cpus.Count - 1)} (INIT taken {Number(c.InitsTaken)}, SIPI taken {Number(c.StartupsTaken)}, SIPI discarded {Number(c.StartupsDiscarded)})");
        output.WriteLine($"Routed: {Number(c.IpisRouted)} IPIs, {Number(c.IoApicMessagesRouted)} IOAPIC messages, {Number(c.MsisRouted)} MSIs");
        output.WriteLine($"Timer expiries: {Number(c.TimerExpiries)}; EOIs broadcast to the IOAPIC: {Number(c.EoiBroadcasts)}");
        output.WriteLine($"Lost: {Number(dropped)} requests dropped, {Number(c.NoDestination)} messages with no destination, {Number(c.ReservedModeDropped)} with a reserved mode");
    }

    private static Table NewTable(string title)
    {
        var table = new Table { Border = TableBorder.Simple };
        table.Title(title);
        return table;
    }

    private static void AddColumns(Table table, params (string Header, bool LeftAligned)[] columns)
    {
        foreach ((string header, bool left) in columns)
        {
            var column = new TableColumn(new Text(header))
            {
                Alignment = left ? Justify.Left : Justify.Right,
                NoWrap = true,
                Padding = new Padding(0, 0, 1, 0),
            };
            table.AddColumn(column);
        }
    }

    private static void AddRow(Table table, params string[] cells)
    {
        var renderables = new IRenderable[cells.Length];
        for (int i = 0; i < cells.Length; i++)
        {
            renderables[i] = new Text(cells[i]);
        }

        table.AddRow(renderables);
    }

    private static string Number(long value) => value.ToString(s_invariant);

    // vapic demo --mode savic: the Secure AVIC kexec scenario, without and then with the teardown.
    private static int RunSecureAvic(bool json, TextWriter output)
    {
        SecureAvicKexecResult[] runs = [SecureAvicKexecScenario.Run(tearDown: false), SecureAvicKexecScenario.Run(tearDown: true)];
        if (json)
        {
            WriteSecureAvicJson(runs, output);
            return CliExitCode.Success;
        }

        output.WriteLine("vapic demo --mode savic: an SEV-SNP guest with Secure AVIC on 2 vCPUs (x2APIC), a hostile hypervisor, and kexec into a kernel that knows nothing of Secure AVIC");
        output.WriteLine();
        SecureAvicKexecResult first = runs[0];
        Table allowed = NewTable("What kernel 1 (Secure AVIC driver) allowed before kexec");
        AddColumns(allowed, ("vCPU", false), ("ALLOWED_IRR", true), ("NMI", true), ("Control MSR", false), ("Registered page", false));
        foreach (SecureAvicVcpuSnapshot s in first.FirstKernel)
        {
            AddRow(allowed, Number(s.Vcpu), Vectors(s.AllowedVectors), s.NmiAllowed ? "allowed" : "refused", Hex(s.ControlMsr), s.RegisteredGpa is ulong gpa ? Hex(gpa) : "-");
        }

        WriteTable(output, allowed);
        foreach ((byte vector, int from, int to, bool stillAllowed) in first.VectorMoves)
        {
            output.WriteLine($"IOAPIC vector {Hex(vector)} moved from vCPU {from} to vCPU {to}: ALLOWED_IRR[{Hex(vector)}] {(stillAllowed ? "still set" : "cleared")} on vCPU {from}");
        }

        output.WriteLine();
        WriteTable(output, DeliveryTable("Kernel 1: sent and got through", first, SecureAvicKexecScenario.FirstKernelPhase));
        foreach (SecureAvicKexecResult run in runs)
        {
            string how = run.TearDown ? "with teardown" : "without teardown";
            WriteTable(output, DeliveryTable($"Kernel 2 (kexec {how}): sent and got through", run, SecureAvicKexecScenario.SecondKernelPhase));
            int enabled = run.SecondKernel.Count(s => (s.ControlMsr & SecureAvicControl.Enable) != 0);
            int registered = run.SecondKernel.Count(s => s.RegisteredGpa is not null);
            string stale = string.Join("; ", run.SecondKernel.Where(s => s.AllowedVectors.Count != 0).Select(s => $"vCPU {s.Vcpu}: {Vectors(s.AllowedVectors)}"));
            output.WriteLine($"Kexec {how}: Secure AVIC still enabled on {enabled} of {run.SecondKernel.Count} vCPUs, {registered} backing page(s) still registered, ALLOWED_IRR left: {(stale.Length == 0 ? "none" : stale)}");
            output.WriteLine($"  kernel 2 took {Number(run.UnhandledVcExceptions)} #VC it cannot handle and lost {Number(run.SecondKernelDevicesLost)} of its device interrupts: {(run.SecondKernelBootsCleanly ? "it boots cleanly" : "it does NOT boot cleanly")}");
            output.WriteLine();
        }

        return CliExitCode.Success;
    }

    private static Table DeliveryTable(string title, SecureAvicKexecResult run, string phase)
    {
        Table table = NewTable(title);
        AddColumns(table, ("Source", true), ("vCPU", false), ("Vector", true), ("Allowed", true), ("Got through", true));
        foreach (SecureAvicDelivery d in run.Deliveries)
        {
            if (d.Phase == phase)
            {
                AddRow(
                    table,
                    SourceName(d.Source),
                    Number(d.Vcpu),
                    d.Vector is byte v ? Hex(v) : "NMI",
                    d.Allowed is bool a ? (a ? "yes" : "no") : "not filtered",
                    d.GotThrough ? "yes" : "no");
            }
        }

        return table;
    }

    private static void WriteSecureAvicJson(SecureAvicKexecResult[] runs, TextWriter output)
    {
        var buffer = new MemoryStream();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("scenario", "savic-kexec");
            writer.WriteStartArray("runs");
            foreach (SecureAvicKexecResult run in runs)
            {
                writer.WriteStartObject();
                writer.WriteBoolean("teardown", run.TearDown);
                WriteSnapshots(writer, "firstKernel", run.FirstKernel);
                WriteSnapshots(writer, "secondKernel", run.SecondKernel);
                writer.WriteStartArray("deliveries");
                foreach (SecureAvicDelivery d in run.Deliveries)
                {
                    writer.WriteStartObject();
                    writer.WriteString("phase", d.Phase);
                    writer.WriteString("source", SourceName(d.Source));
                    writer.WriteNumber("vcpu", d.Vcpu);
                    if (d.Vector is byte v)
                    {
                        writer.WriteNumber("vector", v);
                    }
                    else
                    {
                        writer.WriteString("vector", "nmi");
                    }

                    if (d.Allowed is bool a)
                    {
                        writer.WriteBoolean("allowed", a);
                    }
                    else
                    {
                        writer.WriteNull("allowed");
                    }

                    writer.WriteBoolean("gotThrough", d.GotThrough);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                writer.WriteNumber("unhandledVcExceptions", run.UnhandledVcExceptions);
                writer.WriteNumber("secondKernelDevicesLost", run.SecondKernelDevicesLost);
                writer.WriteBoolean("secondKernelBootsCleanly", run.SecondKernelBootsCleanly);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        output.Write(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        output.Write('\n');
    }

    private static void WriteSnapshots(System.Text.Json.Utf8JsonWriter writer, string name, IReadOnlyList<SecureAvicVcpuSnapshot> snapshots)
    {
        writer.WriteStartArray(name);
        foreach (SecureAvicVcpuSnapshot s in snapshots)
        {
            writer.WriteStartObject();
            writer.WriteNumber("vcpu", s.Vcpu);
            writer.WriteStartArray("allowedVectors");
            foreach (byte v in s.AllowedVectors)
            {
                writer.WriteNumberValue(v);
            }

            writer.WriteEndArray();
            writer.WriteBoolean("nmiAllowed", s.NmiAllowed);
            writer.WriteNumber("controlMsr", s.ControlMsr);
            if (s.RegisteredGpa is ulong gpa)
            {
                writer.WriteNumber("registeredGpa", gpa);
            }
            else
            {
                writer.WriteNull("registeredGpa");
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    private static string SourceName(SecureAvicSource source) => source switch
    {
        SecureAvicSource.GuestIpi => "guest IPI",
        SecureAvicSource.Device => "device",
        SecureAvicSource.Timer => "timer",
        _ => "hypervisor",
    };

    private static string Vectors(IReadOnlyList<byte> vectors) =>
        vectors.Count == 0 ? "none" : string.Join(" ", vectors.Select(v => Hex(v)));

    private static string Hex(ulong value) => "0x" + value.ToString("x", s_invariant);
}
