using BenchmarkDotNet.Attributes;
using Vapic.Machine;

namespace Vapic.Benchmarks;

/// <summary>
/// The per-mode overhead of delivering an interrupt through the model (simulator nanoseconds, not
/// guest cycles): the unicast fixed IPI round trip of <see cref="UnicastIpiBenchmarks"/> on 8
/// x2APIC vCPUs, under each virtualization mode, which adds its exit accounting and its hardware
/// structures (posted-interrupt descriptors, AVIC tables, the passthrough host model, the Secure
/// AVIC backing pages) to every access and delivery.
/// </summary>
[MemoryDiagnoser]
public class ModeDeliveryBenchmarks
{
    private Vcpu _source = null!;
    private Vcpu _target = null!;
    private ulong _interruptCommand;

    /// <summary>The mode.</summary>
    [Params(GuestSetup.NoMode, "emulated", "apicv", "avic", "passthrough", "savic")]
    public string Mode { get; set; } = GuestSetup.NoMode;

    /// <summary>Boots 8 vCPUs in x2APIC mode under the mode and checks one round trip.</summary>
    [GlobalSetup]
    public void Setup()
    {
        VirtualMachine machine = GuestSetup.CreateMachine(8, x2Apic: true, Mode);
        GuestSetup.BootAllVcpus(machine);
        _source = machine.GetVcpu(0);
        _target = machine.GetVcpu(7);
        _interruptCommand = ((ulong)_target.Apic.Id << 32) | GuestSetup.IpiVector;
        GuestSetup.RequireFixed(RoundTrip(), GuestSetup.IpiVector, $"unicast IPI under {Mode}");
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
