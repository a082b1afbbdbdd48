using System.Text.Json;
using Vapic.Machine;
using Vapic.Machine.Acpi;
using Xunit;

namespace Vapic.Cli.Tests;

/// <summary>
/// <c>vapic madt</c> and <c>vapic madt show</c> as a user runs them: the file written, the
/// rendering, JSON, and exit status 2 with one line on stderr for anything wrong.
/// </summary>
public sealed class MadtCliTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vapic-madt-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    private static void AssertOneLineError((int ExitCode, string Stdout, string Stderr) run, string expected)
    {
        Assert.Equal(2, run.ExitCode);
        string line = Assert.Single(run.Stderr.TrimEnd('\n').Split('\n'));
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Stderr + run.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_WritesTheFourVcpuTable()
    {
        string path = PathOf("four.dat");

        var (code, stdout, stderr) = CliTests.Run("madt", "--vcpus", "4", "--out", path);

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("114 bytes", stdout, StringComparison.Ordinal);
        byte[] table = File.ReadAllBytes(path);
        Assert.Equal("APIC"u8.ToArray(), table[0..4]);
        Assert.Equal(114, table.Length); // 44 + 4 x 8 + 12 + 2 x 10 + 6
        Assert.Equal(0, Madt.Sum(table));
        Assert.Equal(Madt.Build(new MachineOptions { VcpuCount = 4 }), table);
    }

    [Fact]
    public void Build_IdsAndForceX2Apic_ReachTheTable()
    {
        string sparse = PathOf("sparse.dat");
        string locked = PathOf("locked.dat");

        Assert.Equal(0, CliTests.Run("madt", "--ids", "0,1,2,0x0a,0x100", "--out", sparse).ExitCode);
        Assert.Equal(0, CliTests.Run("madt", "--vcpus", "3", "--force-x2apic", "--out", locked).ExitCode);

        MadtDecodeResult sparseResult = Madt.Decode(File.ReadAllBytes(sparse));
        Assert.Equal(4, sparseResult.Count(MadtEntryType.LocalApic));
        Assert.Equal(new MadtLocalApicEntry(3, 0x0A, MadtProcessorFlags.Enabled), sparseResult.Entries[3].Entry);
        Assert.Equal(new MadtLocalX2ApicEntry(0x100, MadtProcessorFlags.Enabled, 4), sparseResult.Entries[4].Entry);
        MadtDecodeResult lockedResult = Madt.Decode(File.ReadAllBytes(locked));
        Assert.Equal(0, lockedResult.Count(MadtEntryType.LocalApic));
        Assert.Equal(3, lockedResult.Count(MadtEntryType.LocalX2Apic));
        Assert.Equal(1, lockedResult.Count(MadtEntryType.LocalX2ApicNmi));
    }

    [Fact]
    public void Show_ValidTable_ListsEveryStructure()
    {
        string path = PathOf("mixed.dat");
        File.WriteAllBytes(path, Madt.Build(new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x100] }));

        var (code, stdout, stderr) = CliTests.Run("madt", "show", path);

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("revision 6", stdout, StringComparison.Ordinal);
        Assert.Contains("Local APIC address 0xfee00000, flags 0x1 (PCAT_COMPAT)", stdout, StringComparison.Ordinal);
        Assert.Contains("UID 0, APIC ID 0x00, enabled", stdout, StringComparison.Ordinal);
        Assert.Contains("UID 1, x2APIC ID 0x100, enabled", stdout, StringComparison.Ordinal);
        Assert.Contains("ISA IRQ 9 -> GSI 9, level, active high", stdout, StringComparison.Ordinal);
        Assert.Contains("Local x2APIC NMI", stdout, StringComparison.Ordinal);
        Assert.Contains("Valid: 7 structures", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Show_Json_IsParseableAndComplete()
    {
        string path = PathOf("three.dat");
        File.WriteAllBytes(path, Madt.Build(new MachineOptions { VcpuCount = 3 }));

        var (code, stdout, _) = CliTests.Run("madt", "show", path, "--json");

        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(stdout);
        Assert.True(json.RootElement.GetProperty("valid").GetBoolean());
        JsonElement entries = json.RootElement.GetProperty("entries");
        Assert.Equal(3 + 4, entries.GetArrayLength());
        Assert.Equal(2, entries[2].GetProperty("apicId").GetInt32());
        Assert.Equal(0xFEC0_0000u, entries[3].GetProperty("address").GetUInt32());
    }

    [Fact]
    public void Show_BadChecksum_IsStatusTwoWithOneLine()
    {
        string path = PathOf("bad.dat");
        byte[] table = Madt.Build(new MachineOptions { VcpuCount = 4 });
        table[50] ^= 0x10;
        File.WriteAllBytes(path, table);

        var run = CliTests.Run("madt", "show", path);

        AssertOneLineError(run, "invalid MADT");
        Assert.Contains("checksum", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("BadChecksum", run.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Show_NotAnMadt_IsStatusTwo()
    {
        string path = PathOf("text.dat");
        File.WriteAllText(path, "this is not an ACPI table\n");

        AssertOneLineError(CliTests.Run("madt", "show", path), "invalid MADT");
        AssertOneLineError(CliTests.Run("madt", "show", path, "--json"), "invalid MADT");
    }

    [Fact]
    public void Show_UnreadableFile_IsStatusTwo()
    {
        AssertOneLineError(CliTests.Run("madt", "show", PathOf("missing.dat")), "cannot read");
        AssertOneLineError(CliTests.Run("madt", "show", _directory), "is a directory");
    }

    [Fact]
    public void Build_BadOptions_AreStatusTwo()
    {
        AssertOneLineError(CliTests.Run("madt", "--vcpus", "4"), "--out FILE is required");
        AssertOneLineError(CliTests.Run("madt", "--vcpus", "0", "--out", PathOf("x.dat")), "--vcpus");
        AssertOneLineError(CliTests.Run("madt", "--vcpus", "4097", "--out", PathOf("x.dat")), "--vcpus");
        AssertOneLineError(CliTests.Run("madt", "--ids", "1,zz", "--out", PathOf("x.dat")), "'zz'");
        AssertOneLineError(CliTests.Run("madt", "--ids", "1,1", "--out", PathOf("x.dat")), "more than one vCPU");
        AssertOneLineError(CliTests.Run("madt", "--vcpus", "3", "--ids", "1,2", "--out", PathOf("x.dat")), "2 APIC IDs given for 3 vCPUs");
        AssertOneLineError(CliTests.Run("madt", "--ids", "0xffffffff", "--out", PathOf("x.dat")), "broadcast");
        AssertOneLineError(CliTests.Run("madt", "--out", Path.Combine(_directory, "no", "such", "dir.dat")), "cannot write");
        Assert.False(File.Exists(PathOf("x.dat")));
    }
}
