namespace Vapic.Virtualization.Compare;

/// <summary>The built-in guest workloads <c>vapic compare</c> runs under every mode.</summary>
public enum CompareWorkloadKind : byte
{
    /// <summary>Every vCPU sends one unicast fixed physical IPI per round to another vCPU (a rotating pattern).</summary>
    IpiStorm,

    /// <summary>Every vCPU in turn sends one fixed IPI with the all-excluding-self shorthand per round.</summary>
    Broadcast,

    /// <summary>A periodic LAPIC timer on every vCPU, one expiry per vCPU per round.</summary>
    Timer,

    /// <summary>A device writes one edge MSI to every vCPU per round.</summary>
    Device,

    /// <summary>Timers, the IPI storm, one broadcast, the MSI storm and one level-triggered IOAPIC line per round.</summary>
    Mixed,

    /// <summary>No built-in traffic: only the configured device sources (<see cref="CompareWorkloadOptions.Devices"/>) send.</summary>
    Idle,
}

/// <summary>The names of the workloads as <c>vapic compare</c> takes them.</summary>
public static class CompareWorkloads
{
    /// <summary>Every workload name, in <see cref="CompareWorkloadKind"/> order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["ipi-storm", "broadcast", "timer", "device", "mixed", "idle"];

    /// <summary>The name of <paramref name="kind"/>.</summary>
    public static string NameOf(CompareWorkloadKind kind) => Names[(int)kind];

    /// <summary>Looks up a workload by its exact name.</summary>
    public static bool TryParse(string name, out CompareWorkloadKind kind)
    {
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(Names[i], name, StringComparison.Ordinal))
            {
                kind = (CompareWorkloadKind)i;
                return true;
            }
        }

        kind = default;
        return false;
    }
}
