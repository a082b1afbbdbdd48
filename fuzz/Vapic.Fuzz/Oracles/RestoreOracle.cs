using Vapic.Machine.Interop;
using System.Collections.Immutable;
using Vapic.Apic.SavedState;
using Vapic.Machine;
using Vapic.Machine.SavedState;
using Vapic.Virtualization;

namespace Vapic.Fuzz.Oracles;

/// <summary>
/// Restores a decoded machine state into a machine built from the state's own configuration, under
/// every virtualization mode, and checks the all-or-nothing rule of <see cref="VirtualMachine.Restore"/>:
/// success, after which the machine saves the same state back and keeps running; or a typed error
/// and a machine exactly as it was.
/// </summary>
public static class RestoreOracle
{
    /// <summary>States for bigger machines are decoded but not restored, to keep each input fast.</summary>
    public const int MaxVcpus = 16;

    /// <summary>How long a restored machine runs, in virtual nanoseconds, to show that what was accepted works.</summary>
    public const long RunAfterRestoreNs = 20_000;

    /// <summary>
    /// The options of the machine <paramref name="configuration"/> describes, or null when no
    /// machine can have it (<see cref="MachineOptions.Validate"/> refuses it) or it has more than
    /// <paramref name="maxVcpus"/> vCPUs.
    /// </summary>
    public static MachineOptions? OptionsOf(MachineConfigurationState configuration, int maxVcpus = MaxVcpus)
    {
        if (configuration is null || configuration.ApicIds.IsDefault || configuration.VcpuCount == 0 || configuration.VcpuCount > maxVcpus)
        {
            return null;
        }

        var options = new MachineOptions
        {
            VcpuCount = configuration.VcpuCount,
            ApicIds = configuration.ApicIds,
            ForceX2Apic = configuration.ForceX2Apic,
            IoApicVersion = configuration.IoApicVersion,
            ExtendedDestinationId = configuration.ExtendedDestinationId,
            MaxPhysicalAddressBits = configuration.MaxPhysicalAddressBits,
            CpuVendor = configuration.CpuVendor,
            TscFrequencyHz = configuration.TscFrequencyHz,
            ApicTimerFrequencyHz = configuration.ApicTimerFrequencyHz,
        };
        return options.Validate() is null ? options : null;
    }

    /// <summary>
    /// Restores <paramref name="state"/> under one mode of <see cref="ModeRegistry.Known"/>, picked
    /// by a hash of the input so that the corpus as a whole covers every mode while each input
    /// costs one machine.
    /// </summary>
    /// <exception cref="FuzzInvariantException">A restore broke the all-or-nothing rule or did not round-trip.</exception>
    public static void CheckOneMode(MachineState state, ReadOnlySpan<byte> input)
    {
        ArgumentNullException.ThrowIfNull(state);
        MachineOptions? options = OptionsOf(state.Configuration);
        if (options is null)
        {
            return;
        }

        Check(state, options, ModeRegistry.Known[(int)(Fnv1a(input) % (uint)ModeRegistry.Known.Count)]);
    }

    /// <summary>FNV-1a over <paramref name="input"/>: a stable, cheap spread of inputs over modes.</summary>
    public static uint Fnv1a(ReadOnlySpan<byte> input)
    {
        uint hash = 2_166_136_261;
        foreach (byte b in input)
        {
            hash = (hash ^ b) * 16_777_619;
        }

        return hash;
    }

    /// <summary>Restores <paramref name="state"/> into a warmed-up machine of <paramref name="options"/> under <paramref name="mode"/>.</summary>
    /// <exception cref="FuzzInvariantException">A restore broke the all-or-nothing rule or did not round-trip.</exception>
    public static void Check(MachineState state, MachineOptions options, string mode)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(options);
        var machine = new VirtualMachine(options, ModeRegistry.Create(mode));
        GuestRegisters.Warm(machine);

        // Let the mode move what it holds into the LAPICs first (a save does that, invisibly to the
        // guest), so that the snapshots below see only what the restore itself does.
        machine.TrySave(out _);
        MachineSnapshot before = MachineSnapshot.Of(machine);
        SavedStateResult validated = machine.ValidateState(state);
        if (MachineSnapshot.Of(machine).DifferenceFrom(before) is string validateChange)
        {
            throw new FuzzInvariantException($"ValidateState changed the machine under {mode}: {validateChange}");
        }

        SavedStateResult result = machine.Restore(state);
        if (result.IsSuccess != validated.IsSuccess)
        {
            throw new FuzzInvariantException($"ValidateState and Restore disagree under {mode}: {validated} vs {result}");
        }

        if (!result.IsSuccess)
        {
            if (result.Error == SavedStateError.None || string.IsNullOrEmpty(result.Message))
            {
                throw new FuzzInvariantException($"untyped restore error under {mode}: {result}");
            }

            if (MachineSnapshot.Of(machine).DifferenceFrom(before) is string change)
            {
                throw new FuzzInvariantException($"half-applied restore under {mode}: refused with {result}, yet {change}");
            }

            return;
        }

        // A restored machine saves the state it was given (bit-exact save/restore), then keeps working.
        // The format version is the writer's; an older file restores and saves back in this version.
        if (machine.TrySave(out MachineState? saved).IsSuccess && !Equals(saved! with { FormatVersion = state.FormatVersion }, state))
        {
            throw new FuzzInvariantException($"restore does not round-trip under {mode}: {Describe(state, saved!)}");
        }

        ApicInvariants.Check(machine, $"restore under {mode}");
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            vcpu.Accept();
        }

        machine.AdvanceTo(machine.Now > long.MaxValue - RunAfterRestoreNs ? long.MaxValue : machine.Now + RunAfterRestoreNs);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            vcpu.Accept();
        }

        ApicInvariants.Check(machine, $"running after a restore under {mode}");
    }

    private static string Describe(MachineState expected, MachineState actual)
    {
        if (expected.VirtualTime != actual.VirtualTime)
        {
            return $"virtual time {expected.VirtualTime} saved back as {actual.VirtualTime}";
        }

        for (int i = 0; i < expected.Vcpus.Length && i < actual.Vcpus.Length; i++)
        {
            if (!Equals(expected.Vcpus[i], actual.Vcpus[i]))
            {
                return $"vCPU {i}: restored {expected.Vcpus[i]}, saved back {actual.Vcpus[i]}";
            }
        }

        return Equals(expected.IoApic, actual.IoApic)
            ? $"configuration or version: restored {expected.Configuration} v{expected.FormatVersion:x}, saved back {actual.Configuration} v{actual.FormatVersion:x}"
            : $"IOAPIC: restored {expected.IoApic}, saved back {actual.IoApic}";
    }

    /// <summary>Whether a machine with these APICs exists and would accept them in a restore.</summary>
    public static bool IsRestorable(ImmutableArray<LocalApicState> apics)
    {
        MachineState state;
        try
        {
            state = LapicStateFile.ToMachineState(apics);
        }
        catch (ArgumentException)
        {
            return false;
        }

        MachineOptions? options = RestoreOracle.OptionsOf(state.Configuration, MachineOptions.MaxVcpus);
        return options is not null && new VirtualMachine(options).ValidateState(state).IsSuccess;
    }
}
