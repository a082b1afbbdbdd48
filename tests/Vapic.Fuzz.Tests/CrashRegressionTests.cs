using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>
/// Every input the fuzzer once found failing (<c>fuzz/crashes/TARGET/</c>) passes its target's
/// oracles now: the fix stays fixed.
/// </summary>
public sealed class CrashRegressionTests
{
    [Theory]
    [MemberData(nameof(TargetData.Names), MemberType = typeof(TargetData))]
    public void SavedCrashes_PassNow(string target)
    {
        string folder = FuzzCorpus.CrashDirectory(TargetData.Root, target);
        if (!Directory.Exists(folder))
        {
            // Nothing was ever found for this target.
            return;
        }

        IReadOnlyList<FuzzInput> inputs = FuzzCorpus.Load(folder);
        Smoke.FuzzRunReport report = Smoke.SmokeRunner.Replay(TargetData.Target(target), inputs);
        Assert.Equal(inputs.Count, report.Executions);
        TargetData.AssertPassed(report);
    }

    [Fact]
    public void TheFixedFindingsAreRefusedWithTypedErrors()
    {
        byte[] xen = File.ReadAllBytes(Path.Combine(FuzzCorpus.CrashDirectory(TargetData.Root, "xen"), "known-duplicate-x2apic-ids.xen"));
        Machine.Interop.LapicFileReadResult read = Machine.Interop.LapicStateFile.Read(Machine.Interop.LapicStateFormat.Xen, xen);
        Assert.Equal(Machine.Interop.InteropError.Inconsistent, read.Error);
        Assert.Contains("repeats vCPU 0's", read.Message, StringComparison.Ordinal);

        string lapicFiles = FuzzCorpus.CrashDirectory(TargetData.Root, "lapic-file");
        read = Machine.Interop.LapicStateFile.Read(Machine.Interop.LapicStateFormat.Vapic, File.ReadAllBytes(Path.Combine(lapicFiles, "known-mode-disagrees-with-apic-base.vss")));
        Assert.Equal(Machine.Interop.InteropError.Inconsistent, read.Error);
        read = Machine.Interop.LapicStateFile.Read(Machine.Interop.LapicStateFormat.Vapic, File.ReadAllBytes(Path.Combine(lapicFiles, "known-apic-base-en0-extd1.vss")));
        Assert.Equal(Machine.Interop.InteropError.InvalidApicMode, read.Error);
    }
}
