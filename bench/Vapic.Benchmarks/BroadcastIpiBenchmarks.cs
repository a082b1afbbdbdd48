using BenchmarkDotNet.Attributes;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Benchmarks;

/// <summary>
/// A fixed IPI broadcast to 4,096 vCPUs in x2APIC mode (ICR destination 0xFFFF_FFFF, physical):
/// what a TLB shootdown or a stop-the-world IPI costs the interrupt model. Figures are per target
/// (OperationsPerInvoke = 4,096).
/// </summary>
[MemoryDiagnoser]
public class BroadcastIpiBenchmarks
{
    /// <summary>The machine size: the largest the model supports.</summary>
    public const int VcpuCount = MachineOptions.MaxVcpus;

    private const ulong BroadcastCommand = ((ulong)InterruptMessage.X2ApicBroadcast << 32) | GuestSetup.IpiVector;

    private VirtualMachine _machine = null!;
    private Vcpu _source = null!;

    /// <summary>Boots the machine and leaves the vector pending on every vCPU.</summary>
    [GlobalSetup(Target = nameof(Broadcast))]
    public void SetupBroadcast()
    {
        BootMachine();

        // Leave the vector pending everywhere: every measured broadcast then runs the full routing
        // and acceptance path and merges into IRR, so the state never grows between operations.
        Broadcast();
        for (int i = 0; i < VcpuCount; i++)
        {
            if (!_machine.GetVcpu(i).Apic.Irr.Get(GuestSetup.IpiVector))
            {
                throw new InvalidOperationException($"vCPU {i} did not accept the broadcast");
            }
        }
    }

    /// <summary>Boots the machine and checks that every vCPU takes the broadcast.</summary>
    [GlobalSetup(Target = nameof(BroadcastAcceptEoi))]
    public void SetupBroadcastAcceptEoi()
    {
        BootMachine();
        if (BroadcastAcceptEoi() != VcpuCount)
        {
            throw new InvalidOperationException("not every vCPU took the broadcast");
        }
    }

    /// <summary>
    /// The broadcast alone: ICR write, destination resolution (the list of x2APIC-mode vCPUs) and
    /// acceptance at each of the 4,096 LAPICs. The vector is already pending (setup), so each
    /// acceptance takes the IRR-merge branch: it checks the LAPIC's enables, reads its IRR and TMR
    /// words and counts the merge, but stores neither word (both already hold what the message
    /// asks for). A first acceptance also writes the IRR word; <see cref="BroadcastAcceptEoi"/>
    /// measures that case.
    /// </summary>
    [Benchmark(OperationsPerInvoke = VcpuCount)]
    public void Broadcast() => _source.WriteMsr(GuestSetup.MsrIcr, BroadcastCommand);

    /// <summary>
    /// The broadcast followed by what every target then does: take the interrupt and write EOI.
    /// Returns the number of targets that took the vector.
    /// </summary>
    [Benchmark(OperationsPerInvoke = VcpuCount)]
    public int BroadcastAcceptEoi()
    {
        _source.WriteMsr(GuestSetup.MsrIcr, BroadcastCommand);
        int taken = 0;
        ReadOnlySpan<Vcpu> vcpus = _machine.Vcpus;
        for (int i = 0; i < vcpus.Length; i++)
        {
            Vcpu vcpu = vcpus[i];
            if (vcpu.Accept().Kind == CpuEventKind.Fixed)
            {
                taken++;
            }

            vcpu.WriteMsr(GuestSetup.MsrEoi, 0);
        }

        return taken;
    }

    private void BootMachine()
    {
        _machine = GuestSetup.CreateMachine(VcpuCount, x2Apic: true);
        GuestSetup.BootAllVcpus(_machine);
        _source = _machine.GetVcpu(0);
    }
}
