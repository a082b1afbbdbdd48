using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>
/// A booted machine under <see cref="AvicMode"/>: every AP brought up by INIT-SIPI and every APIC
/// software-enabled, so that exits can be counted for single guest operations.
/// </summary>
internal sealed class AvicTestMachine
{
    public const ulong ApicBase = 0xFEE0_0000;

    public AvicTestMachine(int vcpus = 3, bool x2Apic = false, AvicFeatures? features = null, IReadOnlyList<uint>? apicIds = null)
    {
        Mode = new AvicMode(features);
        Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus, ForceX2Apic = x2Apic, ApicIds = apicIds }, Mode);
        X2Apic = x2Apic;
        Boot();
    }

    public AvicMode Mode { get; }

    public VirtualMachine Machine { get; }

    public bool X2Apic { get; }

    public Vcpu this[int index] => Machine.GetVcpu(index);

    /// <summary>A snapshot of the ledger to measure one operation against.</summary>
    public LedgerDelta Measure() => new(Mode.Ledger);

    /// <summary>Writes a register by xAPIC offset: MMIO in xAPIC mode, the x2APIC MSR otherwise.</summary>
    public void Write(int cpu, int offset, uint value)
    {
        ApicAccessResult r = X2Apic
            ? this[cpu].WriteMsr(0x800 + (uint)(offset >> 4), value)
            : this[cpu].WriteMmio(ApicBase + (ulong)offset, value);
        Assert.Equal(ApicAccessResult.Ok, r);
    }

    /// <summary>Reads a register by xAPIC offset.</summary>
    public uint Read(int cpu, int offset)
    {
        if (X2Apic)
        {
            Assert.Equal(ApicAccessResult.Ok, this[cpu].ReadMsr(0x800 + (uint)(offset >> 4), out ulong v));
            return (uint)v;
        }

        Assert.Equal(ApicAccessResult.Ok, this[cpu].ReadMmio(ApicBase + (ulong)offset, out uint value));
        return value;
    }

    /// <summary>Sends an IPI: ICR high then low in xAPIC mode (destination in 31:24), one WRMSR 0x830 in x2APIC mode.</summary>
    public void SendIpi(int cpu, uint low, uint destination)
    {
        if (X2Apic)
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

    /// <summary>Puts a level-triggered vector in service on <paramref name="cpu"/> through IOAPIC pin 1.</summary>
    public void TakeLevelInterrupt(int cpu, byte vector)
    {
        ProgramIoApic(1, vector, level: true, destination: this[cpu].Apic.Id);
        Machine.SetIrq(1, true);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, vector), this[cpu].Accept());
        Assert.True(this[cpu].Apic.Tmr.Get(vector));
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
}

/// <summary>Exit and event counts since a snapshot.</summary>
internal sealed class LedgerDelta
{
    private readonly ExitLedger _ledger;
    private readonly long[] _exits;
    private readonly long[] _events;

    public LedgerDelta(ExitLedger ledger)
    {
        _ledger = ledger;
        _exits = [.. ExitLedger.Reasons.Select(ledger.ExitsOf)];
        _events = [.. ExitLedger.Events.Select(ledger.EventsOf)];
    }

    public long Exits(ExitReason reason) => _ledger.ExitsOf(reason) - _exits[(int)reason];

    public long Events(CostEvent costEvent) => _ledger.EventsOf(costEvent) - _events[(int)costEvent];

    public long TotalExits => _ledger.TotalExits - _exits.Sum();

    /// <summary>Asserts that exactly <paramref name="count"/> exits happened, all of <paramref name="reason"/>.</summary>
    public void AssertOnly(ExitReason reason, long count)
    {
        Assert.Equal(count, Exits(reason));
        Assert.Equal(count, TotalExits);
    }
}
