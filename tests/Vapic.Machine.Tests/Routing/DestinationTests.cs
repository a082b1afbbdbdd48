using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// Destination matching across modes (lapic-reference.md §10, §12; SDM "Determining IPI
/// Destination", "Logical Destination Mode", "ICR Operation in x2APIC Mode"; A1, A19-A22).
/// </summary>
public sealed class DestinationTests
{
    [Fact]
    public void PhysicalXApic_AliasedIds_AllReceive() // A1
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(1).Write(Reg.Id, 0x0500_0000);
        machine.GetVcpu(2).Write(Reg.Id, 0x0500_0000);

        machine.GetVcpu(0).SendXApicIpi(0x0500_0000, 0x0000_4051);
        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4052);
        machine.GetVcpu(0).SendXApicIpi(0x0200_0000, 0x0000_4053);

        Assert.Equal([1, 2], machine.WithIrr(0x51));
        Assert.Empty(machine.WithIrr(0x52));
        Assert.Empty(machine.WithIrr(0x53));
    }

    [Fact]
    public void PhysicalXApic_IdWrittenToOneOwnedByAnother_BothReceive()
    {
        // CPU2 takes CPU1's ID 1: both answer to 1 and nobody answers to 2.
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(2).Write(Reg.Id, 0x0100_0000);

        machine.SendMsi(0xFEE0_1000, 0x61);
        machine.SendMsi(0xFEE0_2000, 0x62);

        Assert.Equal([1, 2], machine.WithIrr(0x61));
        Assert.Empty(machine.WithIrr(0x62));
    }

    [Fact]
    public void PhysicalX2Apic_Full32BitDestinations()
    {
        VirtualMachine machine = NewMachine(4, ids: [0, 0x100, 0x1_0000, 0xFFFF_FFFE]);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendX2ApicIpi(0x100, 0x0000_4041);
        cpu0.SendX2ApicIpi(0x1_0000, 0x0000_4042);
        cpu0.SendX2ApicIpi(0xFFFF_FFFE, 0x0000_4043);
        cpu0.SendX2ApicIpi(0x00, 0x0000_4044);
        cpu0.SendX2ApicIpi(0x1_0100, 0x0000_4045);

        Assert.Equal([1], machine.WithIrr(0x41));
        Assert.Equal([2], machine.WithIrr(0x42));
        Assert.Equal([3], machine.WithIrr(0x43));
        Assert.Equal([0], machine.WithIrr(0x44));
        Assert.Empty(machine.WithIrr(0x45));
    }

    [Fact]
    public void PhysicalX2Apic_BroadcastReachesAll_InBothDestinationModes()
    {
        VirtualMachine machine = NewMachine(4, ids: [0, 0x100, 0x1_0000, 0xFFFF_FFFE]);
        machine.EnableAll();

        machine.GetVcpu(2).SendX2ApicIpi(0xFFFF_FFFF, 0x0000_4041);
        machine.GetVcpu(2).SendX2ApicIpi(0xFFFF_FFFF, 0x0000_4842);

        Assert.Equal([0, 1, 2, 3], machine.WithIrr(0x41));
        Assert.Equal([0, 1, 2, 3], machine.WithIrr(0x42));
    }

    /// <summary>ids 0, 1, 0xFF: every LAPIC leaves RESET in x2APIC; CPU0 goes back to xAPIC (ID 0).</summary>
    private static VirtualMachine MixedMachineWithX2ApicIdFF()
    {
        VirtualMachine machine = NewMachine(3, ids: [0, 1, 0xFF]);
        machine.GetVcpu(0).EnterXApic();
        machine.EnableAll();
        Assert.Equal(ApicMode.XApic, machine.GetVcpu(0).Mode());
        Assert.Equal(0u, machine.GetVcpu(0).Read(Reg.Id));
        Assert.Equal(ApicMode.X2Apic, machine.GetVcpu(1).Mode());
        Assert.Equal(ApicMode.X2Apic, machine.GetVcpu(2).Mode());
        return machine;
    }

    [Fact]
    public void XApicSender_PhysicalFF_IsNotBroadcastForX2ApicTargets() // §10 mixed modes, A22
    {
        VirtualMachine machine = MixedMachineWithX2ApicIdFF();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4051);

        // CPU0 (xAPIC) sees a broadcast; CPU2's x2APIC ID is 0xFF; CPU1 (x2APIC ID 1) is not addressed.
        Assert.Equal([0, 2], machine.WithIrr(0x51));
    }

    [Fact]
    public void XApicSender_LogicalFF_IsClusterZeroMembers0To7ForX2ApicTargets()
    {
        VirtualMachine machine = MixedMachineWithX2ApicIdFF();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4851);

        // CPU1 has x2APIC LDR 0x0000_0002 (cluster 0, member bit 1); CPU2 (id 0xFF) has 0x000F_8000.
        Assert.Equal([0, 1], machine.WithIrr(0x51));
    }

    [Fact]
    public void MsiPhysicalFF_IsNotBroadcastForX2ApicTargets() // A22, quirk disabled
    {
        VirtualMachine machine = MixedMachineWithX2ApicIdFF();

        machine.SendMsi(0xFEEF_F000, 0x51);

        Assert.Equal([0, 2], machine.WithIrr(0x51));
    }

    [Fact]
    public void IoApicPhysicalFF_IsNotBroadcastForX2ApicTargets() // A22, quirk disabled
    {
        VirtualMachine machine = MixedMachineWithX2ApicIdFF();
        machine.IoApic.WriteRegister(RteHigh(3), 0xFF00_0000);
        machine.IoApic.WriteRegister(RteLow(3), 0x51);

        machine.SetIrq(3, true);

        Assert.Equal([0, 2], machine.WithIrr(0x51));
    }

    [Fact]
    public void MsiPhysicalFF_ToAllX2ApicMachine_ReachesOnlyIdFF()
    {
        VirtualMachine machine = NewMachine(3, ids: [0, 1, 0xFF]);
        machine.EnableAll();

        machine.SendMsi(0xFEEF_F000, 0x51);

        Assert.Equal([2], machine.WithIrr(0x51));
    }

    [Fact]
    public void LogicalFlat_DestinationBitsSelectLdrBits()
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        machine.GetVcpu(0).Write(Reg.LogicalDestination, 0x0100_0000);
        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x0300_0000); // two bits: answers to 0x01 and 0x02
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0x8000_0000);

        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4841);
        machine.GetVcpu(0).SendXApicIpi(0x0200_0000, 0x0000_4842);
        machine.GetVcpu(0).SendXApicIpi(0x8400_0000, 0x0000_4843);
        machine.GetVcpu(0).SendXApicIpi(0x0400_0000, 0x0000_4844);

        Assert.Equal([0, 1], machine.WithIrr(0x41));
        Assert.Equal([1], machine.WithIrr(0x42));
        Assert.Equal([2], machine.WithIrr(0x43));
        Assert.Empty(machine.WithIrr(0x44));
    }

    [Fact]
    public void LogicalCluster_Cluster15_IsReachedByF0ToFE()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        for (int i = 0; i < 3; i++)
        {
            machine.GetVcpu(i).Write(Reg.DestinationFormat, 0x0FFF_FFFF);
        }

        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0xF100_0000);
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0xF800_0000);

        machine.GetVcpu(0).SendXApicIpi(0xF900_0000, 0x0000_4841);
        machine.GetVcpu(0).SendXApicIpi(0xF200_0000, 0x0000_4842);

        Assert.Equal([1, 2], machine.WithIrr(0x41));
        Assert.Empty(machine.WithIrr(0x42));
    }

    [Theory]
    [InlineData(0x5FFF_FFFFu)]
    [InlineData(0x7FFF_FFFFu)]
    [InlineData(0xEFFF_FFFFu)]
    public void OtherDfrModels_MatchNoLogicalDestinationButTheBroadcast(uint dfr)
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.Write(Reg.DestinationFormat, dfr);
        cpu1.Write(Reg.LogicalDestination, 0x1100_0000);
        Assert.Equal(dfr, cpu1.Read(Reg.DestinationFormat));

        machine.GetVcpu(0).SendXApicIpi(0x1100_0000, 0x0000_4841);
        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4842);
        machine.GetVcpu(0).SendXApicIpi(0x1000_0000, 0x0000_4843);
        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4844);

        Assert.Empty(machine.WithIrr(0x41));
        Assert.Empty(machine.WithIrr(0x42));
        Assert.Empty(machine.WithIrr(0x43));
        Assert.Equal([0, 1], machine.WithIrr(0x44)); // A19: logical 0xFF is a broadcast before LDR/DFR
    }

    [Fact]
    public void LogicalX2Apic_ClusterMustMatchExactly()
    {
        VirtualMachine machine = NewMachine(4, ids: [0x00, 0x0F, 0x10, 0x1F], forceX2Apic: true);
        machine.EnableAll();

        machine.GetVcpu(0).SendX2ApicIpi(0x0000_8001, 0x0000_4841); // cluster 0, members 0 and 15
        machine.GetVcpu(0).SendX2ApicIpi(0x0001_8001, 0x0000_4842); // cluster 1, members 0 and 15
        machine.GetVcpu(0).SendX2ApicIpi(0x0002_FFFF, 0x0000_4843); // cluster 2: empty

        Assert.Equal([0, 1], machine.WithIrr(0x41));
        Assert.Equal([2, 3], machine.WithIrr(0x42));
        Assert.Empty(machine.WithIrr(0x43));
    }

    [Fact]
    public void LogicalX2Apic_IdsThatAliasInTheDerivedLdr_BothReceive()
    {
        // SDM "Logical Destination Mode in x2APIC Mode": LDR = ID[19:4] << 16 | 1 << ID[3:0], so IDs 0x1 and
        // 0x10_0001 both have LDR 0x0000_0002. Each APIC compares the MDA with its own LDR: both accept.
        VirtualMachine machine = NewMachine(3, ids: [0x0, 0x1, 0x10_0001]);
        machine.EnableAll();
        Assert.Equal(2UL, machine.GetVcpu(1).RdMsr(Msr.X2ApicLogicalDestination));
        Assert.Equal(2UL, machine.GetVcpu(2).RdMsr(Msr.X2ApicLogicalDestination));

        machine.GetVcpu(0).SendX2ApicIpi(0x0000_0002, 0x0000_4841);

        Assert.Equal([1, 2], machine.WithIrr(0x41));
    }

    [Fact]
    public void LowestPriority_SkipsSoftwareDisabledCandidates() // A20
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        for (int i = 0; i < 4; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (24 + i));
        }

        machine.GetVcpu(1).Write(Reg.SpuriousVector, 0xFF);

        // Candidates CPU0, CPU2, CPU3: 0x41 mod 3 = 2 → CPU3; 0x42 mod 3 = 0 → CPU0; 0x43 mod 3 = 1 → CPU2.
        machine.GetVcpu(0).SendXApicIpi(0x0F00_0000, 0x0000_4941);
        machine.GetVcpu(0).SendXApicIpi(0x0F00_0000, 0x0000_4942);
        machine.GetVcpu(0).SendXApicIpi(0x0F00_0000, 0x0000_4943);

        Assert.Equal([3], machine.WithIrr(0x41));
        Assert.Equal([0], machine.WithIrr(0x42));
        Assert.Equal([2], machine.WithIrr(0x43));
        Assert.Equal(0, machine.GetVcpu(1).Apic.Counters.DroppedSoftwareDisabled);
    }

    [Fact]
    public void LowestPriority_SkipsGloballyDisabledCandidates()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(1).DisableGlobally();

        // All including self: candidates CPU0 and CPU2; 0x41 mod 2 = 1 → CPU2.
        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, 0x0008_4141);

        Assert.Equal([2], machine.WithIrr(0x41));
    }

    [Fact]
    public void LowestPriority_NoEnabledCandidate_DeliversNothing()
    {
        VirtualMachine machine = NewMachine(3);
        machine.GetVcpu(0).EnableSoftware();
        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x0200_0000);
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0x0400_0000);

        machine.GetVcpu(0).SendXApicIpi(0x0600_0000, 0x0000_4941);

        Assert.Empty(machine.WithIrr(0x41));
        Assert.Equal(1, machine.Counters.LowestPriorityNoCandidate);
    }

    [Fact]
    public void LowestPriority_UsesAscendingVcpuOrderNotLdrOrder()
    {
        // CPU3 owns the lowest LDR bit and CPU0 the highest: arbitration still counts vCPUs in index order.
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        for (int i = 0; i < 4; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (27 - i));
        }

        machine.GetVcpu(0).SendXApicIpi(0x0F00_0000, 0x0000_4940); // 0x40 mod 4 = 0 → CPU0
        machine.GetVcpu(0).SendXApicIpi(0x0F00_0000, 0x0000_4943); // 0x43 mod 4 = 3 → CPU3

        Assert.Equal([0], machine.WithIrr(0x40));
        Assert.Equal([3], machine.WithIrr(0x43));
    }

    [Fact]
    public void LowestPriority_PhysicalSingleDestination_IsNotArbitrated()
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();

        machine.GetVcpu(0).SendXApicIpi(0x0200_0000, 0x0000_4141);

        Assert.Equal([2], machine.WithIrr(0x41));
    }

    [Fact]
    public void LowestPriority_PhysicalFF_IsFixedBroadcast()
    {
        // KVM kvm_irq_delivery_to_apic: physical 0xFF with lowest priority is downgraded to Fixed.
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4141);
        machine.SendMsi(0xFEEF_F000, 0x0000_0142);

        Assert.Equal([0, 1, 2, 3], machine.WithIrr(0x41));
        Assert.Equal([0, 1, 2, 3], machine.WithIrr(0x42));
        Assert.Equal(0, machine.Counters.LowestPriorityNoCandidate);
    }

    [Fact]
    public void LowestPriority_PhysicalFF_FixedBroadcastStillDropsAtSoftwareDisabledApics()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(2).Write(Reg.SpuriousVector, 0xFF);

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4141);

        Assert.Equal([0, 1], machine.WithIrr(0x41));
        Assert.Equal(1, machine.GetVcpu(2).Apic.Counters.DroppedSoftwareDisabled);
    }

    [Fact]
    public void LowestPriority_X2ApicLogicalCluster()
    {
        VirtualMachine machine = NewMachine(4, forceX2Apic: true);
        machine.EnableAll();

        // Cluster 0, members 0-3 = CPUs 0-3; 0x45 mod 4 = 1.
        machine.GetVcpu(0).SendX2ApicIpi(0x0000_000F, 0x0000_4945);

        Assert.Equal([1], machine.WithIrr(0x45));
    }

    [Fact]
    public void GloballyDisabledApic_IsNeverADestination()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(1).DisableGlobally();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4041);
        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4400);

        Assert.Equal([0, 2], machine.WithIrr(0x41));
        Assert.Equal(ApicEvents.None, machine.GetVcpu(1).Apic.PendingEvents);
    }
}
