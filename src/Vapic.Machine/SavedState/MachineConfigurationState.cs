using System.Collections.Immutable;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.SavedState;

/// <summary>
/// The <see cref="MachineOptions"/> a saved machine was built with. A restore only goes into a
/// machine built with the same options: these are fixed at creation and not state.
/// <see cref="MachineOptions.TscOffset"/> is not among them: it only sets the TSC at power-on, and
/// each LAPIC state carries its vCPU's TSC.
/// </summary>
public sealed record MachineConfigurationState
{
    /// <summary>The initial APIC ID of each vCPU, in vCPU order; the length is the vCPU count.</summary>
    public ImmutableArray<uint> ApicIds { get; init; }

    /// <summary>The number of vCPUs (0 when <see cref="ApicIds"/> is uninitialized).</summary>
    public int VcpuCount => ApicIds.IsDefault ? 0 : ApicIds.Length;

    /// <summary><see cref="MachineOptions.ForceX2Apic"/>: locked x2APIC.</summary>
    public bool ForceX2Apic { get; init; }

    /// <summary><see cref="MachineOptions.IoApicVersion"/>: 0x11 or 0x20.</summary>
    public byte IoApicVersion { get; init; }

    /// <summary><see cref="MachineOptions.ExtendedDestinationId"/>.</summary>
    public bool ExtendedDestinationId { get; init; }

    /// <summary><see cref="MachineOptions.MaxPhysicalAddressBits"/>.</summary>
    public int MaxPhysicalAddressBits { get; init; }

    /// <summary><see cref="MachineOptions.CpuVendor"/>: which vendor-specific MSRs exist.</summary>
    public CpuVendor CpuVendor { get; init; }

    /// <summary><see cref="MachineOptions.TscFrequencyHz"/>: the rate of every guest TSC.</summary>
    public long TscFrequencyHz { get; init; } = MachineOptions.DefaultFrequencyHz;

    /// <summary><see cref="MachineOptions.ApicTimerFrequencyHz"/>: the APIC timer's bus clock.</summary>
    public long ApicTimerFrequencyHz { get; init; } = MachineOptions.DefaultFrequencyHz;

    /// <summary>The configuration of a machine built from <paramref name="options"/>.</summary>
    public static MachineConfigurationState From(MachineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var ids = ImmutableArray.CreateBuilder<uint>(options.VcpuCount);
        for (int i = 0; i < options.VcpuCount; i++)
        {
            ids.Add(options.ApicIdOf(i));
        }

        return new MachineConfigurationState
        {
            ApicIds = ids.MoveToImmutable(),
            ForceX2Apic = options.ForceX2Apic,
            IoApicVersion = options.IoApicVersion,
            ExtendedDestinationId = options.ExtendedDestinationId,
            MaxPhysicalAddressBits = options.MaxPhysicalAddressBits,
            CpuVendor = options.CpuVendor,
            TscFrequencyHz = options.TscFrequencyHz,
            ApicTimerFrequencyHz = options.ApicTimerFrequencyHz,
        };
    }

    /// <inheritdoc/>
    public bool Equals(MachineConfigurationState? other) =>
        other is not null &&
        SavedStateEquality.SequenceEqual(ApicIds, other.ApicIds) &&
        ForceX2Apic == other.ForceX2Apic &&
        IoApicVersion == other.IoApicVersion &&
        ExtendedDestinationId == other.ExtendedDestinationId &&
        MaxPhysicalAddressBits == other.MaxPhysicalAddressBits &&
        CpuVendor == other.CpuVendor &&
        TscFrequencyHz == other.TscFrequencyHz &&
        ApicTimerFrequencyHz == other.ApicTimerFrequencyHz;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(VcpuCount, ForceX2Apic, IoApicVersion, ExtendedDestinationId, MaxPhysicalAddressBits, CpuVendor);
}
