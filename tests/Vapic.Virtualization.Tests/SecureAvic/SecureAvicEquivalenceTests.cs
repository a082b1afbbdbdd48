using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// Every x2APIC-only scenario of tests/traces passes under Secure AVIC and the guest sees exactly
/// what it sees under plain emulation. A trace Secure AVIC cannot run (xAPIC MMIO, a LAPIC access
/// before x2APIC, a logical-destination IPI) is skipped, and the reason is checked and listed.
/// </summary>
public class SecureAvicEquivalenceTests
{
    private const string X2ApicOnly = "x2APIC only: ";
    private const string PhysicalOnly = "physical destinations only: ";

    public static TheoryData<string> TraceFiles() => TraceSuite.RelativeFiles();

    [Theory]
    [MemberData(nameof(TraceFiles))]
    public void X2ApicOnlyTracePassesAndMatchesEmulation(string relativePath)
    {
        TraceDocument document = TraceSuite.Parse(relativePath);
        ModeRun emulated = TraceSuite.Emulated(document);

        var mode = new SecureAvicMode();
        ModeRun savic = TraceReplayer.Run(document, mode, null, stopWhenInapplicable: true, out int inapplicableAt);
        if (mode.InapplicableReason is string reason)
        {
            // Skipped: the run stopped at the command that showed it, an access by a vCPU; up to
            // there the guest saw what it sees under emulation.
            Assert.Equal(savic.Observations.Length - 1, inapplicableAt);
            TraceCommand at = document.Commands[inapplicableAt];
            Assert.True(reason.StartsWith(X2ApicOnly, StringComparison.Ordinal) || reason.StartsWith(PhysicalOnly, StringComparison.Ordinal), reason);
            Assert.True(at.Cpu >= 0, $"{at.Location}: '{TraceFormatter.Format(at)}' is no guest access");
            Assert.Equal(emulated.Observations[..savic.Observations.Length], savic.Observations);
            TestContext.Current.TestOutputHelper?.WriteLine($"{relativePath}: skipped (savic: {reason}) at {at.Location}");
            return;
        }

        Assert.True(savic.Passed, savic.Failure?.ToString());
        Assert.Equal(emulated.Observations, savic.Observations);
        Assert.Equal(emulated.Stats, savic.Stats);
        Assert.Equal(emulated.Ledger.InterruptsDelivered, savic.Ledger.InterruptsDelivered);
        Assert.Equal(0, mode.Counters.DeviceInterruptsBlocked);
        Assert.Equal(0, mode.Counters.HypervisorInjectionsBlocked);
    }

    [Fact]
    public void TheSecureAvicScenariosAreNeverSkipped()
    {
        string[] files = [.. TraceSuite.Files().Where(f => Path.GetRelativePath(TraceSuite.Root, f).StartsWith("savic", StringComparison.Ordinal))];
        Assert.True(files.Length >= 4);
        foreach (string file in files)
        {
            var mode = new SecureAvicMode();
            ModeRun run = TraceReplayer.Run(TraceSuite.Parse(Path.GetRelativePath(TraceSuite.Root, file)), mode);
            Assert.Null(mode.InapplicableReason);
            Assert.True(run.Passed, run.Failure?.ToString());
            Assert.True(mode.Counters.Setups > 0);
        }
    }

    /// <summary>
    /// Lists every skipped file with its reason, and checks the skips independently: a trace that
    /// runs reads no xAPIC register through MMIO (under emulation every read of the default APIC
    /// page is "unmapped"), and a machine that is in x2APIC from reset is never skipped for a LAPIC
    /// access before x2APIC.
    /// </summary>
    [Fact]
    public void SkippedFilesAreListedWithTheirReason()
    {
        var skipped = new List<string>();
        int applicable = 0;
        foreach (string path in TraceSuite.Files())
        {
            string relative = Path.GetRelativePath(TraceSuite.Root, path);
            TraceDocument document = TraceSuite.Parse(relative);
            var mode = new SecureAvicMode();
            TraceReplayer.Run(document, mode);
            string? reason = mode.InapplicableReason;
            if (reason is not null)
            {
                skipped.Add($"{relative}: {reason}");
                if (document.Machine.StartsInX2ApicMode)
                {
                    Assert.DoesNotContain("before entering x2APIC", reason);
                }

                continue;
            }

            applicable++;
            ModeRun emulated = TraceReplayer.Run(document, new EmulatedMode());
            for (int i = 0; i < document.Commands.Length; i++)
            {
                TraceCommand c = document.Commands[i];
                if (c.Kind == TraceCommandKind.MmioRead && c.A - 0xFEE0_0000UL < 0x1000)
                {
                    Assert.True(emulated.Observations[i] == Observation.Unmapped, $"{c.Location}: the xAPIC page decoded but savic ran the trace");
                }
            }
        }

        foreach (string line in skipped)
        {
            TestContext.Current.TestOutputHelper?.WriteLine("skipped (savic: " + line + ")");
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{applicable} applicable, {skipped.Count} skipped");
        Assert.True(applicable >= 30, $"only {applicable} traces run under savic");
    }
}
