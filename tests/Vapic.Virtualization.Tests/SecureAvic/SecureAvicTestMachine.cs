using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// A booted Secure AVIC guest: the BSP enters x2APIC (its driver sets Secure AVIC up), starts every
/// AP with INIT and SIPI, each AP enters x2APIC and every LAPIC is software-enabled.
/// </summary>
internal sealed class SecureAvicTestMachine
{
    public const uint Tpr = 0x808;
    public const uint Eoi = 0x80B;
    public const uint Svr = 0x80F;
    public const uint Icr = 0x830;
    public const uint LvtTimer = 0x832;
    public const uint InitialCount = 0x838;
    public const uint CurrentCount = 0x839;
    public const uint DivideConfiguration = 0x83E;
    public const uint SelfIpi = 0x83F;

    public SecureAvicTestMachine(int vcpus = 3, bool forceX2Apic = false)
    {
        Mode = new SecureAvicMode();
        Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus, ForceX2Apic = forceX2Apic }, Mode);
        Boot(forceX2Apic);
    }

    public SecureAvicMode Mode { get; }

    public VirtualMachine Machine { get; }

    public Vcpu this[int index] => Machine.GetVcpu(index);

    public SecureAvicVcpu State(int index) => Mode.GetVcpu(index);

    public SecureAvicLedgerDelta Measure() => new(Mode.Ledger);

    public void Write(int cpu, uint msr, ulong value) => Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMsr(msr, value));

    public ulong Read(int cpu, uint msr)
    {
        Assert.Equal(ApicAccessResult.Ok, this[cpu].ReadMsr(msr, out ulong value));
        return value;
    }

    /// <summary>One x2APIC ICR write: destination in bits 63:32.</summary>
    public void SendIpi(int cpu, uint low, uint destination) => Write(cpu, Icr, ((ulong)destination << 32) | low);

    /// <summary>The guest programs IOAPIC pin <paramref name="pin"/> (fixed, physical destination) through its MMIO window.</summary>
    public void ProgramIoApic(int pin, byte vector, bool level, uint destination, int cpu = 0)
    {
        ulong b = Machine.IoApic.BaseAddress;
        Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMmio(b, (uint)(0x10 + (2 * pin) + 1)));
        Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMmio(b + 0x10, destination << 24));
        Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMmio(b, (uint)(0x10 + (2 * pin))));
        Assert.Equal(ApicAccessResult.Ok, this[cpu].WriteMmio(b + 0x10, vector | (level ? 0x8000u : 0)));
    }

    public void Pulse(int pin)
    {
        Machine.SetIrq(pin, true);
        Machine.SetIrq(pin, false);
    }

    public void SendMsi(uint destination, byte vector) =>
        Machine.SendMsi(Msi.EncodeAddress(destination, DestinationMode.Physical, false), Msi.EncodeData(vector, DeliveryMode.Fixed, false));

    /// <summary>Takes <paramref name="vector"/> on <paramref name="cpu"/> and completes it.</summary>
    public void TakeAndEoi(int cpu, byte vector)
    {
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, vector), this[cpu].Accept());
        Write(cpu, Eoi, 0);
    }

    private void Boot(bool forceX2Apic)
    {
        EnterX2Apic(0, forceX2Apic);
        for (int i = 1; i < Machine.VcpuCount; i++)
        {
            SendIpi(0, 0x4500, this[i].Apic.Id);
            Assert.Equal(CpuEventKind.Init, this[i].Accept().Kind);
            SendIpi(0, 0x4608, this[i].Apic.Id);
            Assert.Equal(CpuEventKind.StartUp, this[i].Accept().Kind);
            EnterX2Apic(i, forceX2Apic);
        }
    }

    private void EnterX2Apic(int cpu, bool alreadyX2Apic)
    {
        if (!alreadyX2Apic)
        {
            Write(cpu, ApicBaseMsr.Msr, this[cpu].Apic.BaseMsr | ApicBaseMsr.X2ApicEnable);
        }

        Write(cpu, Svr, 0x1FF);
    }
}

/// <summary>Exit and event counts of a ledger since a snapshot.</summary>
internal sealed class SecureAvicLedgerDelta
{
    private readonly ExitLedger _ledger;
    private readonly long[] _exits;
    private readonly long[] _events;

    public SecureAvicLedgerDelta(ExitLedger ledger)
    {
        _ledger = ledger;
        _exits = [.. ExitLedger.Reasons.Select(ledger.ExitsOf)];
        _events = [.. ExitLedger.Events.Select(ledger.EventsOf)];
    }

    public long Exits(ExitReason reason) => _ledger.ExitsOf(reason) - _exits[(int)reason];

    public long Events(CostEvent costEvent) => _ledger.EventsOf(costEvent) - _events[(int)costEvent];

    public long TotalExits => _ledger.TotalExits - _exits.Sum();

    /// <summary>Exactly <paramref name="count"/> exits happened, all VMGEXITs.</summary>
    public void AssertVmgexits(long count)
    {
        Assert.Equal(count, Exits(ExitReason.Vmgexit));
        Assert.Equal(count, TotalExits);
    }
}
