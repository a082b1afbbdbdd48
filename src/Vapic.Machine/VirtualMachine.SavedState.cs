using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;

namespace Vapic.Machine;

// Saved state of the whole machine (docs/saved-state.md): the clock, every vCPU with its LAPIC, the
// IOAPIC. Restore checks every part against this machine before it changes any.
public sealed partial class VirtualMachine
{
    /// <summary>
    /// Captures the machine at the current virtual time. Nothing changes. Counters are statistics
    /// and are not saved.
    /// </summary>
    /// <exception cref="NotSupportedException">
    /// A virtualization mode is attached: it may hold interrupts (a posted-interrupt descriptor, say)
    /// that the architectural state does not show, so a save would lose them.
    /// </exception>
    public MachineState Save()
    {
        if (Virtualization is not null)
        {
            throw new NotSupportedException("A machine under a virtualization mode cannot be saved: the mode may hold interrupts outside the LAPICs.");
        }

        var vcpus = ImmutableArray.CreateBuilder<VcpuState>(_vcpus.Length);
        foreach (Vcpu vcpu in _vcpus)
        {
            vcpus.Add(vcpu.Save());
        }

        return new MachineState
        {
            Configuration = MachineConfigurationState.From(Options),
            VirtualTime = _now,
            Vcpus = vcpus.MoveToImmutable(),
            IoApic = IoApic.Save(),
        };
    }

    /// <summary>
    /// Replaces the whole machine state with <paramref name="state"/>: the clock is set to its
    /// virtual time, every vCPU and LAPIC and the IOAPIC take their saved state, the timer queue
    /// and the routing tables are rebuilt. All or nothing: the configuration must be this
    /// machine's, APIC IDs unique, and every part valid (see <see cref="ValidateState"/>), or
    /// nothing changes. Counters are kept.
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
        return result;
    }

    /// <summary>
    /// Checks <paramref name="state"/> as <see cref="Restore"/> would, changing nothing: format
    /// version, configuration equal to <see cref="Options"/>, unique APIC IDs, a non-negative
    /// virtual time, one valid vCPU state per vCPU (each LAPIC checked at the saved time) and a
    /// valid IOAPIC state.
    /// </summary>
    public SavedStateResult ValidateState(MachineState state)
    {
        if (state is null)
        {
            return SavedStateResult.Fail(SavedStateError.Missing, "", "no machine state");
        }

        if (Virtualization is not null)
        {
            return SavedStateResult.Fail(SavedStateError.Unsupported, "", "a machine under a virtualization mode cannot be restored");
        }

        if (state.FormatVersion >> 8 != SavedStateSerializer.FormatVersion >> 8 || (state.FormatVersion & 0xFF) > (SavedStateSerializer.FormatVersion & 0xFF))
        {
            return SavedStateResult.Fail(SavedStateError.Unsupported, nameof(state.FormatVersion),
                $"format version {state.FormatVersion >> 8}.{state.FormatVersion & 0xFF} is not readable by version " +
                $"{SavedStateSerializer.FormatVersion >> 8}.{SavedStateSerializer.FormatVersion & 0xFF}");
        }

        SavedStateResult result = ValidateConfiguration(state.Configuration);
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
