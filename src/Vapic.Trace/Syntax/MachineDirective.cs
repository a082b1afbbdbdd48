using System.Collections.Immutable;
using Vapic.Machine;

namespace Vapic.Trace.Syntax;

/// <summary>
/// The <c>machine vcpus=N [ids=A,B,...] [force-x2apic] [ioapic-version=0x11|0x20] [tsc-offset=N]
/// [vendor=intel|amd]</c> line that opens every trace (<c>tsc-offset=</c> and <c>vendor=</c> are Vapic's
/// documented additions to version 1, see docs/trace-format.md).
/// </summary>
/// <param name="VcpuCount">Number of vCPUs, 1 to <see cref="MachineOptions.MaxVcpus"/>.</param>
/// <param name="ApicIds">The initial APIC ID of each vCPU; always <paramref name="VcpuCount"/> entries (0..N-1 when the line has no <c>ids=</c>).</param>
/// <param name="ForceX2Apic">Locked x2APIC: every LAPIC leaves reset in x2APIC mode and cannot leave it.</param>
/// <param name="IoApicVersion">0x20 (with the EOI register, the default) or 0x11.</param>
/// <param name="Location">Where the <c>machine</c> keyword is.</param>
/// <param name="TscOffset">The initial TSC offset of every vCPU (guest TSC = time in ns + offset); 0 by default.</param>
/// <param name="Vendor">The CPU vendor, which decides the vendor-specific MSRs; Intel by default.</param>
public sealed record MachineDirective(
    int VcpuCount,
    ImmutableArray<uint> ApicIds,
    bool ForceX2Apic,
    byte IoApicVersion,
    SourceLocation Location,
    long TscOffset = 0,
    CpuVendor Vendor = CpuVendor.Intel)
{
    /// <summary>The IOAPIC version a machine line without <c>ioapic-version=</c> gets.</summary>
    public const byte DefaultIoApicVersion = 0x20;

    /// <summary>True when the APIC IDs are 0..N-1, the default the <c>ids=</c> option overrides.</summary>
    public bool HasDefaultApicIds
    {
        get
        {
            ImmutableArray<uint> ids = ApicIds;
            for (int i = 0; i < ids.Length; i++)
            {
                if (ids[i] != (uint)i)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// True when every LAPIC starts in x2APIC mode: <c>force-x2apic</c> was given, or some APIC ID
    /// is above 0xFE and so cannot be addressed in xAPIC mode (firmware leaves x2APIC enabled).
    /// </summary>
    public bool StartsInX2ApicMode
    {
        get
        {
            if (ForceX2Apic)
            {
                return true;
            }

            foreach (uint id in ApicIds)
            {
                if (id > 0xFE)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>The machine configuration this line describes (other options keep their defaults).</summary>
    public MachineOptions ToMachineOptions() => new()
    {
        VcpuCount = VcpuCount,
        ApicIds = HasDefaultApicIds ? null : ApicIds,
        ForceX2Apic = ForceX2Apic,
        IoApicVersion = IoApicVersion,
        TscOffset = TscOffset,
        CpuVendor = Vendor,
    };

    /// <summary>Value equality, comparing the APIC IDs element by element.</summary>
    public bool Equals(MachineDirective? other) =>
        other is not null
        && VcpuCount == other.VcpuCount
        && ForceX2Apic == other.ForceX2Apic
        && IoApicVersion == other.IoApicVersion
        && TscOffset == other.TscOffset
        && Vendor == other.Vendor
        && Location == other.Location
        && ApicIds.AsSpan().SequenceEqual(other.ApicIds.AsSpan());

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(VcpuCount);
        hash.Add(ForceX2Apic);
        hash.Add(IoApicVersion);
        hash.Add(TscOffset);
        hash.Add(Vendor);
        hash.Add(Location);
        foreach (uint id in ApicIds)
        {
            hash.Add(id);
        }

        return hash.ToHashCode();
    }

    /// <summary>Returns the line in canonical trace syntax.</summary>
    public override string ToString() => TraceFormatter.Format(this);
}
