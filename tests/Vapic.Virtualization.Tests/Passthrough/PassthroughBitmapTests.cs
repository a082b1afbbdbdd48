using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// The per-vCPU MSR bitmap follows the guest: everything intercepted in the xAPIC boot phase; after
/// the switch to x2APIC only ID and LDR reads and ICR writes in 0x800-0x8FF (the acceptance,
/// virtualization-reference §6.2 without the thermal row); the TSC MSRs intercepted exactly when the
/// TSC offset is not 0 (§6.4).
/// </summary>
public class PassthroughBitmapTests
{
    private static readonly uint[] s_x2ApicRange = [.. Enumerable.Range(0x800, 0x100).Select(i => (uint)i)];

    [Fact]
    public void BeforeTheSwitch_EveryX2ApicMsrAndTheTscMsrsAreIntercepted()
    {
        var rig = new PassthroughRig(vcpus: 2, switchToX2Apic: false);

        for (int cpu = 0; cpu < 2; cpu++)
        {
            Assert.False(rig.Mode.IsPassthroughActive(cpu));
            PassthroughMsrReport report = Report(rig, cpu);
            Assert.Equal(s_x2ApicRange, report.Read);
            Assert.Equal(s_x2ApicRange, report.Write);
            Assert.Equal([0x3Bu, 0x6E0u], report.TscRead);
            Assert.Equal([0x3Bu, 0x6E0u], report.TscWrite);
        }
    }

    [Fact]
    public void AfterTheSwitch_OnlyIdAndLdrReadsAndIcrWritesAreIntercepted()
    {
        var rig = new PassthroughRig(vcpus: 2);

        for (int cpu = 0; cpu < 2; cpu++)
        {
            Assert.True(rig.Mode.IsPassthroughActive(cpu));
            PassthroughMsrReport report = Report(rig, cpu);
            Assert.Equal([0x802u, 0x80Du], report.Read);
            Assert.Equal([0x830u], report.Write);
            Assert.Empty(report.TscRead);
            Assert.Empty(report.TscWrite);
        }
    }

    [Fact]
    public void AfterTheSwitch_ThePageHasExactlyTheBitsOfTheAcceptance()
    {
        var rig = new PassthroughRig(vcpus: 1);
        var expected = new byte[MsrBitmap.SizeInBytes];
        Array.Fill(expected, (byte)0xFF);
        expected[0x10 / 8] &= 0xFE;                       // IA32_TSC read runs in the guest
        for (int b = 0x100; b < 0x120; b++)
        {
            expected[b] = 0;                              // read 0x800-0x8FF
            expected[2048 + b] = 0;                       // write 0x800-0x8FF
        }

        expected[0x100] = 0x04;                           // read 0x802
        expected[0x101] = 0x20;                           // read 0x80D
        expected[2048 + 0x106] = 0x01;                    // write 0x830
        foreach (int offset in new[] { 0, 2048 })
        {
            expected[offset + (0x6E0 / 8)] &= 0xFE;       // TSC deadline, offset 0
            expected[offset + (0x3B / 8)] &= 0xF7;        // TSC_ADJUST, offset 0
        }

        Assert.Equal(expected, rig.Mode.GetMsrBitmap(0).Bytes.ToArray());
    }

    [Fact]
    public void WithATscOffset_TheTscMsrsStayIntercepted()
    {
        var rig = new PassthroughRig(vcpus: 1, tscOffset: 1_000_000);

        PassthroughMsrReport report = Report(rig, 0);
        Assert.Equal([0x802u, 0x80Du], report.Read);
        Assert.Equal([0x830u], report.Write);
        Assert.Equal([0x3Bu, 0x6E0u], report.TscRead);
        Assert.Equal([0x3Bu, 0x6E0u], report.TscWrite);
    }

    [Fact]
    public void GuestTscWrite_ChangesTheOffsetAndTheBitmapFollows()
    {
        var rig = new PassthroughRig(vcpus: 1);
        MsrBitmap bitmap = rig.Mode.GetMsrBitmap(0);
        Assert.False(bitmap.IsWriteIntercepted(0x6E0));

        // WRMSR IA32_TSC sets the offset to value - now (here 1000 at time 0).
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x10, 1000));
        Assert.Equal(1000, rig[0].Apic.TscOffset);
        Assert.True(bitmap.IsWriteIntercepted(0x6E0));
        Assert.True(bitmap.IsReadIntercepted(0x3B));

        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x10, (ulong)rig.Machine.Now));
        Assert.Equal(0, rig[0].Apic.TscOffset);
        Assert.False(bitmap.IsWriteIntercepted(0x6E0));
    }

    [Fact]
    public void InterceptThermal_AddsTheLvtThermalRegisterBothWays()
    {
        var rig = new PassthroughRig(vcpus: 1, options: new PassthroughOptions { InterceptThermal = true });

        PassthroughMsrReport report = Report(rig, 0);
        Assert.Equal([0x802u, 0x80Du, 0x833u], report.Read);
        Assert.Equal([0x830u, 0x833u], report.Write);
    }

    [Fact]
    public void InterceptIcrRead_AddsTheIcrRead()
    {
        var rig = new PassthroughRig(vcpus: 1, options: new PassthroughOptions { InterceptIcrRead = true });

        Assert.Equal([0x802u, 0x80Du, 0x830u], Report(rig, 0).Read);
    }

    [Fact]
    public void EachVcpuSwitchesOnItsOwn()
    {
        var rig = new PassthroughRig(vcpus: 2, switchToX2Apic: false);
        rig.SwitchToX2Apic(1);

        Assert.False(rig.Mode.IsPassthroughActive(0));
        Assert.True(rig.Mode.IsPassthroughActive(1));
        Assert.True(rig.Mode.GetMsrBitmap(0).IsReadIntercepted(0x808));
        Assert.False(rig.Mode.GetMsrBitmap(1).IsReadIntercepted(0x808));
    }

    [Fact]
    public void LeavingX2Apic_InterceptsEverythingAgain()
    {
        var rig = new PassthroughRig(vcpus: 1);
        long updates = rig.Mode.Counters.BitmapUpdates;

        // x2APIC → disabled (the only way out, SDM "x2APIC State Transitions").
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x1B, 0xFEE0_0100));

        Assert.False(rig.Mode.IsPassthroughActive(0));
        Assert.Equal(s_x2ApicRange, Report(rig, 0).Read);
        Assert.Equal(updates + 1, rig.Mode.Counters.BitmapUpdates);
    }

    [Fact]
    public void ForcedX2Apic_IsPassedThroughFromResetAndAfterInit()
    {
        var rig = new PassthroughRig(vcpus: 2, switchToX2Apic: false, forceX2Apic: true);
        Assert.True(rig.Mode.IsPassthroughActive(0));
        Assert.True(rig.Mode.IsPassthroughActive(1));

        rig.SendIpi(0, 0x0000_4500, 1); // INIT to vCPU 1
        Assert.Equal(CpuEventKind.Init, rig[1].Accept().Kind);

        Assert.True(rig.Mode.IsPassthroughActive(1));
        Assert.Equal([0x802u, 0x80Du], Report(rig, 1).Read);
    }

    [Fact]
    public void MachineReset_GoesBackToTheEmulatedBootPhase()
    {
        var rig = new PassthroughRig(vcpus: 1);

        rig.Machine.Reset();

        Assert.False(rig.Mode.IsPassthroughActive(0));
        Assert.True(rig.Mode.GetMsrBitmap(0).IsWriteIntercepted(0x808));
    }

    [Fact]
    public void Report_BuildsTheMachineAndWritesTheAcceptanceJson()
    {
        PassthroughMsrReport after = PassthroughMsrReport.Build(new MachineOptions { VcpuCount = 1 }, null, switchToX2Apic: true);
        Assert.True(after.GuestInX2Apic);
        Assert.Equal("{\"read\": [\"0x802\", \"0x80d\"], \"write\": [\"0x830\"], \"tsc\": {\"read\": [], \"write\": []}}", after.ToJson());

        PassthroughMsrReport before = PassthroughMsrReport.Build(new MachineOptions { VcpuCount = 3 }, null, switchToX2Apic: false, vcpu: 2);
        Assert.False(before.GuestInX2Apic);
        Assert.Equal(256, before.Read.Count);
        Assert.Equal("0x800-0x8ff", PassthroughMsrReport.DescribeRanges(before.Write));
        Assert.Equal("0x3b, 0x6e0", PassthroughMsrReport.DescribeRanges(before.TscRead));

        PassthroughMsrReport offset = PassthroughMsrReport.Build(new MachineOptions { VcpuCount = 4, TscOffset = -5 }, null, switchToX2Apic: true, vcpu: 3);
        Assert.True(offset.GuestInX2Apic);
        Assert.Equal(-5, offset.TscOffset);
        Assert.Equal("{\"read\": [\"0x802\", \"0x80d\"], \"write\": [\"0x830\"], \"tsc\": {\"read\": [\"0x3b\", \"0x6e0\"], \"write\": [\"0x3b\", \"0x6e0\"]}}", offset.ToJson());
    }

    private static PassthroughMsrReport Report(PassthroughRig rig, int cpu) =>
        PassthroughMsrReport.FromBitmap(rig.Mode.GetMsrBitmap(cpu), cpu, rig.Mode.IsPassthroughActive(cpu), rig[cpu].Apic.TscOffset);
}
