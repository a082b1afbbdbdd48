using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Vapic.Machine.Acpi;
using Xunit;
using static Vapic.Machine.Tests.Acpi.MadtTestData;

namespace Vapic.Machine.Tests.Acpi;

/// <summary>
/// An independent oracle: ACPICA's disassembler (<c>iasl -d</c>, Debian package acpica-tools) must
/// accept the generated tables without a complaint and list exactly the expected structures.
/// iasl is required, not optional: .ci/run installs it, and without it these tests fail.
/// </summary>
public sealed partial class MadtIaslTests
{
    // "[02Ch 0044   1]                Subtable Type : 00 [Processor Local APIC]", and decoded
    // flag bits without the offset prefix: "                           Processor Enabled : 1".
    [GeneratedRegex(@"^(?:\[[0-9A-F]+h [0-9]+ +[0-9]+\])? +(?<name>[^:*]+?) : (?<value>.*)$", RegexOptions.Multiline)]
    private static partial Regex FieldLine();

    // Markers ACPICA writes into the .dsl for anything it finds wrong (checked below against a
    // broken table, so a quiet .dsl really means iasl found nothing).
    private static readonly string[] s_complaints =
        ["****", "Incorrect", "Invalid", "Unknown", "terminates early", "Warning", "Error"];

    private sealed record Subtable(int Type, Dictionary<string, string> Fields);

    private sealed record Disassembly(string Dsl, string Messages, List<Subtable> Subtables, Dictionary<string, string> Header);

    private static string FindIasl()
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            string candidate = Path.Combine(directory, "iasl");
            if (directory.Length > 0 && File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Fail("iasl is not installed: install Debian's acpica-tools (apt-get install -y acpica-tools); .ci/run does this before the tests.");
        return "";
    }

    private static Disassembly Disassemble(byte[] table)
    {
        string iasl = FindIasl();
        string directory = Directory.CreateTempSubdirectory("vapic-madt-").FullName;
        try
        {
            File.WriteAllBytes(Path.Combine(directory, "apic.dat"), table);
            var start = new ProcessStartInfo(iasl)
            {
                WorkingDirectory = directory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add("-d");
            start.ArgumentList.Add("apic.dat");
            using Process process = Process.Start(start)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            Assert.True(process.WaitForExit(60_000), "iasl -d did not finish within 60 s");
            string messages = stdout.Result + stderr.Result;
            Assert.True(process.ExitCode == 0, $"iasl -d exited with {process.ExitCode}:\n{messages}");
            string dslPath = Path.Combine(directory, "apic.dsl");
            Assert.True(File.Exists(dslPath), $"iasl -d wrote no apic.dsl:\n{messages}");
            string dsl = File.ReadAllText(dslPath);
            return Parse(dsl, messages);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static Disassembly Parse(string dsl, string messages)
    {
        var header = new Dictionary<string, string>();
        var subtables = new List<Subtable>();
        foreach (Match match in FieldLine().Matches(dsl))
        {
            string name = match.Groups["name"].Value.Trim();
            string value = match.Groups["value"].Value.Trim();
            if (name == "Subtable Type")
            {
                subtables.Add(new Subtable(int.Parse(value[..2], NumberStyles.HexNumber, CultureInfo.InvariantCulture), []));
            }
            else if (subtables.Count == 0)
            {
                header[name] = value;
            }
            else
            {
                subtables[^1].Fields[name] = value;
            }
        }

        return new Disassembly(dsl, messages, subtables, header);
    }

    private static void AssertNoComplaints(Disassembly disassembly)
    {
        foreach (string complaint in s_complaints)
        {
            Assert.False(disassembly.Dsl.Contains(complaint, StringComparison.OrdinalIgnoreCase), $"iasl's .dsl contains \"{complaint}\":\n{disassembly.Dsl}");
            Assert.False(disassembly.Messages.Contains(complaint, StringComparison.OrdinalIgnoreCase), $"iasl printed \"{complaint}\":\n{disassembly.Messages}");
        }
    }

    private static int CountLines(string dsl, string text) =>
        Regex.Count(dsl, Regex.Escape(text));

    private static uint Hex(string value) => uint.Parse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    // Checks the disassembly against the machine: header, then each vCPU's structure in vCPU
    // order with its ID and UID as iasl reads them, then the device structures.
    private static void AssertDescribes(Disassembly disassembly, MachineOptions options, byte[] table)
    {
        AssertNoComplaints(disassembly);
        Assert.Equal("\"APIC\"    [Multiple APIC Description Table (MADT)]", disassembly.Header["Signature"]);
        Assert.Equal((uint)table.Length, Hex(disassembly.Header["Table Length"]));
        Assert.Equal("06", disassembly.Header["Revision"]);
        Assert.Equal("\"VAPIC \"", disassembly.Header["Oem ID"]);
        Assert.Equal("FEE00000", disassembly.Header["Local Apic Address"]);
        Assert.Equal("00000001", disassembly.Header["Flags (decoded below)"]);

        List<MadtEntry> processors = ExpectedProcessors(options);
        int x2ApicCount = processors.Count(p => p is MadtLocalX2ApicEntry);
        Assert.Equal(processors.Count - x2ApicCount, CountLines(disassembly.Dsl, "Subtable Type : 00 [Processor Local APIC]"));
        Assert.Equal(x2ApicCount, CountLines(disassembly.Dsl, "Subtable Type : 09 [Processor Local x2APIC]"));
        Assert.Equal(1, CountLines(disassembly.Dsl, "Subtable Type : 01 [I/O APIC]"));
        Assert.Equal(2, CountLines(disassembly.Dsl, "Subtable Type : 02 [Interrupt Source Override]"));
        Assert.Equal(1, CountLines(disassembly.Dsl, "Subtable Type : 04 [Local APIC NMI]"));
        Assert.Equal(x2ApicCount > 0 ? 1 : 0, CountLines(disassembly.Dsl, "Subtable Type : 0A [Local x2APIC NMI]"));
        Assert.Equal(processors.Count + 4 + (x2ApicCount > 0 ? 1 : 0), disassembly.Subtables.Count);

        for (int i = 0; i < processors.Count; i++)
        {
            Subtable subtable = disassembly.Subtables[i];
            switch (processors[i])
            {
                case MadtLocalApicEntry local:
                    Assert.Equal(0, subtable.Type);
                    Assert.Equal(local.ProcessorUid, Hex(subtable.Fields["Processor ID"]));
                    Assert.Equal(local.ApicId, Hex(subtable.Fields["Local Apic ID"]));
                    Assert.Equal("1", subtable.Fields["Processor Enabled"]);
                    break;
                case MadtLocalX2ApicEntry local:
                    Assert.Equal(9, subtable.Type);
                    Assert.Equal(local.X2ApicId, Hex(subtable.Fields["Processor x2Apic ID"]));
                    Assert.Equal(local.ProcessorUid, Hex(subtable.Fields["Processor UID"]));
                    Assert.Equal("1", subtable.Fields["Processor Enabled"]);
                    break;
            }
        }

        Subtable ioApic = disassembly.Subtables[processors.Count];
        Assert.Equal("00", ioApic.Fields["I/O Apic ID"]);
        Assert.Equal("FEC00000", ioApic.Fields["Address"]);
        Assert.Equal("00000000", ioApic.Fields["Interrupt"]);
        Subtable timer = disassembly.Subtables[processors.Count + 1];
        Assert.Equal(("00", "00000002", "0000"), (timer.Fields["Source"], timer.Fields["Interrupt"], timer.Fields["Flags (decoded below)"]));
        Subtable sci = disassembly.Subtables[processors.Count + 2];
        Assert.Equal(("09", "00000009", "000D"), (sci.Fields["Source"], sci.Fields["Interrupt"], sci.Fields["Flags (decoded below)"]));
        Assert.Equal(("1", "3"), (sci.Fields["Polarity"], sci.Fields["Trigger Mode"]));
        Subtable nmi = disassembly.Subtables[processors.Count + 3];
        Assert.Equal(("FF", "0005", "01"), (nmi.Fields["Processor ID"], nmi.Fields["Flags (decoded below)"], nmi.Fields["Interrupt Input LINT"]));
        if (x2ApicCount > 0)
        {
            Subtable x2Nmi = disassembly.Subtables[processors.Count + 4];
            Assert.Equal(("FFFFFFFF", "0005", "01"), (x2Nmi.Fields["Processor UID"], x2Nmi.Fields["Flags (decoded below)"], x2Nmi.Fields["Interrupt Input LINT"]));
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, false)]
    [InlineData(255, false)]
    [InlineData(300, false)]
    [InlineData(4, true)]
    [InlineData(300, true)]
    public void Iasl_AcceptsTheTable_AndListsTheExpectedStructures(int vcpus, bool locked)
    {
        MachineOptions options = MachineWith(vcpus, locked);
        byte[] table = Madt.Build(options);

        AssertDescribes(Disassemble(table), options, table);
    }

    [Fact]
    public void Iasl_AcceptsSparseIdsAcrossFF()
    {
        MachineOptions options = MachineWith(5, ids: [0, 1, 2, 0x0A, 0x100]);
        byte[] table = Madt.Build(options);

        AssertDescribes(Disassemble(table), options, table);
    }

    [Fact]
    public void Iasl_ComplainsAboutABrokenTable_SoSilenceMeansSomething()
    {
        byte[] table = Madt.Build(MachineWith(4));
        table[9] ^= 1;
        Disassembly badChecksum = Disassemble(table);
        Assert.Contains("Incorrect checksum", badChecksum.Dsl, StringComparison.Ordinal);

        table = Madt.Build(MachineWith(4));
        table[44 + 1] = 9; // first Processor Local APIC claims 9 bytes
        Disassembly badLength = Disassemble(FixChecksum(table));
        Assert.Contains("****", badLength.Dsl, StringComparison.Ordinal);
        Assert.False(Madt.Decode(table).IsValid);
    }
}
