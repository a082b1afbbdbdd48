using BenchmarkDotNet.Attributes;
using Vapic.Machine;

namespace Vapic.Benchmarks;

/// <summary>
/// A fixed IPI round trip between two vCPUs in x2APIC mode: CPU 0 writes ICR (WRMSR 0x830,
/// physical destination = the last vCPU's APIC ID), the target CPU takes the interrupt, the
/// target's handler writes EOI. Run with 4 and 4,096 vCPUs: physical routing is one table index,
/// so the cost should not depend on the machine's size. Run bare (the device model alone, as the
/// other benchmarks) and under the <c>emulated</c> virtualization mode, which adds its exit
/// accounting to every access and delivery (what <c>vapic replay</c> runs).
/// </summary>
[MemoryDiagnoser]
public class UnicastIpiBenchmarks
{
    private Vcpu _source = null!;
    private Vcpu _target = null!;
    private ulong _interruptCommand;

    /// <summary>The machine size.</summary>
    [Params(4, 4096)]
    public int VcpuCount { get; set; }

    /// <summary><see cref="GuestSetup.NoMode"/> or a virtualization mode name.</summary>
    [Params(GuestSetup.NoMode, "emulated")]
    public string Mode { get; set; } = GuestSetup.NoMode;

    /// <summary>Boots the machine, picks the last vCPU as the target and checks one round trip.</summary>
    [GlobalSetup]
    public void Setup()
    {
        VirtualMachine machine = GuestSetup.CreateMachine(VcpuCount, x2Apic: true, Mode);
        GuestSetup.BootAllVcpus(machine);
        _source = machine.GetVcpu(0);
        _target = machine.GetVcpu(VcpuCount - 1);

        // Fixed, physical, edge: ICR[63:32] = destination, ICR[7:0] = vector.
        _interruptCommand = ((ulong)_target.Apic.Id << 32) | GuestSetup.IpiVector;
        GuestSetup.RequireFixed(RoundTrip(), GuestSetup.IpiVector, "unicast IPI");
    }

    /// <summary>ICR write from CPU 0, the target takes the vector, the target writes EOI.</summary>
    [Benchmark]
    public CpuEvent RoundTrip()
    {
        _source.WriteMsr(GuestSetup.MsrIcr, _interruptCommand);
        CpuEvent taken = _target.Accept();
        _target.WriteMsr(GuestSetup.MsrEoi, 0);
        return taken;
    }
}
