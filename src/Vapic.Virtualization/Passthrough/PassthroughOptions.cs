namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// The host around a LAPIC-passthrough VM and the hypervisor's choices (virtualization-reference
/// §6): how many physical CPUs the host has, which of them this VM's vCPUs are pinned to, and
/// which x2APIC MSRs beyond the required ones stay intercepted.
/// </summary>
public sealed record PassthroughOptions
{
    /// <summary>The largest host the model supports (physical APIC IDs stay below 2^18).</summary>
    public const int MaxHostCpus = 1 << 16;

    /// <summary>The largest physical-IPI log.</summary>
    public const int MaxIpiLogCapacity = 1 << 20;

    /// <summary>The defaults: a host with twice as many CPUs as the VM, every other one pinned to it.</summary>
    public static PassthroughOptions Default { get; } = new();

    /// <summary>
    /// The number of host physical CPUs; null means twice the VM's vCPU count. pCPUs not pinned to
    /// this VM belong to other VMs or to the host.
    /// </summary>
    public int? HostCpuCount { get; init; }

    /// <summary>
    /// The pCPU each vCPU is pinned to, in vCPU order (distinct, each below the host CPU count);
    /// null means vCPU i on pCPU 2i + 1, every other pCPU (which needs at least 2 × vCPUs host CPUs).
    /// </summary>
    public IReadOnlyList<int>? Pinning { get; init; }

    /// <summary>
    /// Intercept reads and writes of the LVT thermal register (MSR 0x833), as ACRN did before its
    /// virtual thermal management (virtualization-reference §6.2). Off by default: the issue's
    /// acceptance is that only 0x802, 0x80D (read) and 0x830 (write) are intercepted in 0x800-0x8FF.
    /// </summary>
    public bool InterceptThermal { get; init; }

    /// <summary>
    /// Intercept reads of ICR (MSR 0x830) too. Off by default (ACRN passes ICR reads through), but
    /// then the guest can read back the physical destination the hypervisor last wrote into the
    /// physical ICR when it translated an IPI (see <see cref="PassthroughCounters.PhysicalIcrReadbacks"/>).
    /// </summary>
    public bool InterceptIcrRead { get; init; }

    /// <summary>How many of the most recent physical IPIs the host model keeps for inspection.</summary>
    public int IpiLogCapacity { get; init; } = 4096;

    /// <summary>The number of host CPUs for a VM of <paramref name="vcpuCount"/> vCPUs.</summary>
    public int HostCpusFor(int vcpuCount) => HostCpuCount ?? 2 * vcpuCount;

    /// <summary>The pCPU vCPU <paramref name="vcpu"/> is pinned to.</summary>
    public int PcpuOf(int vcpu) => Pinning is null ? (2 * vcpu) + 1 : Pinning[vcpu];

    /// <summary>
    /// Checks the options for a VM of <paramref name="vcpuCount"/> vCPUs; returns null when they are
    /// valid, otherwise a message saying what is wrong.
    /// </summary>
    public string? Validate(int vcpuCount)
    {
        if (vcpuCount < 1)
        {
            return $"a passthrough VM needs at least one vCPU, not {vcpuCount}";
        }

        int hostCpus = HostCpusFor(vcpuCount);
        if (hostCpus < 1 || hostCpus > MaxHostCpus)
        {
            return $"the host CPU count must be between 1 and {MaxHostCpus}, not {hostCpus}";
        }

        if (hostCpus < vcpuCount)
        {
            return $"a host of {hostCpus} CPUs cannot give each of {vcpuCount} vCPUs its own pCPU";
        }

        if (IpiLogCapacity is < 0 or > MaxIpiLogCapacity)
        {
            return $"the physical-IPI log capacity must be between 0 and {MaxIpiLogCapacity}, not {IpiLogCapacity}";
        }

        if (Pinning is null)
        {
            if (hostCpus < 2 * vcpuCount)
            {
                return $"the default pinning (vCPU i on pCPU 2i+1) needs {2 * vcpuCount} host CPUs, not {hostCpus}: give the host more CPUs or an explicit pinning";
            }

            return null;
        }

        if (Pinning.Count != vcpuCount)
        {
            return $"the pinning lists {Pinning.Count} pCPUs for {vcpuCount} vCPUs";
        }

        var used = new int[hostCpus];
        for (int i = 0; i < Pinning.Count; i++)
        {
            int pcpu = Pinning[i];
            if (pcpu < 0 || pcpu >= hostCpus)
            {
                return $"vCPU {i} is pinned to pCPU {pcpu}, but the host has pCPUs 0 to {hostCpus - 1}";
            }

            if (used[pcpu] != 0)
            {
                return $"pCPU {pcpu} is given to vCPU {used[pcpu] - 1} and to vCPU {i}: each vCPU needs its own pCPU";
            }

            used[pcpu] = i + 1;
        }

        return null;
    }
}
