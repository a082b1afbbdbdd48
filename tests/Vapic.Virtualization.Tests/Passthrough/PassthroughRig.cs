using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// A booted machine under <see cref="PassthroughMode"/>: the BSP software-enabled, every AP brought
/// up by INIT-SIPI and software-enabled, and (unless asked otherwise) every guest switched to
/// x2APIC by writing IA32_APIC_BASE, as a guest kernel does after an xAPIC boot (§6.1).
/// </summary>
internal sealed class PassthroughRig
{
    public const ulong ApicBase = 0xFEE0_0000;

    public PassthroughRig(int vcpus = 3, bool switchToX2Apic = true, PassthroughOptions? options = null, long tscOffset = 0, bool forceX2Apic = false, long tscFrequencyHz = MachineOptions.DefaultFrequencyHz)
    {
        Mode = new PassthroughMode(options);
        Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus, TscOffset = tscOffset, ForceX2Apic = forceX2Apic, TscFrequencyHz = tscFrequencyHz }, Mode);
        Boot();
        if (switchToX2Apic)
        {
            for (int i = 0; i < vcpus; i++)
            {
                SwitchToX2Apic(i);
            }
        }
    }

    public PassthroughMode Mode { get; }

    public VirtualMachine Machine { get; }

    public PassthroughHost Host => Mode.Host;

    public Vcpu this[int index] => Machine.GetVcpu(index);

    public Delta Measure() => new(Mode);

    /// <summary>WRMSR IA32_APIC_BASE with EXTD added: xAPIC → x2APIC.</summary>
    public void SwitchToX2Apic(int cpu)
    {
        if (this[cpu].Apic.Mode == ApicMode.XApic)
        {
            Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMsr(0x1B, this[cpu].Apic.BaseMsr | ApicBaseMsr.X2ApicEnable));
        }

        Assert.Equal(ApicMode.X2Apic, this[cpu].Apic.Mode);
    }

    /// <summary>Writes a register by xAPIC offset: MMIO in xAPIC mode, the x2APIC MSR in x2APIC mode.</summary>
    public void Write(int cpu, int offset, uint value)
    {
        ApicAccessResult r = this[cpu].Apic.Mode == ApicMode.X2Apic
            ? this[cpu].WriteMsr(0x800 + (uint)(offset >> 4), value)
            : this[cpu].WriteMmio(ApicBase + (ulong)offset, value);
        Assert.Equal(ApicAccessResult.Ok, r);
    }

    /// <summary>Reads a register by xAPIC offset.</summary>
    public uint Read(int cpu, int offset)
    {
        if (this[cpu].Apic.Mode == ApicMode.X2Apic)
        {
            Assert.Equal(ApicAccessResult.Ok, this[cpu].ReadMsr(0x800 + (uint)(offset >> 4), out ulong v));
            return (uint)v;
        }

        Assert.Equal(ApicAccessResult.Ok, this[cpu].ReadMmio(ApicBase + (ulong)offset, out uint value));
        return value;
    }

    /// <summary>Sends an IPI: one WRMSR 0x830 in x2APIC mode, ICR high then low in xAPIC mode.</summary>
    public void SendIpi(int cpu, uint low, uint destination)
    {
        if (this[cpu].Apic.Mode == ApicMode.X2Apic)
        {
            Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMsr(0x830, ((ulong)destination << 32) | low));
        }
        else
        {
            Write(cpu, 0x310, destination << 24);
            Write(cpu, 0x300, low);
        }
    }

    /// <summary>Programs IOAPIC pin <paramref name="pin"/> (fixed, physical destination).</summary>
    public void ProgramIoApic(int pin, byte vector, bool level, uint destination)
    {
        IoApic io = Machine.IoApic;
        io.WriteMmio(io.BaseAddress, (uint)(0x10 + (2 * pin) + 1));
        io.WriteMmio(io.BaseAddress + 0x10, destination << 24);
        io.WriteMmio(io.BaseAddress, (uint)(0x10 + (2 * pin)));
        io.WriteMmio(io.BaseAddress + 0x10, vector | (level ? 0x8000u : 0));
    }

    private void Boot()
    {
        Write(0, 0x0F0, 0x1FF);
        if (Machine.VcpuCount > 1)
        {
            SendIpi(0, 0x000C_4500, 0); // INIT, all excluding self
            for (int i = 1; i < Machine.VcpuCount; i++)
            {
                Assert.Equal(CpuEventKind.Init, this[i].Accept().Kind);
            }

            SendIpi(0, 0x000C_4608, 0); // SIPI vector 8, all excluding self
            for (int i = 1; i < Machine.VcpuCount; i++)
            {
                Assert.Equal(CpuEventKind.StartUp, this[i].Accept().Kind);
                Write(i, 0x0F0, 0x1FF);
            }
        }
    }

    /// <summary>Exits, events, counters and physical IPIs since a snapshot.</summary>
    internal sealed class Delta
    {
        private readonly PassthroughMode _mode;
        private readonly long[] _exits;
        private readonly long[] _events;
        private readonly long _ipis;

        public Delta(PassthroughMode mode)
        {
            _mode = mode;
            _exits = [.. ExitLedger.Reasons.Select(mode.Ledger.ExitsOf)];
            _events = [.. ExitLedger.Events.Select(mode.Ledger.EventsOf)];
            _ipis = mode.Host.PhysicalIpiCount;
        }

        public long Exits(ExitReason reason) => _mode.Ledger.ExitsOf(reason) - _exits[(int)reason];

        public long Events(CostEvent costEvent) => _mode.Ledger.EventsOf(costEvent) - _events[(int)costEvent];

        public long TotalExits => _mode.Ledger.TotalExits - _exits.Sum();

        public long PhysicalIpis => _mode.Host.PhysicalIpiCount - _ipis;

        /// <summary>The physical IPIs sent since the snapshot, oldest first.</summary>
        public IReadOnlyList<PhysicalIpi> NewIpis()
        {
            IReadOnlyList<PhysicalIpi> all = _mode.Host.RecentIpis();
            return [.. all.Skip(all.Count - (int)PhysicalIpis)];
        }

        /// <summary>Asserts that exactly <paramref name="count"/> exits happened, all of <paramref name="reason"/>.</summary>
        public void AssertOnly(ExitReason reason, long count)
        {
            Assert.Equal(count, Exits(reason));
            Assert.Equal(count, TotalExits);
        }

        public void AssertNoExit() => Assert.Equal(0, TotalExits);
    }
}
