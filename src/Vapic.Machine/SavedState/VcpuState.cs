using Vapic.Apic.SavedState;

namespace Vapic.Machine.SavedState;

/// <summary>The saved state of one vCPU: its MP run state, where it (re)started, its host state and its local APIC.</summary>
public sealed record VcpuState
{
    /// <summary>Running or waiting for SIPI.</summary>
    public VcpuRunState RunState { get; init; }

    /// <summary>
    /// The entry point: 0xFFFF_FFF0 after RESET or INIT of the BSP, VV × 0x1000 after a SIPI with
    /// vector VV (see <see cref="Vcpu.EntryPoint"/>).
    /// </summary>
    public ulong EntryPoint { get; init; } = Vcpu.ResetEntryPoint;

    /// <summary>The real-mode code segment at the entry point: 0xF000 after RESET, VV &lt;&lt; 8 after SIPI.</summary>
    public ushort CodeSegment { get; init; } = Vcpu.ResetCodeSegment;

    /// <summary>Where the host scheduler has the vCPU.</summary>
    public VcpuHostState HostState { get; init; }

    /// <summary>The vCPU's local APIC.</summary>
    public required LocalApicState Apic { get; init; }
}
