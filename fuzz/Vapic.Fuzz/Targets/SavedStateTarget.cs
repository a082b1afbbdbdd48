using Vapic.Fuzz.Oracles;
using Vapic.Machine;
using Vapic.Machine.SavedState;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>saved-state</c>: arbitrary bytes through <see cref="SavedStateSerializer.Deserialize"/>. A
/// refusal must be typed, with an offset inside the input; a decoded state must re-encode to a file
/// that decodes to the same state, and restore (<see cref="RestoreOracle"/>) into a machine built
/// from its configuration all-or-nothing, under a mode picked by a hash of the input.
/// </summary>
public sealed class SavedStateTarget : FuzzTarget
{
    /// <inheritdoc/>
    public override string Name => "saved-state";

    /// <inheritdoc/>
    public override string Description => "SavedStateSerializer.Deserialize; re-encode round trip; VirtualMachine.Restore all-or-nothing (mode by input hash)";

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        SavedStateReadResult read = SavedStateSerializer.Deserialize(input);
        if (!read.IsSuccess)
        {
            if (read.State is not null || read.Offset < 0 || read.Offset > input.Length || string.IsNullOrEmpty(read.Message))
            {
                throw new FuzzInvariantException($"malformed refusal: {read} (state {(read.State is null ? "null" : "set")}, {input.Length} bytes)");
            }

            return;
        }

        MachineState state = read.State ?? throw new FuzzInvariantException("Deserialize succeeded without a state");
        CheckReencodes(state);
        RestoreOracle.CheckOneMode(state, input);
    }

    /// <summary>A decoded state is representable: it encodes, and the encoding decodes to the same state.</summary>
    internal static void CheckReencodes(MachineState state)
    {
        byte[] encoded = SavedStateSerializer.Serialize(state);
        SavedStateReadResult again = SavedStateSerializer.Deserialize(encoded);
        if (!again.IsSuccess)
        {
            throw new FuzzInvariantException($"a decoded state re-encodes to a file that does not decode: {again}");
        }

        if (!Equals(again.State! with { FormatVersion = state.FormatVersion }, state))
        {
            throw new FuzzInvariantException("a decoded state re-encodes to a different state");
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot) =>
    [
        new("power-on-1.vss", SavedStateSerializer.Serialize(SeedMachines.PowerOn(1).Save())),
        new("running-4.vss", SavedStateSerializer.Serialize(SeedMachines.Running(new MachineOptions { VcpuCount = 4 }).Save())),
        new("running-x2apic-sparse.vss", SavedStateSerializer.Serialize(SeedMachines.Running(SeedMachines.SparseX2Apic).Save())),
        new("running-locked-amd-ioapic11.vss", SavedStateSerializer.Serialize(SeedMachines.Running(SeedMachines.LockedAmd).Save())),
    ];
}
