using Vapic.Machine.Acpi;

namespace Vapic.Machine.Tests.Acpi;

/// <summary>
/// The processors a machine's MADT must describe, worked out from lapic-reference.md §13 without
/// the builder: one structure per vCPU in vCPU order, UID = index, type 0 for APIC IDs 0x00–0xFE,
/// type 9 for IDs from 0xFF and for every vCPU of a locked-x2APIC machine.
/// </summary>
internal static class MadtTestData
{
    public static MachineOptions MachineWith(int vcpus, bool locked = false, uint[]? ids = null) =>
        new() { VcpuCount = vcpus, ForceX2Apic = locked, ApicIds = ids };

    /// <summary>The expected processor structures of a machine whose vCPU indexes all fit an 8-bit UID where needed.</summary>
    public static List<MadtEntry> ExpectedProcessors(MachineOptions options)
    {
        var expected = new List<MadtEntry>();
        for (int i = 0; i < options.VcpuCount; i++)
        {
            uint id = options.ApicIdOf(i);
            expected.Add(!options.ForceX2Apic && id <= 0xFE
                ? new MadtLocalApicEntry((byte)i, (byte)id, MadtProcessorFlags.Enabled)
                : new MadtLocalX2ApicEntry(id, MadtProcessorFlags.Enabled, (uint)i));
        }

        return expected;
    }

    /// <summary>The six non-processor structures, straight from the builder's contract.</summary>
    public static List<MadtEntry> ExpectedDevices(bool anyX2Apic)
    {
        var expected = new List<MadtEntry>
        {
            new MadtIoApicEntry(0, 0xFEC0_0000, 0),
            new MadtInterruptSourceOverrideEntry(0, 0, 2, new MpsIntiFlags(0x0000)),
            new MadtInterruptSourceOverrideEntry(0, 9, 9, new MpsIntiFlags(0x000D)),
            new MadtLocalApicNmiEntry(0xFF, new MpsIntiFlags(0x0005), 1),
        };
        if (anyX2Apic)
        {
            expected.Add(new MadtLocalX2ApicNmiEntry(new MpsIntiFlags(0x0005), 0xFFFF_FFFF, 1));
        }

        return expected;
    }

    public static List<MadtEntry> EntriesOf(MadtDecodeResult result)
    {
        var entries = new List<MadtEntry>(result.Entries.Count);
        foreach (MadtDecodedEntry decoded in result.Entries)
        {
            entries.Add(decoded.Entry);
        }

        return entries;
    }

    /// <summary>Recomputes the checksum byte of <paramref name="table"/> in place, so a test can break one thing at a time.</summary>
    public static byte[] FixChecksum(byte[] table)
    {
        table[9] = 0;
        int sum = 0;
        foreach (byte b in table)
        {
            sum += b;
        }

        table[9] = (byte)(0x100 - (sum & 0xFF));
        return table;
    }

    public static byte[] Bytes(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));
}
