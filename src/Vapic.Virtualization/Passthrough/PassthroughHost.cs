using Vapic.Apic;

namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// The host a LAPIC-passthrough VM runs on: physical CPUs with their physical LAPICs and
/// physical APIC IDs, the pCPUs this VM owns (one per vCPU, pinned) and the ones other VMs or the
/// host own, and a record of the physical interrupt messages sent to them.
/// </summary>
/// <remarks>
/// <para>
/// Physical APIC IDs: pCPU p has x2APIC ID 0x10 + 2p, so they never start at 0 and differ from
/// the guest's IDs, which the guest must never see (ACRN's reason for trapping 0x802 and 0x80D).
/// The physical LDR is derived from it as for any x2APIC (SDM "Logical Destination Mode in x2APIC
/// Mode": cluster = ID[19:4] in bits 31:16, bit ID[3:0] in bits 15:0).
/// </para>
/// <para>
/// The physical LAPIC of an owned pCPU is, register for register, the vCPU's
/// <see cref="LocalApic"/> (passthrough is 1:1), except for its ID and LDR, which live only here.
/// <see cref="Send"/> is the only way onto the host bus, and it refuses a destination that is not
/// one of this VM's pCPUs: a second wall behind the ICR translation (counted in
/// <see cref="BlockedIpis"/>, which a correct translation leaves at 0).
/// </para>
/// </remarks>
public sealed class PassthroughHost
{
    /// <summary>The physical APIC ID of pCPU 0.</summary>
    public const uint FirstPhysicalApicId = 0x10;

    /// <summary>The step between the physical APIC IDs of consecutive pCPUs.</summary>
    public const uint PhysicalApicIdStride = 2;

    private readonly int[] _pcpuOfVcpu;
    private readonly int[] _vcpuOnPcpu;
    private readonly long[] _received;
    private readonly ulong[] _tscDeadline;
    private readonly PhysicalIpi[] _log;
    private long _sent;

    internal PassthroughHost(int vcpuCount, PassthroughOptions options)
    {
        CpuCount = options.HostCpusFor(vcpuCount);
        _pcpuOfVcpu = new int[vcpuCount];
        _vcpuOnPcpu = new int[CpuCount];
        Array.Fill(_vcpuOnPcpu, -1);
        for (int i = 0; i < vcpuCount; i++)
        {
            int pcpu = options.PcpuOf(i);
            _pcpuOfVcpu[i] = pcpu;
            _vcpuOnPcpu[pcpu] = i;
        }

        _received = new long[CpuCount];
        _tscDeadline = new ulong[CpuCount];
        _log = new PhysicalIpi[options.IpiLogCapacity];
    }

    /// <summary>The number of physical CPUs.</summary>
    public int CpuCount { get; }

    /// <summary>The number of vCPUs of this VM (each pinned to its own pCPU).</summary>
    public int VcpuCount => _pcpuOfVcpu.Length;

    /// <summary>Physical interrupt messages sent to pCPUs of this VM so far.</summary>
    public long PhysicalIpiCount => _sent;

    /// <summary>Messages refused because they were addressed to a pCPU outside this VM (or to no pCPU).</summary>
    public long BlockedIpis { get; private set; }

    /// <summary>The physical x2APIC ID of pCPU <paramref name="pcpu"/>: 0x10 + 2 × pcpu.</summary>
    public static uint PhysicalApicIdOf(int pcpu) => FirstPhysicalApicId + (PhysicalApicIdStride * (uint)pcpu);

    /// <summary>The physical x2APIC ID of pCPU <paramref name="pcpu"/>.</summary>
    public uint PhysicalApicId(int pcpu)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pcpu);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(pcpu, CpuCount);
        return PhysicalApicIdOf(pcpu);
    }

    /// <summary>The physical x2APIC LDR of pCPU <paramref name="pcpu"/>, derived from its physical ID.</summary>
    public uint PhysicalLogicalId(int pcpu) => ApicRegister.DeriveX2ApicLogicalId(PhysicalApicId(pcpu));

    /// <summary>The pCPU whose physical APIC ID is <paramref name="physicalId"/>, if there is one.</summary>
    public bool TryFindPcpu(uint physicalId, out int pcpu)
    {
        uint offset = physicalId - FirstPhysicalApicId;
        if (physicalId >= FirstPhysicalApicId && offset % PhysicalApicIdStride == 0 && offset / PhysicalApicIdStride < (uint)CpuCount)
        {
            pcpu = (int)(offset / PhysicalApicIdStride);
            return true;
        }

        pcpu = -1;
        return false;
    }

    /// <summary>The pCPU vCPU <paramref name="vcpu"/> is pinned to.</summary>
    public int PcpuOf(int vcpu) => _pcpuOfVcpu[vcpu];

    /// <summary>The vCPU of this VM pinned to <paramref name="pcpu"/>, or -1 when another VM or the host owns it.</summary>
    public int VcpuOn(int pcpu) => _vcpuOnPcpu[pcpu];

    /// <summary>Whether <paramref name="pcpu"/> belongs to this VM.</summary>
    public bool IsOwnedByVm(int pcpu) => (uint)pcpu < (uint)CpuCount && _vcpuOnPcpu[pcpu] >= 0;

    /// <summary>Messages pCPU <paramref name="pcpu"/> received from this VM's side.</summary>
    public long IpisReceived(int pcpu) => _received[pcpu];

    /// <summary>The value last programmed into the IA32_TSC_DEADLINE of pCPU <paramref name="pcpu"/> (host TSC units).</summary>
    public ulong PhysicalTscDeadline(int pcpu) => _tscDeadline[pcpu];

    /// <summary>The most recent messages, oldest first (at most the log capacity). Allocates: for tests and tools.</summary>
    public IReadOnlyList<PhysicalIpi> RecentIpis()
    {
        int count = (int)Math.Min(_sent, _log.Length);
        var list = new PhysicalIpi[count];
        long first = _sent - count;
        for (int i = 0; i < count; i++)
        {
            list[i] = _log[(int)((first + i) % _log.Length)];
        }

        return list;
    }

    /// <summary>
    /// Sends a physical-mode unicast from <paramref name="sourcePcpu"/> (-1: a device) to the pCPU
    /// with physical ID <paramref name="destinationPhysicalId"/>. Refused (and counted) unless that
    /// pCPU belongs to this VM. Never allocates.
    /// </summary>
    internal bool Send(int sourcePcpu, uint destinationPhysicalId, byte vector, DeliveryMode mode, PhysicalIpiOrigin origin)
    {
        if (!TryFindPcpu(destinationPhysicalId, out int pcpu) || !IsOwnedByVm(pcpu) || mode is not (DeliveryMode.Fixed or DeliveryMode.Nmi))
        {
            BlockedIpis++;
            return false;
        }

        if (_log.Length != 0)
        {
            _log[(int)(_sent % _log.Length)] = new PhysicalIpi(sourcePcpu, destinationPhysicalId, vector, mode, origin);
        }

        _sent++;
        _received[pcpu]++;
        return true;
    }

    /// <summary>Records a write to the physical IA32_TSC_DEADLINE of <paramref name="pcpu"/>.</summary>
    internal void ProgramTscDeadline(int pcpu, ulong value) => _tscDeadline[pcpu] = value;
}
