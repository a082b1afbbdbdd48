using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine;

namespace Vapic.Fuzz.Oracles;

/// <summary>One vCPU as the snapshot sees it: the CPU-side state and the whole LAPIC.</summary>
/// <param name="RunState">Running or waiting for SIPI.</param>
/// <param name="EntryPoint">Where the CPU starts after INIT or SIPI.</param>
/// <param name="CodeSegment">The code segment selector it starts with.</param>
/// <param name="HostState">Running, preempted or halted on the host.</param>
/// <param name="Apic">The LAPIC's saved state.</param>
public sealed record VcpuSnapshot(VcpuRunState RunState, ulong EntryPoint, ushort CodeSegment, VcpuHostState HostState, LocalApicState Apic);

/// <summary>
/// Everything a restore may change, read straight from the devices (never through the mode's
/// <see cref="VirtualMachine.TrySave"/>, which first moves posted interrupts into the LAPICs):
/// the clock, each vCPU and LAPIC, the IOAPIC and the next timer deadline. Taking it changes nothing.
/// </summary>
public sealed record MachineSnapshot(long Now, ImmutableArray<VcpuSnapshot> Vcpus, IoApicState IoApic, long NextTimerDeadline)
{
    /// <summary>Reads <paramref name="machine"/>.</summary>
    public static MachineSnapshot Of(VirtualMachine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        var vcpus = ImmutableArray.CreateBuilder<VcpuSnapshot>(machine.VcpuCount);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            vcpus.Add(new VcpuSnapshot(vcpu.RunState, vcpu.EntryPoint, vcpu.CodeSegment, vcpu.HostState, vcpu.Apic.Save()));
        }

        return new MachineSnapshot(machine.Now, vcpus.MoveToImmutable(), machine.IoApic.Save(), machine.NextTimerDeadline);
    }

    /// <summary>The first difference from <paramref name="other"/>, as text; null when they are equal.</summary>
    public string? DifferenceFrom(MachineSnapshot other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (Now != other.Now)
        {
            return $"virtual time {Now} became {other.Now}";
        }

        if (Vcpus.Length != other.Vcpus.Length)
        {
            return $"{Vcpus.Length} vCPUs became {other.Vcpus.Length}";
        }

        for (int i = 0; i < Vcpus.Length; i++)
        {
            if (!Equals(Vcpus[i], other.Vcpus[i]))
            {
                return $"vCPU {i} changed: {Vcpus[i]} became {other.Vcpus[i]}";
            }
        }

        if (!Equals(IoApic, other.IoApic))
        {
            return $"the IOAPIC changed: {IoApic} became {other.IoApic}";
        }

        return NextTimerDeadline != other.NextTimerDeadline
            ? $"the next timer deadline {NextTimerDeadline} became {other.NextTimerDeadline}"
            : null;
    }
}
