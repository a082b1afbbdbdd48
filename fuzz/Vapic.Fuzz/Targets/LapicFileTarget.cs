using Vapic.Machine;
using Vapic.Machine.Interop;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>lapic-file</c>: arbitrary bytes as <c>vapic state show FILE</c> reads them: the format
/// <see cref="LapicStateFile.Detect"/> guesses, then each of the three formats forced (<c>--from</c>).
/// </summary>
public sealed class LapicFileTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "lapic-file";

    /// <inheritdoc/>
    public override string Description => "LapicStateFile.Detect + Read in the detected and every forced format: typed refusals, show/convert/restore what reads";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        LapicStateFormat detected = LapicStateFile.Detect(input);
        InteropOracle.Check(detected, LapicStateFile.Read(detected, input), input);
        foreach (LapicStateFormat forced in (ReadOnlySpan<LapicStateFormat>)[LapicStateFormat.Vapic, LapicStateFormat.Kvm, LapicStateFormat.Xen])
        {
            if (forced != detected)
            {
                InteropOracle.Check(forced, LapicStateFile.Read(forced, input), input);
            }
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot)
    {
        VirtualMachine machine = SeedMachines.Running(new MachineOptions { VcpuCount = 2 });
        return
        [
            new("running-2.vss", LapicStateFile.Write(LapicStateFormat.Vapic, SeedMachines.Apics(machine))),
            new("running-2.kvm", LapicStateFile.Write(LapicStateFormat.Kvm, SeedMachines.Apics(machine))),
            new("running-2.xen", LapicStateFile.Write(LapicStateFormat.Xen, SeedMachines.Apics(machine))),
        ];
    }
}
