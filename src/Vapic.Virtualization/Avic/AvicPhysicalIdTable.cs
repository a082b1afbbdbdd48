using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Avic;

/// <summary>
/// One 64-bit entry of the AVIC physical APIC ID table, indexed by guest physical APIC ID
/// (virtualization-reference §3.2; AMD APM "Physical APIC ID Table"): bits 11:0 host physical
/// APIC ID of the pCPU running the vCPU, bits 51:12 backing page, bit 62 IsRunning, bit 63 Valid.
/// </summary>
/// <param name="HostPhysicalApicId">The host APIC ID the doorbell goes to (the model's host pCPU is the vCPU index).</param>
/// <param name="BackingPage">The vCPU's backing page: its LAPIC register state, as KVM uses the vLAPIC page; null when not valid.</param>
/// <param name="IsRunning">The vCPU is loaded on its pCPU in guest mode: hardware may set IRR and ring the doorbell.</param>
/// <param name="Valid">The entry names a vCPU; an IPI to an invalid entry exits with INVALID_TARGET.</param>
public readonly record struct AvicPhysicalIdEntry(ushort HostPhysicalApicId, LocalApic? BackingPage, bool IsRunning, bool Valid)
{
    /// <summary>Bits 11:0, the host physical APIC ID.</summary>
    public const ulong HostPhysicalApicIdMask = 0xFFF;

    /// <summary>Bit 62, IsRunning.</summary>
    public const ulong IsRunningBit = 1UL << 62;

    /// <summary>Bit 63, Valid.</summary>
    public const ulong ValidBit = 1UL << 63;

    /// <summary>The vCPU whose backing page this is, or -1.</summary>
    public int VcpuIndex => BackingPage?.VcpuIndex ?? -1;

    /// <summary>
    /// The 64-bit entry with the backing-page field (bits 51:12) left 0: the model has no host
    /// physical addresses.
    /// </summary>
    public ulong Raw =>
        (HostPhysicalApicId & HostPhysicalApicIdMask) | (IsRunning ? IsRunningBit : 0) | (Valid ? ValidBit : 0);
}

/// <summary>
/// The VM's AVIC physical APIC ID table (one per VM; the VMCB holds its address and max index).
/// Every vCPU gets a valid entry at its current APIC ID, as KVM gives every vCPU one at creation
/// (broadcast IPIs silently skip invalid entries, §3.2); IsRunning follows the host scheduler.
/// </summary>
public sealed class AvicPhysicalIdTable
{
    private readonly AvicPhysicalIdEntry[] _entries;
    private int[] _indexOfVcpu = [];

    internal AvicPhysicalIdTable(int maxIndex) => _entries = new AvicPhysicalIdEntry[maxIndex + 1];

    /// <summary>The highest index the table holds (the VMCB max-index field).</summary>
    public int MaxIndex => _entries.Length - 1;

    /// <summary>The entry for guest physical APIC ID <paramref name="guestPhysicalId"/>; an all-zero (invalid) entry beyond <see cref="MaxIndex"/>.</summary>
    public AvicPhysicalIdEntry this[uint guestPhysicalId] =>
        guestPhysicalId < (uint)_entries.Length ? _entries[guestPhysicalId] : default;

    /// <summary>The index of vCPU <paramref name="vcpuIndex"/>'s entry, or -1 when its APIC ID is beyond the table (or aliases an earlier vCPU's).</summary>
    public int IndexOf(int vcpuIndex) => (uint)vcpuIndex < (uint)_indexOfVcpu.Length ? _indexOfVcpu[vcpuIndex] : -1;

    internal void Attach(int vcpuCount) => _indexOfVcpu = new int[vcpuCount];

    /// <summary>
    /// Rewrites the table from the vCPUs' current APIC IDs. When two vCPUs share an ID the lower
    /// vCPU keeps the entry (PHYSICAL_ID_ALIASED inhibits AVIC then anyway). IsRunning is left
    /// clear: the mode sets it per vCPU (<see cref="SetRunning"/>), as only it knows whose AVIC is
    /// active (the VM-wide inhibits, the per-vCPU NESTED one, KVM <c>enable_ipiv</c>).
    /// </summary>
    internal void Rebuild(ReadOnlySpan<Vcpu> vcpus)
    {
        Array.Clear(_entries);
        foreach (Vcpu vcpu in vcpus)
        {
            uint id = vcpu.Apic.Id;
            if (id < (uint)_entries.Length && !_entries[id].Valid)
            {
                _entries[id] = new AvicPhysicalIdEntry((ushort)vcpu.Index, vcpu.Apic, IsRunning: false, Valid: true);
                _indexOfVcpu[vcpu.Index] = (int)id;
            }
            else
            {
                _indexOfVcpu[vcpu.Index] = -1;
            }
        }
    }

    /// <summary>KVM <c>avic_vcpu_load</c>/<c>avic_vcpu_put</c>: sets or clears IsRunning of the vCPU's entry.</summary>
    internal void SetRunning(int vcpuIndex, bool running)
    {
        int index = IndexOf(vcpuIndex);
        if (index >= 0)
        {
            _entries[index] = _entries[index] with { IsRunning = running };
        }
    }
}
