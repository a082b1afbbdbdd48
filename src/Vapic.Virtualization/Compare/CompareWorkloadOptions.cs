namespace Vapic.Virtualization.Compare;

/// <summary>
/// The parameters of one workload run: which workload, how many vCPUs, the guest's APIC mode,
/// whether idle vCPUs halt, how long it runs (a virtual duration, or a number of rounds of
/// <see cref="RoundPeriodNs"/> each) and the machine's periodic device sources.
/// </summary>
public sealed record CompareWorkloadOptions
{
    /// <summary>The default number of vCPUs.</summary>
    public const int DefaultVcpus = 8;

    /// <summary>The fewest vCPUs a workload runs on (every workload sends to other vCPUs).</summary>
    public const int MinVcpus = 2;

    /// <summary>The most vCPUs a workload runs on: APIC IDs 0..254, addressable by an xAPIC guest too.</summary>
    public const int MaxVcpus = 255;

    /// <summary>Virtual time between rounds; also the period of the LAPIC timers (100 kHz).</summary>
    public const long RoundPeriodNs = 10_000;

    /// <summary>The default virtual duration: 1 ms, 100 rounds.</summary>
    public const long DefaultDurationNs = 1_000_000;

    /// <summary>The longest virtual duration accepted: 1 s, 100,000 rounds.</summary>
    public const long MaxDurationNs = 1_000_000_000;

    /// <summary>The most rounds accepted (<see cref="MaxDurationNs"/> / <see cref="RoundPeriodNs"/>).</summary>
    public const int MaxRounds = (int)(MaxDurationNs / RoundPeriodNs);

    /// <summary>The most device firings (<see cref="Devices"/>, all together) one run may have.</summary>
    public const long MaxDeviceFirings = 1_000_000;

    /// <summary>The workload.</summary>
    public CompareWorkloadKind Workload { get; init; }

    /// <summary>The number of vCPUs, <see cref="MinVcpus"/> to <see cref="MaxVcpus"/>.</summary>
    public int VcpuCount { get; init; } = DefaultVcpus;

    /// <summary>
    /// The machine to run on (APIC IDs, locked x2APIC, IOAPIC version, vendor, TSC offset...), or
    /// null for <see cref="VcpuCount"/> vCPUs with APIC IDs 0..n-1 and default settings. Its vCPU
    /// count must equal <see cref="VcpuCount"/>.
    /// </summary>
    public Vapic.Machine.MachineOptions? Machine { get; init; }

    /// <summary>True (the default) for an x2APIC guest (MSR interface); false for an xAPIC guest (MMIO).</summary>
    public bool UseX2Apic { get; init; } = true;

    /// <summary>Idle vCPUs halt (HLT) between steps, so that every interrupt takes the wake-up path.</summary>
    public bool HaltIdle { get; init; }

    /// <summary>
    /// The virtual duration of the measured phase in nanoseconds, <see cref="RoundPeriodNs"/> to
    /// <see cref="MaxDurationNs"/>; ignored when <see cref="Rounds"/> is set.
    /// </summary>
    public long DurationNs { get; init; } = DefaultDurationNs;

    /// <summary>A fixed number of rounds (1 to <see cref="MaxRounds"/>) instead of <see cref="DurationNs"/>.</summary>
    public int? Rounds { get; init; }

    /// <summary>The number of rounds the run has: one per <see cref="RoundPeriodNs"/> of the duration.</summary>
    public int RoundCount => Rounds ?? (int)(DurationNs / RoundPeriodNs);

    /// <summary>The virtual time the measured phase lasts.</summary>
    public long EffectiveDurationNs => Rounds is int rounds ? rounds * RoundPeriodNs : DurationNs;

    /// <summary>
    /// Periodic interrupt sources that fire during the measured phase besides the built-in
    /// schedule (see <see cref="CompareWorkload"/>); empty by default.
    /// </summary>
    public IReadOnlyList<DeviceSource> Devices { get; init; } = [];

    /// <summary>The workload's name.</summary>
    public string WorkloadName => CompareWorkloads.NameOf(Workload);

    /// <summary>Checks the options; returns null when valid, otherwise what is wrong.</summary>
    public string? Validate()
    {
        if (!Enum.IsDefined(Workload))
        {
            return $"unknown workload {(int)Workload}";
        }

        if (VcpuCount is < MinVcpus or > MaxVcpus)
        {
            return $"vcpus must be between {MinVcpus} and {MaxVcpus}, not {VcpuCount}";
        }

        if (Machine is not null)
        {
            if (Machine.VcpuCount != VcpuCount)
            {
                return $"the machine has {Machine.VcpuCount} vCPUs but the workload is set for {VcpuCount}";
            }

            if (Machine.Validate() is string machineError)
            {
                return machineError;
            }

            for (int i = 0; i < Machine.VcpuCount; i++)
            {
                if (Machine.ApicIdOf(i) > 0x7FFF)
                {
                    // Device interrupts (MSI, IOAPIC) reach at most 15-bit destinations.
                    return $"APIC ID 0x{Machine.ApicIdOf(i):x} of vCPU {i} is beyond what the workload's devices can address (0x7FFF)";
                }
            }

            if (!Machine.ExtendedDestinationId && Workload is CompareWorkloadKind.Device or CompareWorkloadKind.Mixed)
            {
                for (int i = 0; i < Machine.VcpuCount; i++)
                {
                    if (Machine.ApicIdOf(i) > 0xFF)
                    {
                        // The built-in MSIs reach every vCPU; IDs above 0xFF need the extended destination ID.
                        return $"the {WorkloadName} workload sends device interrupts to every vCPU, but APIC ID 0x{Machine.ApicIdOf(i):x} of vCPU {i} needs the extended destination ID, which the machine does not decode";
                    }
                }
            }

            if (!UseX2Apic && (Machine.ForceX2Apic || Machine.NeedsX2Apic))
            {
                return "an xAPIC guest cannot run on a machine whose LAPICs are in x2APIC mode (force-x2apic or APIC IDs above 0xFE)";
            }

            if (Workload is CompareWorkloadKind.Timer or CompareWorkloadKind.Mixed && RoundPeriodNs % Machine.ApicBusCycleNs != 0)
            {
                // The timers are programmed in bus cycles (divide by 1): the round period must be a
                // whole number of them so that every timer expires exactly at each round instant.
                return $"the {WorkloadName} workload needs the round period ({RoundPeriodNs} ns) to be a whole number of APIC bus cycles, not of {Machine.ApicBusCycleNs} ns";
            }
        }

        if (ValidateDevices() is string deviceError)
        {
            return deviceError;
        }

        if (Rounds is int rounds)
        {
            if (rounds is < 1 or > MaxRounds)
            {
                return $"rounds must be between 1 and {MaxRounds}, not {rounds}";
            }
        }
        else if (DurationNs is < RoundPeriodNs or > MaxDurationNs)
        {
            return $"duration must be between {RoundPeriodNs} and {MaxDurationNs} ns (one round every {RoundPeriodNs} ns), not {DurationNs}";
        }

        return null;
    }

    private string? ValidateDevices()
    {
        ArgumentNullException.ThrowIfNull(Devices);
        long firings = 0;
        for (int i = 0; i < Devices.Count; i++)
        {
            DeviceSource device = Devices[i];
            if (device is null)
            {
                return $"device {i} is null";
            }

            if (device.Validate() is string error)
            {
                return error;
            }

            firings += device.FiringsWithin(EffectiveDurationNs);
            if (firings > MaxDeviceFirings)
            {
                // Each firing is a step in which every vCPU drains: an unbounded count (period_ns = 1
                // over a second) would run for hours, not test anything more.
                return $"device '{device.Name}': the devices fire {firings} or more times in {EffectiveDurationNs} ns, more than the {MaxDeviceFirings} a run allows; lengthen period_ns, set count or shorten the run";
            }

            if (device.Target >= VcpuCount)
            {
                return $"device '{device.Name}': target {device.Target} is not a vCPU (vCPUs 0 to {VcpuCount - 1})";
            }

            uint apicId = Machine?.ApicIdOf(device.Target) ?? (uint)device.Target;
            if (apicId > 0xFF && Machine is { ExtendedDestinationId: false })
            {
                return $"device '{device.Name}': the APIC ID 0x{apicId:x} of vCPU {device.Target} needs the extended destination ID, which the machine does not decode";
            }

            if (device.Kind == DeviceSourceKind.IoApic && device.Pin == CompareWorkload.LevelGsi && Workload == CompareWorkloadKind.Mixed)
            {
                return $"device '{device.Name}': pin {device.Pin} is the mixed workload's level line";
            }

            for (int j = 0; j < i; j++)
            {
                DeviceSource other = Devices[j];
                if (other.Name == device.Name)
                {
                    return $"two devices are named '{device.Name}'";
                }

                if (!device.IsNmi && !other.IsNmi && other.Vector == device.Vector)
                {
                    return $"device '{device.Name}': vector 0x{device.Vector:x2} is also device '{other.Name}''s";
                }

                if (device.Kind == DeviceSourceKind.IoApic && other.Kind == DeviceSourceKind.IoApic && other.Pin == device.Pin)
                {
                    return $"device '{device.Name}': pin {device.Pin} is also device '{other.Name}''s";
                }
            }
        }

        return null;
    }
}
