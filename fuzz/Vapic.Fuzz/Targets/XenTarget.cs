using Vapic.Machine;
using Vapic.Machine.Interop;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>xen</c>: arbitrary bytes as Xen HVM save records (<see cref="LapicStateFile.Read"/> with
/// <see cref="LapicStateFormat.Xen"/>), and the first record's body and the page after it straight
/// through <see cref="XenLapicRecord.Read"/> and <see cref="XenLapicRecord.Import"/>.
/// </summary>
public sealed class XenTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "xen";

    /// <inheritdoc/>
    public override string Description => "LapicStateFile.Read(Xen), XenLapicRecord.Read/Import: typed refusals, show/convert/restore what reads";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        InteropOracle.Check(LapicStateFormat.Xen, LapicStateFile.Read(LapicStateFormat.Xen, input), input);

        // The first descriptor's body as a hvm_hw_lapic record (Read zero-extends short ones), and
        // the bytes after it as the register page (Import checks the size itself).
        if (input.Length < XenLapicRecord.DescriptorSize)
        {
            return;
        }

        ReadOnlySpan<byte> body = input[XenLapicRecord.DescriptorSize..];
        XenLapicRecord record = XenLapicRecord.Read(body[..Math.Min(body.Length, XenLapicRecord.Size)]);
        ReadOnlySpan<byte> rest = body[Math.Min(body.Length, XenLapicRecord.Size + XenLapicRecord.DescriptorSize)..];
        InteropOracle.Check(record.Import(rest[..Math.Min(rest.Length, LapicPage.Size)]), "Xen import", input);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot) =>
    [
        new("power-on-1.xen", Write(SeedMachines.PowerOn(1))),
        new("running-4.xen", Write(SeedMachines.Running(new MachineOptions { VcpuCount = 4 }))),
        new("running-x2apic-sparse.xen", Write(SeedMachines.Running(SeedMachines.SparseX2Apic))),
        new("running-locked.xen", Write(SeedMachines.Running(SeedMachines.LockedAmd))),
    ];

    private static byte[] Write(VirtualMachine machine) => LapicStateFile.Write(LapicStateFormat.Xen, SeedMachines.Apics(machine));
}
