using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Avic;

/// <summary>
/// One 32-bit entry of the AVIC logical APIC ID table (virtualization-reference §3.3): bits 7:0
/// the guest physical APIC ID the logical ID stands for, bit 31 Valid.
/// </summary>
public readonly record struct AvicLogicalIdEntry(byte GuestPhysicalApicId, bool Valid)
{
    /// <summary>Bit 31, Valid.</summary>
    public const uint ValidBit = 1u << 31;

    /// <summary>The 32-bit entry.</summary>
    public uint Raw => GuestPhysicalApicId | (Valid ? ValidBit : 0);
}

/// <summary>
/// The VM's AVIC logical APIC ID table (xAVIC only: x2APIC logical IDs are derived from the
/// physical ones). Indexed per KVM <c>avic_get_logical_id_entry</c>: flat model (DFR all ones)
/// index = the set bit of LDR[31:24] (0-7); cluster model index = LDR[31:28] × 4 + the set bit of
/// LDR[27:24] (cluster 15 is not mapped). LDRs with no or several bits set are not mapped.
/// </summary>
public sealed class AvicLogicalIdTable
{
    /// <summary>Entries addressable: clusters 0-14 with 4 members each.</summary>
    public const int Length = 60;

    private readonly AvicLogicalIdEntry[] _entries = new AvicLogicalIdEntry[Length];

    internal AvicLogicalIdTable()
    {
    }

    /// <summary>The entry at <paramref name="index"/>; an invalid entry outside the table.</summary>
    public AvicLogicalIdEntry this[int index] => (uint)index < Length ? _entries[index] : default;

    /// <summary>
    /// The table index for <paramref name="ldr"/> (the full LDR register) under the flat or
    /// cluster model, or -1 when the LDR is not mapped.
    /// </summary>
    public static int IndexOf(uint ldr, bool flat)
    {
        uint logicalId = ldr >> 24;
        uint cluster = 0;
        if (!flat)
        {
            cluster = logicalId >> 4;
            if (cluster >= 0xF)
            {
                return -1;
            }

            logicalId &= 0xF;
        }

        if (logicalId == 0 || (logicalId & (logicalId - 1)) != 0)
        {
            return -1;
        }

        return System.Numerics.BitOperations.TrailingZeroCount(logicalId) + (int)(cluster << 2);
    }

    /// <summary>Whether a DFR value selects the flat model (KVM compares with APIC_DFR_FLAT, all ones).</summary>
    public static bool IsFlat(uint dfr) => dfr == ApicRegister.DestinationFormatReset;

    /// <summary>
    /// Rewrites the table from every xAPIC-mode vCPU's LDR and DFR (KVM re-derives the entry on
    /// each LDR/DFR trap). When two vCPUs map to one entry the later vCPU's write wins, as the
    /// later trap would; LOGICAL_ID_ALIASED inhibits AVIC in that case.
    /// </summary>
    internal void Rebuild(ReadOnlySpan<Vcpu> vcpus)
    {
        Array.Clear(_entries);
        foreach (Vcpu vcpu in vcpus)
        {
            LocalApic apic = vcpu.Apic;
            if (apic.Mode != ApicMode.XApic)
            {
                continue;
            }

            int index = IndexOf(apic.LogicalDestination, IsFlat(apic.DestinationFormat));
            if (index >= 0)
            {
                _entries[index] = new AvicLogicalIdEntry((byte)apic.Id, Valid: true);
            }
        }
    }
}
