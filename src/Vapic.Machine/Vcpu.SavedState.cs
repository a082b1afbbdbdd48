using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;

namespace Vapic.Machine;

// Saved state of the CPU side (docs/saved-state.md); the LAPIC saves and checks its own state.
public sealed partial class Vcpu
{
    /// <summary>The entry point after RESET, and after INIT of the BSP: the reset vector 0xFFFF_FFF0.</summary>
    internal const ulong ResetEntryPoint = 0xFFFF_FFF0;

    /// <summary>The code segment selector after RESET (CS base 0xFFFF_0000 is implied).</summary>
    internal const ushort ResetCodeSegment = 0xF000;

    /// <summary>Captures this vCPU and its LAPIC at the machine's current time.</summary>
    internal VcpuState Save() => new()
    {
        RunState = RunState,
        EntryPoint = EntryPoint,
        CodeSegment = CodeSegment,
        HostState = HostState,
        Apic = Apic.Save(),
    };

    /// <summary>
    /// Checks the CPU part of <paramref name="state"/>: defined run and host states, and an entry
    /// point that RESET or a SIPI gives (SDM "MP Initialization Protocol": a SIPI with vector VV
    /// starts at VV × 0x1000 with CS = VV &lt;&lt; 8).
    /// </summary>
    internal static SavedStateResult ValidateCpuState(VcpuState state)
    {
        if (state is null)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, "", "no vCPU state");
        }

        if (state.RunState is not (VcpuRunState.Running or VcpuRunState.WaitForSipi))
        {
            return SavedStateResult.Fail(SavedStateError.InvalidValue, nameof(state.RunState), $"run state {(byte)state.RunState} is not defined");
        }

        if (state.HostState is not (VcpuHostState.Running or VcpuHostState.Preempted or VcpuHostState.Halted))
        {
            return SavedStateResult.Fail(SavedStateError.InvalidValue, nameof(state.HostState), $"host state {(byte)state.HostState} is not defined");
        }

        bool reset = state.EntryPoint == ResetEntryPoint && state.CodeSegment == ResetCodeSegment;
        bool startup = (state.CodeSegment & 0xFF) == 0 && state.EntryPoint == (ulong)state.CodeSegment << 4;
        if (!reset && !startup)
        {
            return SavedStateResult.Fail(SavedStateError.Inconsistent, nameof(state.EntryPoint),
                $"entry point 0x{state.EntryPoint:x} with CS 0x{state.CodeSegment:x4} is neither the reset vector nor a SIPI start");
        }

        return SavedStateResult.Success;
    }

    /// <summary>Applies the CPU part of a checked state (the machine restores the LAPIC).</summary>
    internal void RestoreCpuState(VcpuState state)
    {
        RunState = state.RunState;
        EntryPoint = state.EntryPoint;
        CodeSegment = state.CodeSegment;

        // Set directly: a restore is not a host scheduling event; an attached mode rebuilds its
        // structures from the restored host states afterwards (IInterruptVirtualization.OnStateRestored).
        HostState = state.HostState;
    }
}
