using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;

namespace Vapic.Machine;

// Saved state of the whole machine (docs/saved-state.md): the clock, every vCPU with its LAPIC, the
// IOAPIC. Restore checks every part against this machine before it changes any. A virtualization
// mode adds nothing to the format (docs/modes.md): it moves what it holds into the LAPICs before a
// save and re-derives its hardware structures after a restore, so a state saved under one mode
// restores under any other.
public sealed partial class VirtualMachine
{
    /// <summary>
    /// Captures the machine at the current virtual time (see <see cref="TrySave"/>). Counters are
    /// statistics and are not saved.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The virtualization mode refused (its host cannot read the guest's interrupt state, as under
    /// Secure AVIC); the message is the typed result's.
    /// </exception>
    public MachineState Save()
    {
        SavedStateResult result = TrySave(out MachineState? state);
        if (!result.IsSuccess)
        {
            throw new InvalidOperationException($"The machine cannot be saved: {result}");
        }

        return state!;
    }

    /// <summary>
    /// Captures the machine at the current virtual time. Under a virtualization mode the mode first
    /// moves what it holds outside the LAPICs (posted interrupts, say) into them, invisibly to the
    /// guest, so that the state is machine-architectural and restores under any mode. Returns
    /// success with the state, or the mode's typed refusal with a null state; a refusal changes
    /// nothing. Nothing guest-visible changes either way.
    /// </summary>
    public SavedStateResult TrySave(out MachineState? state)
    {
        SavedStateResult result = Virtualization?.PrepareForSave() ?? SavedStateResult.Success;
        if (!result.IsSuccess)
        {
            state = null;
            return result;
        }

        var vcpus = ImmutableArray.CreateBuilder<VcpuState>(_vcpus.Length);
        foreach (Vcpu vcpu in _vcpus)
        {
            vcpus.Add(vcpu.Save());
        }

        state = new MachineState
        {
            Configuration = MachineConfigurationState.From(Options),
            VirtualTime = _now,
            Vcpus = vcpus.MoveToImmutable(),
            IoApic = IoApic.Save(),
        };
        return result;
    }

    /// <summary>
    /// Replaces the whole machine state with <paramref name="state"/>: the clock is set to its
    /// virtual time, every vCPU and LAPIC and the IOAPIC take their saved state, the timer queue
    /// and the routing tables are rebuilt. All or nothing: the configuration must be this
    /// machine's, APIC IDs unique, and every part valid (see <see cref="ValidateState"/>), or
    /// nothing changes. Counters are kept. Under a virtualization mode the mode must accept a
    /// restore, and it rebuilds its hardware structures from the restored state last.
    /// </summary>
    public SavedStateResult Restore(MachineState state)
    {
        SavedStateResult result = ValidateState(state);
        if (!result.IsSuccess)
        {
            return result;
        }

        _now = state.VirtualTime;
        for (int i = 0; i < _vcpus.Length; i++)
        {
            Vcpu vcpu = _vcpus[i];
            VcpuState saved = state.Vcpus[i];
            vcpu.RestoreCpuState(saved);
            EnsureRestored(vcpu.Apic.Restore(saved.Apic));
            _timers.Set(i, vcpu.Apic.TimerDeadline);
        }

        EnsureRestored(IoApic.Restore(state.IoApic));
        _timers.Set(_ioApicTimerSource, IoApic.RetriggerDeadline);
        _router.Invalidate();

        // Last, when every architectural part is in place: the mode re-derives its structures from them.
        Virtualization?.OnStateRestored();
        return result;
    }

    /// <summary>
    /// Checks <paramref name="state"/> as <see cref="Restore"/> would, changing nothing: that the
    /// virtualization mode, if any, accepts a restore, the format version, configuration equal to
    /// <see cref="Options"/>, unique APIC IDs, a non-negative virtual time, one valid vCPU state per
    /// vCPU (each LAPIC checked at the saved time) and a valid IOAPIC state.
    /// </summary>
    public SavedStateResult ValidateState(MachineState state)
    {
        if (state is null)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, "", "no machine state");
        }

        SavedStateResult result = Virtualization?.CheckRestore() ?? SavedStateResult.Success;
        if (!result.IsSuccess)
        {
            return result;
        }

        if (state.FormatVersion >> 8 != SavedStateSerializer.FormatVersion >> 8 || (state.FormatVersion & 0xFF) > (SavedStateSerializer.FormatVersion & 0xFF))
        {
            return SavedStateResult.Fail(SavedStateError.Unsupported, nameof(state.FormatVersion),
                $"format version {state.FormatVersion >> 8}.{state.FormatVersion & 0xFF} is not readable by version " +
                $"{SavedStateSerializer.FormatVersion >> 8}.{SavedStateSerializer.FormatVersion & 0xFF}");
        }

        result = ValidateConfiguration(state.Configuration);
        if (!result.IsSuccess)
        {
            return result.WithFieldPrefix(nameof(state.Configuration));
        }

        if (state.VirtualTime < 0)
        {
            return SavedStateResult.Fail(SavedStateError.TimeOutOfRange, nameof(state.VirtualTime), $"virtual time {state.VirtualTime} is before power-on");
        }

        if (state.Vcpus.IsDefault)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, nameof(state.Vcpus), "no vCPU states");
        }

        if (state.Vcpus.Length != _vcpus.Length)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(state.Vcpus),
                $"{state.Vcpus.Length} vCPU states for a machine of {_vcpus.Length} vCPUs");
        }

        for (int i = 0; i < _vcpus.Length; i++)
        {
            VcpuState? saved = state.Vcpus[i];
            result = Vcpu.ValidateCpuState(saved!);
            if (result.IsSuccess)
            {
                result = _vcpus[i].Apic.ValidateState(saved!.Apic, state.VirtualTime).WithFieldPrefix(nameof(VcpuState.Apic));
            }

            if (!result.IsSuccess)
            {
                return result.WithFieldPrefix($"{nameof(state.Vcpus)}[{i}]");
            }
        }

        return IoApic.ValidateState(state.IoApic, state.VirtualTime).WithFieldPrefix(nameof(state.IoApic));
    }

    private SavedStateResult ValidateConfiguration(MachineConfigurationState configuration)
    {
        if (configuration is null || configuration.ApicIds.IsDefault)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, configuration is null ? "" : nameof(configuration.ApicIds), "no machine configuration");
        }

        ImmutableArray<uint> ids = configuration.ApicIds;
        var seen = new HashSet<uint>(ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            if (!seen.Add(ids[i]))
            {
                return SavedStateResult.Fail(SavedStateError.DuplicateApicId, $"{nameof(configuration.ApicIds)}[{i}]",
                    $"APIC ID 0x{ids[i]:x} is given to more than one vCPU");
            }
        }

        if (ids.Length != _vcpus.Length)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.VcpuCount),
                $"saved with {ids.Length} vCPUs, this machine has {_vcpus.Length}");
        }

        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] != Options.ApicIdOf(i))
            {
                return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, $"{nameof(configuration.ApicIds)}[{i}]",
                    $"vCPU {i} was saved with APIC ID 0x{ids[i]:x}, this machine gives it 0x{Options.ApicIdOf(i):x}");
            }
        }

        if (configuration.ForceX2Apic != Options.ForceX2Apic)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.ForceX2Apic),
                $"saved with force-x2apic {(configuration.ForceX2Apic ? "on" : "off")}, this machine has it {(Options.ForceX2Apic ? "on" : "off")}");
        }

        if (configuration.IoApicVersion != Options.IoApicVersion)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.IoApicVersion),
                $"saved with IOAPIC version 0x{configuration.IoApicVersion:x2}, this machine has 0x{Options.IoApicVersion:x2}");
        }

        if (configuration.ExtendedDestinationId != Options.ExtendedDestinationId)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.ExtendedDestinationId),
                "the extended destination ID setting differs from this machine's");
        }

        if (configuration.MaxPhysicalAddressBits != Options.MaxPhysicalAddressBits)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.MaxPhysicalAddressBits),
                $"saved with MAXPHYADDR {configuration.MaxPhysicalAddressBits}, this machine has {Options.MaxPhysicalAddressBits}");
        }

        if (configuration.CpuVendor != Options.CpuVendor)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.CpuVendor),
                $"saved with CPU vendor {configuration.CpuVendor}, this machine has {Options.CpuVendor}");
        }

        if (configuration.TscFrequencyHz != Options.TscFrequencyHz)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.TscFrequencyHz),
                $"saved with a TSC frequency of {configuration.TscFrequencyHz} Hz, this machine has {Options.TscFrequencyHz} Hz");
        }

        if (configuration.ApicTimerFrequencyHz != Options.ApicTimerFrequencyHz)
        {
            return SavedStateResult.Fail(SavedStateError.ConfigurationMismatch, nameof(configuration.ApicTimerFrequencyHz),
                $"saved with an APIC timer frequency of {configuration.ApicTimerFrequencyHz} Hz, this machine has {Options.ApicTimerFrequencyHz} Hz");
        }

        return SavedStateResult.Success;
    }

    private static void EnsureRestored(SavedStateResult result)
    {
        if (!result.IsSuccess)
        {
            // ValidateState checked the same state at the same time; a device refusing it now is a bug here.
            throw new InvalidOperationException($"A checked saved state was refused: {result}");
        }
    }
}
