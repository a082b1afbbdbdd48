using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>Message-signalled interrupts through the machine (lapic-reference.md §12; §15 #97-#102; A21, A22, A25).</summary>
public sealed class MsiRoutingTests
{
    [Fact]
    public void PhysicalFixedEdge_ReachesTheNamedCpu() // §15 #97
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();

        Assert.Equal(MsiDecodeResult.Ok, machine.SendMsi(0xFEE0_1000, 0x0000_0031));

        Assert.Equal([1], machine.WithIrr(0x31));
        Assert.False(machine.GetVcpu(1).TmrHas(0x31));
        Assert.Equal(1, machine.Counters.MsisRouted);
    }

    [Fact]
    public void LogicalRedirectionHintLevel_IsArbitratedAndSetsTmr() // §15 #98 (A21)
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        machine.GetVcpu(0).Write(Reg.LogicalDestination, 0x0100_0000);
        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x0200_0000);

        machine.SendMsi(0xFEE0_300C, 0x0000_C145);

        Assert.Equal([1], machine.WithIrr(0x45));
        Assert.True(machine.GetVcpu(1).TmrHas(0x45));
    }

    [Fact]
    public void RedirectionHintWithFixedMode_IsArbitratedToo() // A21: KVM arbitrates whenever RH = 1
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        for (int i = 0; i < 3; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (24 + i));
        }

        machine.SendMsi(0xFEE0_700C, 0x0000_0043); // 0x43 mod 3 = 1

        Assert.Equal([1], machine.WithIrr(0x43));
    }

    [Fact]
    public void RedirectionHintPhysical_OnlyTheNamedCpuIsACandidate()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();

        machine.SendMsi(0xFEE0_2008, 0x0000_0140);

        Assert.Equal([2], machine.WithIrr(0x40));
    }

    [Fact]
    public void PhysicalFF_BroadcastsToXApicCpus() // §15 #99
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();

        machine.SendMsi(0xFEEF_F000, 0x0000_0050);

        Assert.Equal([0, 1, 2], machine.WithIrr(0x50));
    }

    [Fact]
    public void NmiMessage_IsTakenAsNmi() // §15 #100
    {
        VirtualMachine machine = NewMachine(1);

        machine.SendMsi(0xFEE0_0000, 0x0000_0400);

        Assert.Equal(Nmi, machine.GetVcpu(0).Accept());
    }

    [Fact]
    public void ExtendedDestinationId_ReachesX2ApicId0x112() // §15 #101
    {
        VirtualMachine machine = NewMachine(2, ids: [0, 0x112]);
        machine.EnableAll();

        machine.SendMsi(0xFEE1_2020, 0x0000_0033);

        Assert.Equal([1], machine.WithIrr(0x33));
    }

    [Fact]
    public void WithoutExtendedDestinationId_AddressBits11To5AreIgnored()
    {
        VirtualMachine machine = NewMachine(2, ids: [0x12, 0x112], extendedDestinationId: false);
        machine.EnableAll();

        machine.SendMsi(0xFEE1_2020, 0x0000_0033);

        Assert.Equal([0], machine.WithIrr(0x33));
    }

    [Theory] // §15 #102 (A25)
    [InlineData(0x0000_0600u)]
    [InlineData(0x0000_0330u)]
    public void ReservedDeliveryMode_DeliversNothing(uint data)
    {
        VirtualMachine machine = NewMachine(1);
        machine.GetVcpu(0).EnableSoftware();

        Assert.Equal(MsiDecodeResult.ReservedDeliveryMode, machine.SendMsi(0xFEE0_0000, data));

        Assert.Equal(None, machine.GetVcpu(0).Accept());
        Assert.Equal(ApicEvents.None, machine.GetVcpu(0).Apic.PendingEvents);
        Assert.True(machine.GetVcpu(0).IrrEmpty());
        Assert.Equal(1, machine.Counters.MsiReservedMode);
        Assert.Equal(0, machine.Counters.MsisRouted);
    }

    [Theory]
    [InlineData(0xFEC0_0000UL)]
    [InlineData(0x1_FEE0_0000UL)]
    public void NonInterruptAddress_IsNotAnInterrupt(ulong address)
    {
        VirtualMachine machine = NewMachine(1);
        machine.GetVcpu(0).EnableSoftware();

        Assert.Equal(MsiDecodeResult.NotInterruptAddress, machine.SendMsi(address, 0x31));

        Assert.True(machine.GetVcpu(0).IrrEmpty());
        Assert.Equal(1, machine.Counters.MsiNotInterruptAddress);
    }

    [Fact]
    public void ExtIntMessage_IsTakenAsExtInt()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);

        machine.SendMsi(0xFEE0_1000, 0x0000_0700);

        Assert.Equal(ExtInt, machine.GetVcpu(1).Accept());
        Assert.Equal(None, machine.GetVcpu(0).Accept());
    }

    [Fact]
    public void SmiAndInitMessages_AreLatched()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);

        machine.SendMsi(0xFEE0_1000, 0x0000_0200);
        machine.SendMsi(0xFEE0_1000, 0x0000_0500);

        Assert.Equal(Smi, machine.GetVcpu(1).Accept());
        Assert.Equal(Init, machine.GetVcpu(1).Accept());
        Assert.Equal(VcpuRunState.WaitForSipi, machine.GetVcpu(1).RunState);
    }

    [Fact]
    public void LevelMsi_EoiIsBroadcastToTheIoApic()
    {
        VirtualMachine machine = NewMachine(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.EnableSoftware();

        machine.SendMsi(0xFEE0_0000, Msi.EncodeData(0x70, DeliveryMode.Fixed, levelTriggered: true));
        Assert.True(cpu0.TmrHas(0x70));
        Assert.Equal(Fixed(0x70), cpu0.Accept());
        cpu0.Eoi();

        Assert.Equal(1, machine.Counters.EoiBroadcasts);
        Assert.Equal(1, machine.IoApic.Counters.EoiBroadcasts);
    }

    [Fact]
    public void LogicalX2ApicCluster_ViaExtendedDestination()
    {
        // x2APIC IDs 0x120..0x123: cluster 0x12, members 0-3; MSI logical destination 0x12 << 16 does not fit
        // in 15 bits, so the MSI reaches x2APIC logical destinations only in cluster 0 (members 0-7 via bits 7:0).
        VirtualMachine machine = NewMachine(4, ids: [0x0, 0x1, 0x2, 0x120]);
        machine.EnableAll();

        machine.SendMsi(Msi.EncodeAddress(0x05, DestinationMode.Logical, redirectionHint: false), 0x0000_0044);

        Assert.Equal([0, 2], machine.WithIrr(0x44));
    }
}
