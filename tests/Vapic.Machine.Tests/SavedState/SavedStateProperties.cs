using System.Text;
using CsCheck;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>
/// Saving is invisible: a machine saved to bytes at any point and restored into a fresh machine
/// continues exactly as the uninterrupted one; and no corruption of the bytes can crash the reader,
/// half-restore a machine, or leave one that fails on later operations.
/// </summary>
public sealed class SavedStateProperties
{
    [Fact]
    public void SaveToBytesAndRestore_ContinuesExactlyLikeTheUninterruptedMachine() =>
        Gen.Select(SavedStateMachineSpec.Generator, SavedStateDriver.Steps.Array[2, 120], Gen.Double[0, 1])
            .Sample((spec, steps, splitFraction) =>
            {
                int split = (int)(splitFraction * steps.Length);
                VirtualMachine original = spec.Boot();
                var prefix = new StringBuilder();
                for (int i = 0; i < split; i++)
                {
                    SavedStateDriver.Run(original, steps[i], prefix);
                }

                MachineState saved = original.Save();
                byte[] bytes = SavedStateSerializer.Serialize(saved);
                SavedStateReadResult read = SavedStateSerializer.Deserialize(bytes);
                Assert.True(read.IsSuccess, read.ToString());
                Assert.Equal(saved, read.State);

                VirtualMachine restored = spec.Create();
                SavedStateResult result = restored.Restore(read.State!);
                Assert.True(result.IsSuccess, result.ToString());
                Assert.Equal(bytes, SavedStateSerializer.Serialize(restored.Save()));
                Assert.Equal(SavedStateDriver.DumpAll(original), SavedStateDriver.DumpAll(restored));

                var expected = new StringBuilder();
                var actual = new StringBuilder();
                for (int i = split; i < steps.Length; i++)
                {
                    SavedStateDriver.Run(original, steps[i], expected);
                    SavedStateDriver.Run(restored, steps[i], actual);
                }

                expected.AppendLine(SavedStateDriver.DumpAll(original));
                actual.AppendLine(SavedStateDriver.DumpAll(restored));
                Assert.Equal(expected.ToString(), actual.ToString());
                Assert.Equal(original.Save(), restored.Save());
            }, iter: 400);

    [Fact]
    public void CorruptBytes_NeverThrowAndNeverHalfRestore() =>
        Gen.Select(SavedStateMachineSpec.Generator, SavedStateDriver.Steps.Array[0, 40], SavedStateDriver.Steps.Array[0, 40], Corruption.Generator)
            .Sample((spec, before, after, corruption) =>
            {
                VirtualMachine source = spec.Boot();
                foreach (WorkloadStep step in before)
                {
                    SavedStateDriver.Run(source, step, new StringBuilder());
                }

                byte[] bytes = corruption.Apply(SavedStateSerializer.Serialize(source.Save()));
                SavedStateReadResult read = SavedStateSerializer.Deserialize(bytes);
                if (!read.IsSuccess)
                {
                    Assert.Null(read.State);
                    Assert.InRange(read.Offset, 0, bytes.Length);
                    Assert.False(string.IsNullOrEmpty(read.Message));
                    return;
                }

                // A target that is not at power-on, so that "unchanged" means something.
                VirtualMachine target = spec.Boot();
                foreach (WorkloadStep step in after)
                {
                    SavedStateDriver.Run(target, step, new StringBuilder());
                }

                byte[] targetBefore = SavedStateSerializer.Serialize(target.Save());
                string dumpBefore = SavedStateDriver.DumpAll(target);
                SavedStateResult result = target.Restore(read.State!);
                if (!result.IsSuccess)
                {
                    Assert.False(string.IsNullOrEmpty(result.Field) && result.Error != SavedStateError.Missing, result.ToString());
                    Assert.Equal(targetBefore, SavedStateSerializer.Serialize(target.Save()));
                    Assert.Equal(dumpBefore, SavedStateDriver.DumpAll(target));
                    return;
                }

                // Accepted: the machine holds exactly the decoded state and keeps working.
                Assert.Equal(read.State! with { FormatVersion = SavedStateSerializer.FormatVersion }, target.Save());
                var log = new StringBuilder();
                foreach (WorkloadStep step in after)
                {
                    SavedStateDriver.Run(target, step, log);
                }

                SavedStateDriver.DumpAll(target);
                SavedStateReadResult again = SavedStateSerializer.Deserialize(SavedStateSerializer.Serialize(target.Save()));
                Assert.True(again.IsSuccess, again.ToString());
                Assert.True(spec.Create().Restore(again.State!).IsSuccess);
            }, iter: 1500);
}
