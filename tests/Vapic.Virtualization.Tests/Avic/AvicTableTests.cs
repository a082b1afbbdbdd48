using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>The physical and logical APIC ID tables, IsRunning, target validity and the AVIC inhibits (reference §3.2-§3.5, §4.1).</summary>
public class AvicTableTests
{
    [Fact]
    public void PhysicalTable_OneValidEntryPerVcpu_IsRunningFollowsHostState()
    {
        var m = new AvicTestMachine(3);
        for (int i = 0; i < 3; i++)
        {
            AvicPhysicalIdEntry e = m.Mode.PhysicalIdTable[(uint)i];
            Assert.True(e.Valid);
            Assert.True(e.IsRunning);
            Assert.Equal(i, e.HostPhysicalApicId);
            Assert.Same(m[i].Apic, e.BackingPage);
            Assert.Equal(i, m.Mode.PhysicalIdTable.IndexOf(i));
            Assert.Equal((3UL << 62) | (uint)i, e.Raw);
        }

        Assert.False(m.Mode.PhysicalIdTable[3].Valid);
        Assert.Equal(0x1FF, m.Mode.PhysicalIdTable.MaxIndex);

        m[1].SetHostState(VcpuHostState.Preempted);
        Assert.False(m.Mode.PhysicalIdTable[1].IsRunning);
        Assert.Equal(1UL << 63 | 1, m.Mode.PhysicalIdTable[1].Raw);

        // Any guest activity of vCPU 1 enters it first (avic_vcpu_load).
        m[1].Accept();
        Assert.True(m.Mode.PhysicalIdTable[1].IsRunning);
    }

    [Fact]
    public void WithoutEnableIpiv_IsRunningNeverSet_EveryIpiIncomplete_KvmDoorbellsRunningTarget()
    {
        var m = new AvicTestMachine(2, features: new AvicFeatures { ExposeIsRunning = false });
        Assert.False(m.Mode.PhysicalIdTable[1].IsRunning);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00B1, destination: 1);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(AvicIncompleteIpiCause.TargetNotRunning, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
    }

    [Fact]
    public void UnmappedPhysicalDestination_InvalidTarget()
    {
        var m = new AvicTestMachine(2);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_00B1, destination: 7);
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(AvicIncompleteIpiCause.InvalidTarget, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.Equal(7u, m.Mode.LastIncompleteIpi!.Value.Index);
    }

    [Fact]
    public void X2ApicDestinationBeyondTable_InvalidTarget()
    {
        var m = new AvicTestMachine(2, x2Apic: true);
        m.SendIpi(0, 0x0000_00B1, destination: 0x1234);
        Assert.Equal(AvicIncompleteIpiCause.InvalidTarget, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.Equal(0x1234u, m.Mode.LastIncompleteIpi!.Value.Index);
    }

    [Fact]
    public void LogicalBitWithoutEntry_InvalidTarget_EvenWhenOtherTargetsAreNotRunning()
    {
        var m = new AvicTestMachine(3);
        m.Write(1, 0x0D0, 0x0200_0000);
        m[1].SetHostState(VcpuHostState.Halted);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_08B1, destination: 0x22); // bits 1 (vCPU 1) and 5 (nobody)
        d.AssertOnly(ExitReason.AvicIncompleteIpi, 1);
        Assert.Equal(AvicIncompleteIpiCause.InvalidTarget, m.Mode.LastIncompleteIpi!.Value.Cause);
        Assert.Equal(5u, m.Mode.LastIncompleteIpi!.Value.Index);

        // KVM emulates the IPI: vCPU 1 gets it and is woken.
        Assert.True(m[1].Apic.Irr.Get(0xB1));
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
    }

    [Fact]
    public void ClusterLogicalIpi_UsesSenderDfrAndClusterIndexing()
    {
        var m = new AvicTestMachine(3);
        for (int i = 0; i < 3; i++)
        {
            m.Write(i, 0x0E0, 0x0FFF_FFFF);
        }

        m.Write(1, 0x0D0, 0x3100_0000); // cluster 3, member 0 → index 12
        m.Write(2, 0x0D0, 0x3400_0000); // cluster 3, member 2 → index 14
        Assert.True(m.Mode.IsAccelerated);
        Assert.Equal(new AvicLogicalIdEntry(1, true), m.Mode.LogicalIdTable[12]);
        Assert.Equal(new AvicLogicalIdEntry(2, true), m.Mode.LogicalIdTable[14]);
        LedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0000_08B2, destination: 0x35);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(2, d.Events(CostEvent.AvicDoorbell));
    }

    [Fact]
    public void XApicIdChange_MovesThePhysicalEntry_AndSetsStickyApicIdModified()
    {
        var m = new AvicTestMachine(2);
        LedgerDelta d = m.Measure();
        m.Write(1, 0x020, 0x0500_0000);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        Assert.True(m.Mode.LastNoAccel!.Value.IsTrap);
        Assert.Equal(1, m.Mode.PhysicalIdTable[5].VcpuIndex);
        Assert.False(m.Mode.PhysicalIdTable[1].Valid);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.False(m.Mode.IsAccelerated);
        Assert.False(m.Mode.PhysicalIdTable[5].IsRunning);

        m.Write(1, 0x020, 0x0100_0000);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.Equal(1, m.Mode.PhysicalIdTable[1].VcpuIndex);
    }

    [Fact]
    public void LogicalIdAliased_SetWhileTwoEnabledApicsShareASlot_ClearedWhenFixed()
    {
        var m = new AvicTestMachine(2);
        m.Write(0, 0x0D0, 0x0100_0000);
        m.Write(1, 0x0D0, 0x0100_0000);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
        Assert.False(m.Mode.IsAccelerated);
        Assert.Equal(new AvicLogicalIdEntry(1, true), m.Mode.LogicalIdTable[0]);

        m.Write(1, 0x0D0, 0x0200_0000);
        Assert.False(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
        Assert.True(m.Mode.IsAccelerated);
        Assert.Equal(new AvicLogicalIdEntry(0, true), m.Mode.LogicalIdTable[0]);
        Assert.Equal(new AvicLogicalIdEntry(1, true), m.Mode.LogicalIdTable[1]);
    }

    [Fact]
    public void LogicalIdAliased_MultiBitLdrOrMixedModels()
    {
        var m = new AvicTestMachine(2);
        m.Write(0, 0x0D0, 0x0300_0000);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
        Assert.False(m.Mode.LogicalIdTable[0].Valid);
        m.Write(0, 0x0D0, 0x0100_0000);
        Assert.False(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));

        // vCPU 1 in the cluster model with an LDR while vCPU 0 is flat.
        m.Write(1, 0x0E0, 0x0FFF_FFFF);
        m.Write(1, 0x0D0, 0x1100_0000);
        Assert.True(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));

        // A software-disabled APIC does not count.
        m.Write(0, 0x0F0, 0x0FF);
        Assert.False(m.Mode.Inhibits.Contains(ApicvInhibit.LogicalIdAliased));
    }

    [Fact]
    public void Init_ClearsTheLogicalEntry()
    {
        var m = new AvicTestMachine(2);
        m.Write(1, 0x0D0, 0x0400_0000);
        Assert.True(m.Mode.LogicalIdTable[2].Valid);
        m.SendIpi(0, 0x0000_4500, destination: 1);
        Assert.Equal(CpuEventKind.Init, m[1].Accept().Kind);
        Assert.False(m.Mode.LogicalIdTable[2].Valid);
    }

    [Fact]
    public void InhibitToggle_ClearsAndRestoresIsRunning_HoldsNothing()
    {
        var m = new AvicTestMachine(2);
        m[1].SetHostState(VcpuHostState.Preempted);
        m.SendIpi(0, 0x0000_00B3, destination: 1);
        Assert.True(m[1].Apic.Irr.Get(0xB3));
        m.Mode.SetInhibit(ApicvInhibit.BlockIrq, true);
        Assert.False(m.Mode.PhysicalIdTable[0].IsRunning);
        Assert.True(m[1].Apic.Irr.Get(0xB3));
        m.Mode.SetInhibit(ApicvInhibit.BlockIrq, false);
        Assert.True(m.Mode.PhysicalIdTable[0].IsRunning);
        Assert.False(m.Mode.PhysicalIdTable[1].IsRunning);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xB3), m[1].Accept());
    }

    [Fact]
    public void X2ApicSvrWrite_RecomputesTheLogicalAliasCheck()
    {
        var m = new AvicTestMachine(2, x2Apic: true);
        Assert.True(m.Mode.IsAccelerated);
        LedgerDelta d = m.Measure();
        m.Write(1, 0x0F0, 0x0FF);
        d.AssertOnly(ExitReason.AvicNoAccel, 1);
        Assert.True(m.Mode.LastNoAccel!.Value.IsTrap);
        Assert.Equal(0x0F0, m.Mode.LastNoAccel!.Value.Offset);
    }

    [Theory]
    [InlineData(0x0000_0000u, true, -1)]
    [InlineData(0x0100_0000u, true, 0)]
    [InlineData(0x8000_0000u, true, 7)]
    [InlineData(0x0300_0000u, true, -1)]
    [InlineData(0x2100_0000u, false, 8)]
    [InlineData(0xE800_0000u, false, 59)]
    [InlineData(0xF100_0000u, false, -1)]
    [InlineData(0x2300_0000u, false, -1)]
    public void LogicalIndexing(uint ldr, bool flat, int index) =>
        Assert.Equal(index, AvicLogicalIdTable.IndexOf(ldr, flat));

    [Fact]
    public void Features_DefaultsAndValidation()
    {
        Assert.Equal(0x1FF, new AvicFeatures().MaxPhysicalIdIndex);
        Assert.Equal(0xFE, new AvicFeatures { X2Avic = false }.MaxPhysicalIdIndex);
        Assert.Null(new AvicFeatures { MaxPhysicalIdIndex = 0xFFF }.Validate());
        Assert.NotNull(new AvicFeatures { MaxPhysicalIdIndex = 0x1000 }.Validate());
        Assert.Throws<ArgumentException>(() => new AvicMode(new AvicFeatures { X2Avic = false, MaxPhysicalIdIndex = 0x1FF }));
        var mode = new AvicMode();
        Assert.Equal("avic", mode.Name);
        Assert.Equal(ApicvInhibitMask.Svm, mode.Inhibits.VendorMask);
    }

    [Fact]
    public void UnalignedAndReservedOffsets_Fault_HighIcrWriteIsAccelerated()
    {
        var m = new AvicTestMachine(1);
        LedgerDelta d = m.Measure();
        m[0].ReadMmio(AvicTestMachine.ApicBase + 0x084, out _);
        m[0].ReadMmio(AvicTestMachine.ApicBase + 0x040, out _);
        m[0].WriteMmio(AvicTestMachine.ApicBase + 0x030, 0);   // VER is read-only
        Assert.Equal(3, m.Mode.NoAccelFaults);
        d.AssertOnly(ExitReason.AvicNoAccel, 3);
        m.Write(0, 0x310, 0x0100_0000);
        Assert.Equal(3, d.TotalExits);
    }
}
