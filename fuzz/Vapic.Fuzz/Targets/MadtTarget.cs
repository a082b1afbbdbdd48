using Vapic.Machine;
using Vapic.Machine.Acpi;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>madt</c>: arbitrary bytes as an ACPI MADT through <see cref="Madt.Decode"/> (the decoder and
/// validator of <c>vapic madt show</c>): it reports problems as <see cref="MadtError"/>s with
/// offsets inside the table, what it decoded renders as text and JSON, and it encodes back
/// (<see cref="Madt.Encode"/>) into a table that decodes to the same structures, and to a valid
/// table when the input was valid.
/// </summary>
public sealed class MadtTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "madt";

    /// <inheritdoc/>
    public override string Description => "Madt.Decode: typed errors inside the table, Describe/JSON, Encode→Decode round trip of the structures";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        MadtDecodeResult decoded = Madt.Decode(input);
        foreach (MadtError error in decoded.Errors)
        {
            if (error.Offset < 0 || error.Offset > Math.Max(input.Length, Madt.EntriesOffset) || string.IsNullOrEmpty(error.Message))
            {
                throw new FuzzInvariantException($"error outside the {input.Length}-byte table: {error} ({error.Kind})");
            }
        }

        var entries = new List<MadtEntry>(decoded.Entries.Count);
        foreach (MadtDecodedEntry entry in decoded.Entries)
        {
            _ = entry.Entry.Describe();
            _ = Madt.TypeName((byte)entry.Entry.Type);
            entries.Add(entry.Entry);
        }

        _ = MadtJson.Serialize(decoded);
        byte[] encoded = Madt.Encode(entries);
        MadtDecodeResult again = Madt.Decode(encoded);
        if (again.Entries.Count != entries.Count)
        {
            throw new FuzzInvariantException($"{entries.Count} decoded structures encode into {again.Entries.Count}");
        }

        for (int i = 0; i < entries.Count; i++)
        {
            if (!Equals(again.Entries[i].Entry, entries[i]))
            {
                throw new FuzzInvariantException($"structure {i} does not survive encoding: {entries[i]} became {again.Entries[i].Entry}");
            }
        }

        if (decoded.IsValid && !again.IsValid)
        {
            throw new FuzzInvariantException($"a valid table encodes into an invalid one: {again.Errors[0]}");
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot) =>
    [
        new("vcpus-1.madt", Madt.Build(new MachineOptions { VcpuCount = 1 })),
        new("vcpus-4.madt", Madt.Build(new MachineOptions { VcpuCount = 4 })),
        new("vcpus-300.madt", Madt.Build(new MachineOptions { VcpuCount = 300 })),
        new("vcpus-4-locked.madt", Madt.Build(new MachineOptions { VcpuCount = 4, ForceX2Apic = true })),
        new("sparse-x2apic-no-pcat.madt", Madt.Build(SeedMachines.SparseX2Apic, new MadtOptions { PcAtCompatible = false, OemId = "FUZZ  " })),
    ];
}
