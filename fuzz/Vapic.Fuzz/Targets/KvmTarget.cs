using System.Buffers.Binary;
using Vapic.Machine;
using Vapic.Machine.Interop;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>kvm</c>: arbitrary bytes as a KVM LAPIC container (<see cref="LapicStateFile.Read"/> with
/// <see cref="LapicStateFormat.Kvm"/>), and the first vCPU's entry and page straight through
/// <see cref="KvmLapicState.Import"/> with and without KVM_X2APIC_API_USE_32BIT_IDS.
/// </summary>
public sealed class KvmTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "kvm";

    /// <inheritdoc/>
    public override string Description => "LapicStateFile.Read(Kvm) and KvmLapicState.Import of the first page: typed refusals, show/convert/restore what reads";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        InteropOracle.Check(LapicStateFormat.Kvm, LapicStateFile.Read(LapicStateFormat.Kvm, input), input);

        // The entry of vCPU 0 (x2APIC ID, reserved, IA32_APIC_BASE, IA32_TSC_DEADLINE, TSC) and
        // whatever follows it as the page, however long: Import checks the page size itself.
        const int Entry = LapicStateFile.KvmHeaderSize;
        if (input.Length < Entry + LapicStateFile.KvmVcpuEntrySize)
        {
            return;
        }

        ReadOnlySpan<byte> entry = input.Slice(Entry, LapicStateFile.KvmVcpuEntrySize);
        ReadOnlySpan<byte> page = input[(Entry + LapicStateFile.KvmVcpuEntrySize)..];
        page = page[..Math.Min(page.Length, LapicPage.Size + 1)];
        uint id = BinaryPrimitives.ReadUInt32LittleEndian(entry);
        ulong apicBase = BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
        ulong deadline = BinaryPrimitives.ReadUInt64LittleEndian(entry[16..]);
        ulong tsc = BinaryPrimitives.ReadUInt64LittleEndian(entry[24..]);
        foreach (bool ids32 in (ReadOnlySpan<bool>)[true, false])
        {
            InteropOracle.Check(KvmLapicState.Import(page, apicBase, id, ids32, deadline, tsc), $"KVM import (32-bit IDs {ids32})", input);
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot) =>
    [
        new("power-on-1.kvm", Write(SeedMachines.PowerOn(1), ids32: true)),
        new("running-4.kvm", Write(SeedMachines.Running(new MachineOptions { VcpuCount = 4 }), ids32: true)),
        new("running-x2apic-sparse-16bit-ids.kvm", Write(SeedMachines.Running(SeedMachines.SparseX2Apic), ids32: false)),
        new("running-locked.kvm", Write(SeedMachines.Running(SeedMachines.LockedAmd), ids32: true)),
    ];

    private static byte[] Write(VirtualMachine machine, bool ids32) =>
        LapicStateFile.Write(LapicStateFormat.Kvm, SeedMachines.Apics(machine), ids32);
}
