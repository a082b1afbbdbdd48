using System.Collections.Immutable;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.SavedState;

/// <summary>
/// The saved state of a whole machine: the configuration it was built with, the virtual clock,
/// every vCPU with its local APIC, and the IOAPIC. Produced by <see cref="VirtualMachine.Save"/>,
/// consumed by <see cref="VirtualMachine.Restore"/>, written and read by
/// <see cref="SavedStateSerializer"/>. A plain value: it holds no reference to a live machine.
/// </summary>
public sealed record MachineState
{
    /// <summary>
    /// The format version this state follows (major in bits 15:8, minor in bits 7:0): the current
    /// one for a state from <see cref="VirtualMachine.Save"/>, the file's for one read by
    /// <see cref="SavedStateSerializer.Deserialize"/>.
    /// </summary>
    public ushort FormatVersion { get; init; } = SavedStateSerializer.FormatVersion;

    /// <summary>The options the machine was built with; a restore requires the same.</summary>
    public required MachineConfigurationState Configuration { get; init; }

    /// <summary>The virtual time in nanoseconds at the save instant; a restore sets the clock to it.</summary>
    public long VirtualTime { get; init; }

    /// <summary>One state per vCPU, in vCPU order.</summary>
    public ImmutableArray<VcpuState> Vcpus { get; init; }

    /// <summary>The IOAPIC.</summary>
    public required IoApicState IoApic { get; init; }

    /// <inheritdoc/>
    public bool Equals(MachineState? other) =>
        other is not null &&
        FormatVersion == other.FormatVersion &&
        Equals(Configuration, other.Configuration) &&
        VirtualTime == other.VirtualTime &&
        SavedStateEquality.SequenceEqual(Vcpus, other.Vcpus) &&
        Equals(IoApic, other.IoApic);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(FormatVersion, Configuration, VirtualTime, Vcpus.IsDefault ? 0 : Vcpus.Length, IoApic);
}
