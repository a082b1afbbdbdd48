using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// IPIs between local APICs written by guests through the ICR (lapic-reference.md §6, §8, §10;
/// §15 #54, #56, #58, #75-#85).
/// </summary>
public sealed class IpiRoutingTests
{
    [Fact]
    public void SoftwareDisabledTarget_DropsFixedButTakesNmi() // §15 #54
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu0.EnableSoftware();

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4040);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4400);

        Assert.True(cpu1.IrrEmpty());
        Assert.Equal(Nmi, cpu1.Accept());
        Assert.Equal(None, cpu1.Accept());
        Assert.Equal(1, cpu1.Apic.Counters.DroppedSoftwareDisabled);
    }

    [Fact]
    public void IllegalVectorIpi_SetsSendErrorAtSenderAndReceiveErrorAtTarget() // §15 #56 (A9)
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4003);

        Assert.Equal(0u, cpu0.Read(Reg.ErrorStatus));
        cpu0.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0x20u, cpu0.Read(Reg.ErrorStatus));
        cpu0.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0u, cpu0.Read(Reg.ErrorStatus));

        cpu1.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0x40u, cpu1.Read(Reg.ErrorStatus));
        Assert.True(cpu1.IrrEmpty());
        Assert.True(cpu0.IrrEmpty());
    }

    [Fact]
    public void RepeatedIllegalVectorIpi_RaisesOneErrorInterrupt() // §15 #58 (U7)
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu0.Write(Reg.LvtError, 0xE0);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4003);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4003);

        Assert.Equal([0], machine.WithIrr(0xE0));
        Assert.Equal(1, cpu0.Apic.Counters.FixedAccepted);
        Assert.Equal(0, cpu0.Apic.Counters.Merged);
        Assert.Equal(Fixed(0xE0), cpu0.Accept());
        Assert.Equal(None, cpu0.Accept());
        cpu0.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0x20u, cpu0.Read(Reg.ErrorStatus));
        Assert.True(cpu1.IrrEmpty());
    }

    [Fact]
    public void AllExcludingSelf_ReachesEveryOtherCpu() // §15 #75
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();

        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, 0x000C_4031);

        Assert.Equal([1, 2], machine.WithIrr(0x31));
    }

    [Fact]
    public void PhysicalXApicBroadcast_ReachesAllIncludingSender() // §15 #76
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4041);

        Assert.Equal([0, 1, 2], machine.WithIrr(0x41));
    }

    [Fact]
    public void PhysicalX2ApicBroadcast_ReachesAllIncludingSender() // §15 #77
    {
        VirtualMachine machine = NewMachine(3, forceX2Apic: true);
        machine.EnableAll();

        machine.GetVcpu(0).WrMsr(Msr.X2ApicInterruptCommand, 0xFFFF_FFFF_0000_4041);

        Assert.Equal([0, 1, 2], machine.WithIrr(0x41));
    }

    [Fact]
    public void LogicalFlat_MatchesEveryLdrBitInTheDestination() // §15 #78
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x0200_0000);
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0x0400_0000);

        machine.GetVcpu(0).SendXApicIpi(0x0600_0000, 0x0000_4851);

        Assert.Equal([1, 2], machine.WithIrr(0x51));
    }

    [Theory] // §15 #79
    [InlineData(0x23u, new[] { 1, 2 })]
    [InlineData(0x31u, new[] { 3 })]
    [InlineData(0x24u, new int[0])]
    public void LogicalCluster_MatchesClusterAndMemberBits(uint destination, int[] expected)
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        for (int i = 0; i < 4; i++)
        {
            machine.GetVcpu(i).Write(Reg.DestinationFormat, 0x0FFF_FFFF);
        }

        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x2100_0000);
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0x2200_0000);
        machine.GetVcpu(3).Write(Reg.LogicalDestination, 0x3100_0000);

        machine.GetVcpu(0).SendXApicIpi(destination << 24, 0x0000_4861);

        Assert.Equal(expected, machine.WithIrr(0x61));
        if (expected.Length == 0)
        {
            Assert.Equal(1, machine.Counters.NoDestination);
        }
    }

    [Fact]
    public void LogicalX2ApicCluster_MatchesDerivedLdr() // §15 #80
    {
        VirtualMachine machine = NewMachine(3, ids: [0x10, 0x11, 0x20]);
        for (int i = 0; i < 3; i++)
        {
            machine.GetVcpu(i).EnterX2Apic();
        }

        machine.EnableAll();
        Assert.Equal(0x0001_0001UL, machine.GetVcpu(0).RdMsr(Msr.X2ApicLogicalDestination));
        Assert.Equal(0x0001_0002UL, machine.GetVcpu(1).RdMsr(Msr.X2ApicLogicalDestination));
        Assert.Equal(0x0002_0001UL, machine.GetVcpu(2).RdMsr(Msr.X2ApicLogicalDestination));

        machine.GetVcpu(0).WrMsr(Msr.X2ApicInterruptCommand, 0x0001_0003_0000_4851);

        Assert.Equal([0, 1], machine.WithIrr(0x51));
    }

    [Fact]
    public void LogicalBroadcast_ReachesApicsWithLdrZero() // §15 #81 (A19)
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();

        machine.GetVcpu(0).SendXApicIpi(0xFF00_0000, 0x0000_4861);

        Assert.Equal([0, 1, 2], machine.WithIrr(0x61));
    }

    [Fact]
    public void LowestPriority_PicksVectorModCandidateCount() // §15 #82 (A20)
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        for (int i = 0; i < 4; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (24 + i));
        }

        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.SendXApicIpi(0x0F00_0000, 0x0000_4941);
        cpu0.SendXApicIpi(0x0F00_0000, 0x0000_4942);

        Assert.Equal([1], machine.WithIrr(0x41));
        Assert.Equal([2], machine.WithIrr(0x42));
    }

    [Fact]
    public void SelfNmi_IsDelivered() // §15 #83 (A11)
    {
        VirtualMachine machine = NewMachine(1);
        machine.EnableAll();

        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, 0x0004_4400);

        Assert.Equal(Nmi, machine.GetVcpu(0).Accept());
    }

    [Fact]
    public void LevelTriggeredFixedIpi_IsDeliveredAsEdge() // §15 #84 (A10)
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu1 = machine.GetVcpu(1);

        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_C051);

        Assert.True(cpu1.IrrHas(0x51));
        Assert.False(cpu1.TmrHas(0x51));
    }

    [Fact]
    public void LevelTriggeredIpi_ClearsTmrLeftByAnEarlierLevelInterrupt()
    {
        // An edge arrival clears TMR for its vector (SDM "Interrupt Acceptance for Fixed Interrupts").
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu1 = machine.GetVcpu(1);
        machine.SendMsi(0xFEE0_1000, 0x0000_C051);
        Assert.True(cpu1.TmrHas(0x51));

        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_C051);

        Assert.True(cpu1.IrrHas(0x51));
        Assert.False(cpu1.TmrHas(0x51));
        Assert.Equal(1, cpu1.Apic.Counters.Merged);
    }

    [Fact]
    public void IpiToAbsentId_GoesNowhereAndSetsNoError() // §15 #85
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4051);

        Assert.Empty(machine.WithIrr(0x51));
        cpu0.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0u, cpu0.Read(Reg.ErrorStatus));
        machine.GetVcpu(1).Write(Reg.ErrorStatus, 0);
        Assert.Equal(0u, machine.GetVcpu(1).Read(Reg.ErrorStatus));
        Assert.Equal(1, machine.Counters.NoDestination);
    }

    [Fact]
    public void SelfIpiThroughX2ApicMsr_ReachesOnlyTheSender()
    {
        VirtualMachine machine = NewMachine(3, forceX2Apic: true);
        machine.EnableAll();

        machine.GetVcpu(1).WrMsr(Msr.X2ApicSelfIpi, 0x31);

        Assert.Equal([1], machine.WithIrr(0x31));
    }

    [Fact]
    public void SelfIpiWithIllegalVector_SetsSendAndReceiveErrors()
    {
        // SELF IPI vector 0-15: ESR bits 5 (send) and 6 (receive), nothing in IRR (lapic-reference §10).
        VirtualMachine machine = NewMachine(2, forceX2Apic: true);
        machine.EnableAll();
        Vcpu cpu1 = machine.GetVcpu(1);

        cpu1.WrMsr(Msr.X2ApicSelfIpi, 0x05);

        cpu1.WrMsr(Msr.Of(Reg.ErrorStatus), 0);
        Assert.Equal(0x60UL, cpu1.RdMsr(Msr.Of(Reg.ErrorStatus)));
        Assert.True(cpu1.IrrEmpty());
        Assert.True(machine.GetVcpu(0).IrrEmpty());
    }

    [Fact]
    public void FixedIpi_IsTakenAndRetiredAtTheTarget()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.EnableAll();
        Vcpu cpu1 = machine.GetVcpu(1);

        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4051);
        Assert.Equal(Fixed(0x51), cpu1.Accept());
        Assert.True(cpu1.IsrHas(0x51));
        Assert.Equal(0x50u, cpu1.Read(Reg.ProcessorPriority));
        cpu1.Eoi();
        Assert.False(cpu1.IsrHas(0x51));
        Assert.Equal(0u, cpu1.Read(Reg.ProcessorPriority));
        Assert.Equal(0, machine.Counters.EoiBroadcasts);
    }

    [Fact]
    public void ReservedDeliveryModes_AreNotSent()
    {
        // ICR delivery modes 011 and 111 are reserved: ExtINT is not an IPI (lapic-reference §10).
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4700);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4351);
        cpu0.Write(Reg.InterruptCommandLow, 0x0008_4700);

        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(None, machine.GetVcpu(i).Accept());
            Assert.Equal(ApicEvents.None, machine.GetVcpu(i).Apic.PendingEvents);
        }

        Assert.Empty(machine.WithIrr(0x51));
    }

    [Fact]
    public void X2ApicSender_PhysicalDestinationReachesXApicTargetWithThatId()
    {
        // Mixed modes: the MDA is compared with the target's ID in the target's own mode (KVM kvm_apic_match_dest).
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(0).EnterX2Apic();

        machine.GetVcpu(0).SendX2ApicIpi(2, 0x0000_4051);
        machine.GetVcpu(0).SendX2ApicIpi(0x102, 0x0000_4052);

        Assert.Equal([2], machine.WithIrr(0x51));
        Assert.Empty(machine.WithIrr(0x52));
    }

    [Fact]
    public void X2ApicBroadcast_IsNotABroadcastForXApicTargets()
    {
        // 0xFFFF_FFFF is the x2APIC broadcast; an xAPIC-mode target only treats 0xFF as broadcast.
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        machine.GetVcpu(0).EnterX2Apic();
        machine.GetVcpu(1).EnterX2Apic();

        machine.GetVcpu(0).SendX2ApicIpi(0xFFFF_FFFF, 0x0000_4051);

        Assert.Equal([0, 1], machine.WithIrr(0x51));
    }
}
