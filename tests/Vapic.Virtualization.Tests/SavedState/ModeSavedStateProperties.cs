using System.Text;
using CsCheck;
using Vapic.Apic.SavedState;
using Vapic.Machine;
using Vapic.Machine.SavedState;
using Vapic.Testing;
using Xunit;

namespace Vapic.Virtualization.Tests.SavedState;

/// <summary>
/// Saving under a mode is invisible and restoring works under any mode: a machine under mode A
/// runs a random workload, is saved to bytes at a random point and restored into a fresh machine
/// under a random mode B; it then continues with the same remaining operations, and everything its
/// guest observes (access results and values, the events taken in order, every timer expiry to the
/// ns) equals the run of a twin under A that was never saved. The saved machine itself also goes on
/// exactly like that twin, and at the end all three hold the same architectural state.
/// </summary>
public sealed class ModeSavedStateProperties
{
    [Theory]
    [InlineData("emulated")]
    [InlineData("apicv")]
    [InlineData("avic")]
    [InlineData("passthrough")]
    public void SaveAndRestoreUnderAnyMode_ContinuesExactlyLikeTheUninterruptedRun(string firstMode) =>
        Gen.Select(SavedStateMachineSpec.Generator, ModeWorkload.SavableMode, ModeWorkload.Steps.Array[0, 80], ModeWorkload.HoldingSteps.Array[0, 12], ModeWorkload.Steps.Array[1, 80])
            .Sample((spec, restoreMode, prefix, holding, suffix) =>
            {
                // The save comes after a random prefix and a random tail of steps that leave
                // interrupts held for vCPUs out of guest mode (posted to a preempted vCPU, say).
                VirtualMachine reference = spec.Boot(firstMode);
                VirtualMachine original = spec.Boot(firstMode);
                var ignored = new StringBuilder();
                foreach (WorkloadStep step in (WorkloadStep[])[.. prefix, .. holding])
                {
                    ModeWorkload.Run(reference, step, ignored);
                    ModeWorkload.Run(original, step, ignored);
                }

                Assert.Equal(SavedStateResult.Success, original.TrySave(out MachineState? saved));
                byte[] bytes = SavedStateSerializer.Serialize(saved!);
                SavedStateReadResult read = SavedStateSerializer.Deserialize(bytes);
                Assert.True(read.IsSuccess, read.ToString());

                VirtualMachine restored = spec.Create(restoreMode);
                SavedStateResult result = restored.Restore(read.State!);
                Assert.True(result.IsSuccess, result.ToString());

                // Nothing is held right after a restore: saving again gives the same bytes.
                Assert.Equal(bytes, SavedStateSerializer.Serialize(restored.Save()));

                var expected = new StringBuilder();
                var continued = new StringBuilder();
                var actual = new StringBuilder();
                foreach (WorkloadStep step in suffix)
                {
                    ModeWorkload.Run(reference, step, expected);
                    ModeWorkload.Run(original, step, continued);
                    ModeWorkload.Run(restored, step, actual);
                }

                expected.AppendLine(ModeWorkload.DumpAll(reference));
                continued.AppendLine(ModeWorkload.DumpAll(original));
                actual.AppendLine(ModeWorkload.DumpAll(restored));
                Assert.Equal(expected.ToString(), continued.ToString());
                Assert.Equal(expected.ToString(), actual.ToString());

                // The dumps put every vCPU in guest mode, so even the host states agree now.
                MachineState final = reference.Save();
                Assert.Equal(final, original.Save());
                Assert.Equal(final, restored.Save());
            }, iter: 300);
}
