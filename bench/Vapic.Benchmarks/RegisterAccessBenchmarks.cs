using BenchmarkDotNet.Attributes;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Benchmarks;

/// <summary>
/// Emulated register accesses on one software-enabled LocalApic: what a trap-and-emulate
/// hypervisor runs on every APIC-access or MSR exit. The LocalApic is called directly (the
/// exit handler has already decoded the access), so the figures are the device's own cost.
/// </summary>
[MemoryDiagnoser]
public class RegisterAccessBenchmarks
{
    private LocalApic _xApic = null!;
    private LocalApic _x2Apic = null!;
    private Vcpu _x2ApicVcpu = null!;
    private uint _taskPriority;

    /// <summary>Boots one xAPIC and one x2APIC machine and checks each measured body once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        VirtualMachine xApicMachine = GuestSetup.CreateMachine(1, x2Apic: false);
        GuestSetup.BootAllVcpus(xApicMachine);
        _xApic = xApicMachine.GetVcpu(0).Apic;

        VirtualMachine x2ApicMachine = GuestSetup.CreateMachine(1, x2Apic: true);
        GuestSetup.BootAllVcpus(x2ApicMachine);
        _x2ApicVcpu = x2ApicMachine.GetVcpu(0);
        _x2Apic = _x2ApicVcpu.Apic;

        // Check once that each measured body does what its name says.
        GuestSetup.Require(_xApic.WriteMmio(GuestSetup.XApicTprAddress, 0x20), "TPR write");
        if (XApicTprRead() != 0x20)
        {
            throw new InvalidOperationException("xAPIC TPR did not read back");
        }

        if (X2ApicAcceptAcknowledgeEoi() != GuestSetup.IpiVector || !_x2Apic.Isr.IsEmpty)
        {
            throw new InvalidOperationException("x2APIC EOI did not retire the acknowledged vector");
        }

        GuestSetup.RequireFixed(X2ApicSelfIpiAcceptEoi(), GuestSetup.IpiVector, "self IPI");
    }

    /// <summary>xAPIC MMIO read of TPR (0xFEE00080).</summary>
    [Benchmark]
    public uint XApicTprRead()
    {
        _xApic.ReadMmio(GuestSetup.XApicTprAddress, out uint value);
        return value;
    }

    /// <summary>xAPIC MMIO write of TPR, alternating 0x20 and 0 (each write recomputes PPR).</summary>
    [Benchmark]
    public ApicAccessResult XApicTprWrite()
    {
        _taskPriority ^= 0x20;
        return _xApic.WriteMmio(GuestSetup.XApicTprAddress, _taskPriority);
    }

    /// <summary>
    /// x2APIC EOI (WRMSR 0x80B, 0) with an in-service vector to retire. Every EOI needs a vector in
    /// ISR, which only an acknowledge puts there, which needs a vector in IRR; so the vector is first
    /// accepted and acknowledged (two device calls, no routing) and the figure is an upper bound for
    /// the EOI alone.
    /// </summary>
    [Benchmark]
    public int X2ApicAcceptAcknowledgeEoi()
    {
        _x2Apic.AcceptInterrupt(DeliveryMode.Fixed, GuestSetup.IpiVector, levelTriggered: false);
        int vector = _x2Apic.AcknowledgeInterrupt();
        _x2Apic.WriteMsr(GuestSetup.MsrEoi, 0);
        return vector;
    }

    /// <summary>
    /// The whole guest-visible cycle through the vCPU: SELF IPI (WRMSR 0x83F) routed by the
    /// machine, the CPU takes the interrupt, the handler writes EOI.
    /// </summary>
    [Benchmark]
    public CpuEvent X2ApicSelfIpiAcceptEoi()
    {
        _x2ApicVcpu.WriteMsr(GuestSetup.MsrSelfIpi, GuestSetup.IpiVector);
        CpuEvent taken = _x2ApicVcpu.Accept();
        _x2ApicVcpu.WriteMsr(GuestSetup.MsrEoi, 0);
        return taken;
    }
}
