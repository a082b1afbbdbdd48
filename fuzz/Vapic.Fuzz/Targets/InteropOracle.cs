using System.Collections.Immutable;
using Vapic.Apic.SavedState;
using Vapic.Fuzz.Oracles;
using Vapic.Machine.Interop;
using Vapic.Machine.SavedState;

namespace Vapic.Fuzz.Targets;

/// <summary>What every KVM, Xen and Vapic LAPIC file target checks once a reader has answered.</summary>
internal static class InteropOracle
{
    private static readonly LapicStateFormat[] s_formats = [LapicStateFormat.Vapic, LapicStateFormat.Kvm, LapicStateFormat.Xen];

    /// <summary>
    /// A refusal is typed and points inside the input; what was read can be shown
    /// (<c>vapic state show</c>), converted to every format (<c>vapic state convert</c>; a
    /// <see cref="LapicStateFile.Write"/> refusal is the documented <see cref="ArgumentException"/>)
    /// and read back, and restored into a machine all-or-nothing.
    /// </summary>
    public static void Check(LapicStateFormat format, LapicFileReadResult read, ReadOnlySpan<byte> input)
    {
        if (!read.IsSuccess)
        {
            if (!read.Apics.IsDefault || read.Offset < 0 || read.Offset > input.Length || string.IsNullOrEmpty(read.Message))
            {
                throw new FuzzInvariantException($"malformed {format} refusal: {read} ({read.Error}, {input.Length} bytes)");
            }

            return;
        }

        ImmutableArray<LocalApicState> apics = read.Apics;
        if (apics.IsDefaultOrEmpty)
        {
            throw new FuzzInvariantException($"the {format} reader succeeded without an APIC");
        }

        foreach (LocalApicState apic in apics)
        {
            Show(apic);
        }

        foreach (LapicStateFormat to in s_formats)
        {
            byte[] converted;
            try
            {
                converted = LapicStateFile.Write(to, apics);
            }
            catch (ArgumentException)
            {
                // Documented: no Vapic machine has these APICs (repeated or too many IDs); the CLI
                // reports it as a usage error.
                continue;
            }

            LapicFileReadResult back = LapicStateFile.Read(to, converted);
            if (!back.IsSuccess || back.Apics.Length != apics.Length)
            {
                throw new FuzzInvariantException($"{format} → {to} does not read back: {back}");
            }
        }

        MachineState state;
        try
        {
            state = LapicStateFile.ToMachineState(apics);
        }
        catch (ArgumentException)
        {
            return;
        }

        RestoreOracle.CheckOneMode(state, input);
    }

    /// <summary>A single imported APIC: a typed refusal, or a state that shows and restores.</summary>
    public static void Check(LapicImportResult imported, string what, ReadOnlySpan<byte> input)
    {
        if (!imported.IsSuccess)
        {
            if (imported.State is not null || string.IsNullOrEmpty(imported.Message))
            {
                throw new FuzzInvariantException($"malformed {what} refusal: {imported}");
            }

            return;
        }

        LocalApicState state = imported.State ?? throw new FuzzInvariantException($"{what} succeeded without a state");
        Show(state);
        Check(LapicStateFormat.Vapic, new LapicFileReadResult([state], InteropError.None, 0, null), input);
    }

    private static void Show(LocalApicState apic)
    {
        _ = LapicRegisterView.ModeName(apic);
        _ = LapicRegisterView.ApicId(apic);
        foreach (LapicRegister register in LapicRegisterView.Registers(apic))
        {
            _ = register.Decoded.Length;
        }
    }
}
