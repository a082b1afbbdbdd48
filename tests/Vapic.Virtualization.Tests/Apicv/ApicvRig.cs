using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;

namespace Vapic.Virtualization.Tests.Apicv;

/// <summary>
/// A machine under <see cref="ApicvMode"/> with every AP started (INIT, SIPI) and every LAPIC
/// software-enabled, in xAPIC or (locked) x2APIC mode, plus register helpers that pick MMIO or
/// MSRs by mode.
/// </summary>
internal sealed class ApicvRig
{
    public const ulong ApicBase = 0xFEE0_0000;

    public ApicvRig(int vcpus = 2, bool x2Apic = false, ApicvFeatures? features = null)
    {
        X2Apic = x2Apic;
        Mode = new ApicvMode(features);
        Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus, ForceX2Apic = x2Apic }, Mode);
        if (vcpus > 1)
        {
            SendIpi(0, 0x000C_4500, 0); // INIT, all excluding self
            for (int i = 1; i < vcpus; i++)
            {
                Machine.GetVcpu(i).Accept();
            }

            SendIpi(0, 0x000C_4608, 0); // SIPI 0x08, all excluding self
            for (int i = 1; i < vcpus; i++)
            {
                Machine.GetVcpu(i).Accept();
            }
        }

        for (int i = 0; i < vcpus; i++)
        {
            Write(i, 0x0F0, 0x1FF);
        }
    }

    public VirtualMachine Machine { get; }

    public ApicvMode Mode { get; }

    public bool X2Apic { get; }

    public Vcpu this[int index] => Machine.GetVcpu(index);

    public ApicvVcpuState State(int index) => Mode.GetVcpuState(index);

    public LedgerProbe Probe() => new(Mode.Ledger);

    /// <summary>Writes the register at xAPIC <paramref name="offset"/> (MSR 0x800 + offset/16 in x2APIC mode).</summary>
    public ApicAccessResult Write(int cpu, uint offset, ulong value) => X2Apic
        ? this[cpu].WriteMsr(0x800 + (offset >> 4), value)
        : this[cpu].WriteMmio(ApicBase + offset, (uint)value);

    /// <summary>Reads the register at xAPIC <paramref name="offset"/>.</summary>
    public ulong Read(int cpu, uint offset)
    {
        if (X2Apic)
        {
            this[cpu].ReadMsr(0x800 + (offset >> 4), out ulong value);
            return value;
        }

        this[cpu].ReadMmio(ApicBase + offset, out uint v);
        return v;
    }

    /// <summary>Sends an IPI: ICR high then low in xAPIC mode, one ICR WRMSR in x2APIC mode.</summary>
    public void SendIpi(int cpu, uint low, uint destination)
    {
        if (X2Apic)
        {
            this[cpu].WriteMsr(0x830, ((ulong)destination << 32) | low);
        }
        else
        {
            this[cpu].WriteMmio(ApicBase + 0x310, destination << 24);
            this[cpu].WriteMmio(ApicBase + 0x300, low);
        }
    }

    /// <summary>A hypervisor-originated fixed interrupt to physical destination <paramref name="apicId"/>.</summary>
    public void Inject(uint apicId, byte vector, bool levelTriggered = false) =>
        Machine.Deliver(new InterruptMessage(vector, DeliveryMode.Fixed, DestinationMode.Physical, apicId, DestinationShorthand.None,
            levelTriggered, Assert: true, RedirectionHint: false, InterruptSource.External, SourceVcpu: -1));

    /// <summary>A device MSI (edge, fixed, physical) to <paramref name="apicId"/> with <paramref name="vector"/>.</summary>
    public void SendMsi(uint apicId, byte vector) =>
        Machine.SendMsi(0xFEE0_0000UL | ((ulong)(apicId & 0xFF) << 12), vector);
}

/// <summary>Ledger deltas from the moment the probe was taken.</summary>
internal sealed class LedgerProbe
{
    private readonly ExitLedger _ledger;
    private readonly long[] _exits;
    private readonly long[] _events;

    public LedgerProbe(ExitLedger ledger)
    {
        _ledger = ledger;
        _exits = new long[ExitLedger.Reasons.Count];
        _events = new long[ExitLedger.Events.Count];
        foreach (ExitReason r in ExitLedger.Reasons)
        {
            _exits[(int)r] = ledger.ExitsOf(r);
        }

        foreach (CostEvent e in ExitLedger.Events)
        {
            _events[(int)e] = ledger.EventsOf(e);
        }
    }

    public long Exits(ExitReason reason) => _ledger.ExitsOf(reason) - _exits[(int)reason];

    public long Events(CostEvent costEvent) => _ledger.EventsOf(costEvent) - _events[(int)costEvent];

    public long TotalExits
    {
        get
        {
            long total = 0;
            foreach (ExitReason r in ExitLedger.Reasons)
            {
                total += Exits(r);
            }

            return total;
        }
    }

    /// <summary>The exits taken, as "Reason×n" items, for readable assertion failures.</summary>
    public string Describe()
    {
        var parts = new List<string>();
        foreach (ExitReason r in ExitLedger.Reasons)
        {
            if (Exits(r) != 0)
            {
                parts.Add($"{r}x{Exits(r)}");
            }
        }

        return parts.Count == 0 ? "none" : string.Join(",", parts);
    }
}
