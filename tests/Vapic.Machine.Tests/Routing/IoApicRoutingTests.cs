using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// IOAPIC pins through the machine to local APICs and EOIs back (lapic-reference.md §5, §11;
/// §15 #89-#96). Registers are written by a guest CPU through IOREGSEL/IOWIN.
/// </summary>
public sealed class IoApicRoutingTests
{
    private const int Pin = 14;
    private static readonly byte Low14 = RteLow(Pin);   // 0x2C
    private static readonly byte High14 = RteHigh(Pin); // 0x2D

    private static (VirtualMachine Machine, Vcpu Cpu0) EnabledCpu0(byte ioApicVersion = 0x20)
    {
        VirtualMachine machine = NewMachine(1, ioApicVersion: ioApicVersion);
        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.EnableSoftware();
        return (machine, cpu0);
    }

    [Fact]
    public void EdgePin_DeliversFixedEdge() // §15 #89
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0();
        cpu0.IoApicWrite(Low14, 0x76);
        cpu0.IoApicWrite(High14, 0);

        machine.SetIrq(Pin, true);
        machine.SetIrq(Pin, false);

        Assert.True(cpu0.IrrHas(0x76));
        Assert.False(cpu0.TmrHas(0x76));
        Assert.Equal(1, machine.Counters.IoApicMessagesRouted);
    }

    [Fact]
    public void MaskedEdge_IsLost_AndUnmaskDoesNotDeliver() // §15 #90
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0();
        cpu0.IoApicWrite(Low14, 0x0001_0081);

        machine.SetIrq(Pin, true);
        machine.SetIrq(Pin, false);
        Assert.False(cpu0.IrrHas(0x81));

        cpu0.IoApicWrite(Low14, 0x81);
        Assert.False(cpu0.IrrHas(0x81));

        machine.SetIrq(Pin, true);
        Assert.True(cpu0.IrrHas(0x81));
    }

    [Fact]
    public void LevelPin_RemoteIrrAndRedeliveryAtEoi() // §15 #91
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0();
        cpu0.IoApicWrite(Low14, 0x0000_8077);

        machine.SetIrq(Pin, true);
        Assert.True(cpu0.IrrHas(0x77));
        Assert.True(cpu0.TmrHas(0x77));
        Assert.Equal(0x0000_C077u, cpu0.IoApicRead(Low14));

        Assert.Equal(Fixed(0x77), cpu0.Accept());
        cpu0.Eoi();
        Assert.True(cpu0.IrrHas(0x77)); // the line is still high: re-delivered at once
        Assert.Equal(0x0000_C077u, cpu0.IoApicRead(Low14));
        Assert.Equal(1, machine.Counters.EoiBroadcasts);

        machine.SetIrq(Pin, false);
        Assert.Equal(Fixed(0x77), cpu0.Accept());
        cpu0.Eoi();
        Assert.Equal(0x0000_8077u, cpu0.IoApicRead(Low14));
        Assert.Equal(None, cpu0.Accept());
        Assert.True(cpu0.IrrEmpty());
    }

    [Fact]
    public void UnmaskingAssertedLevelPin_Delivers() // §15 #92
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0();
        cpu0.IoApicWrite(Low14, 0x0001_8082);

        machine.SetIrq(Pin, true);
        Assert.False(cpu0.IrrHas(0x82));

        cpu0.IoApicWrite(Low14, 0x0000_8082);
        Assert.True(cpu0.IrrHas(0x82));
        Assert.Equal(0x0000_C082u, cpu0.IoApicRead(Low14));
    }

    /// <summary>§15 #93 starting state: SVR 0x11FF, level vector 0x40 on pin 14 delivered and accepted.</summary>
    private static (VirtualMachine Machine, Vcpu Cpu0) SuppressedEoiWithLevel40InService(byte ioApicVersion = 0x20)
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0(ioApicVersion);
        cpu0.Write(Reg.SpuriousVector, 0x11FF);
        cpu0.IoApicWrite(Low14, 0x0000_8040);
        machine.SetIrq(Pin, true);
        Assert.Equal(Fixed(0x40), cpu0.Accept());
        return (machine, cpu0);
    }

    [Fact]
    public void SuppressedEoiBroadcast_LeavesRemoteIrrForTheEoiRegister() // §15 #93
    {
        (VirtualMachine machine, Vcpu cpu0) = SuppressedEoiWithLevel40InService();
        Assert.Equal(0x11FFu, cpu0.Read(Reg.SpuriousVector));

        machine.SetIrq(Pin, false);
        cpu0.Eoi();
        Assert.Equal(0x0000_C040u, cpu0.IoApicRead(Low14));
        Assert.Equal(0, machine.Counters.EoiBroadcasts);

        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApicBase + 0x40, 0x40));
        Assert.Equal(0x0000_8040u, cpu0.IoApicRead(Low14));
        Assert.True(cpu0.IrrEmpty());
    }

    [Fact]
    public void EoiRegister_WithLineStillHigh_Redelivers() // §15 #94
    {
        (VirtualMachine machine, Vcpu cpu0) = SuppressedEoiWithLevel40InService();
        cpu0.Eoi();
        Assert.False(cpu0.IrrHas(0x40));

        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApicBase + 0x40, 0x40));

        Assert.True(cpu0.IrrHas(0x40));
        Assert.True(cpu0.TmrHas(0x40));
        Assert.Equal(0x0000_C040u, cpu0.IoApicRead(Low14));
        Assert.Equal(Fixed(0x40), cpu0.Accept());
    }

    [Fact]
    public void RewritingLevelEntryAsEdge_ClearsRemoteIrr() // §15 #95
    {
        (VirtualMachine machine, Vcpu cpu0) = EnabledCpu0();
        cpu0.IoApicWrite(Low14, 0x0000_8040);
        machine.SetIrq(Pin, true);
        Assert.Equal(0x0000_C040u, cpu0.IoApicRead(Low14));

        cpu0.IoApicWrite(Low14, 0x0000_0040);

        Assert.Equal(0u, cpu0.IoApicRead(Low14) & (1u << 14));
    }

    [Fact]
    public void EoiRegister_OnVersion11_IsIgnored() // §15 #96
    {
        // Version 0x11 offers no EOI-broadcast suppression (VER bit 24 = 0), so SVR bit 12 does not stick;
        // the LAPIC EOI is therefore not written here, leaving Remote IRR set for the EOI register to try.
        (VirtualMachine machine, Vcpu cpu0) = SuppressedEoiWithLevel40InService(ioApicVersion: 0x11);
        Assert.Equal(0x0005_0014u, cpu0.Read(Reg.Version));
        Assert.Equal(0x01FFu, cpu0.Read(Reg.SpuriousVector));
        machine.SetIrq(Pin, false);

        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApicBase + 0x40, 0x40));

        Assert.Equal(0x0000_C040u, cpu0.IoApicRead(Low14));
        Assert.Equal(1, machine.IoApic.Counters.EoiRegisterWritesIgnored);
    }

    [Fact]
    public void LevelPin_EoiFromTheTargetCpuClearsRemoteIrr_OnAMultiCpuMachine()
    {
        VirtualMachine machine = NewMachine(3);
        machine.StartAllAps();
        machine.EnableAll();
        Vcpu cpu2 = machine.GetVcpu(2);
        machine.IoApic.WriteRegister(High14, 0x0200_0000);
        machine.IoApic.WriteRegister(Low14, 0x0000_8055);

        machine.SetIrq(Pin, true);
        Assert.Equal([2], machine.WithIrr(0x55));
        machine.SetIrq(Pin, false);

        Assert.Equal(Fixed(0x55), cpu2.Accept());
        cpu2.Eoi();
        Assert.Equal(0x0000_8055u, machine.IoApic.ReadRegister(Low14));
        Assert.Equal(1, cpu2.Apic.Counters.EoiBroadcasts);
    }

    [Fact]
    public void LevelPin_LogicalLowestPriority_GoesToTheHashedCpu()
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        for (int i = 0; i < 4; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (24 + i));
        }

        // Logical 0x0F, lowest priority, level, vector 0x4B: 0x4B mod 4 = 3.
        machine.IoApic.WriteRegister(High14, 0x0F00_0000);
        machine.IoApic.WriteRegister(Low14, 0x0000_894B);

        machine.SetIrq(Pin, true);

        Assert.Equal([3], machine.WithIrr(0x4B));
        Assert.True(machine.GetVcpu(3).TmrHas(0x4B));
    }

    [Fact]
    public void LevelPin_ToSoftwareDisabledTarget_IsRefusedAndRetriedWhenReasserted()
    {
        VirtualMachine machine = NewMachine(2);
        machine.GetVcpu(0).EnableSoftware();
        machine.IoApic.WriteRegister(High14, 0x0100_0000);
        machine.IoApic.WriteRegister(Low14, 0x0000_8060);

        machine.SetIrq(Pin, true);
        Assert.Equal(0x0000_8060u, machine.IoApic.ReadRegister(Low14)); // every target refused: no Remote IRR
        Assert.Equal(1, machine.GetVcpu(1).Apic.Counters.DroppedSoftwareDisabled);

        machine.GetVcpu(1).EnableSoftware();
        machine.SetIrq(Pin, true);
        Assert.Equal([1], machine.WithIrr(0x60));
        Assert.Equal(0x0000_C060u, machine.IoApic.ReadRegister(Low14));
    }

    [Fact]
    public void ExtIntPin_IsTakenAsExtInt()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.IoApic.WriteRegister(RteHigh(0), 0x0100_0000);
        machine.IoApic.WriteRegister(RteLow(0), 0x0000_0700);

        machine.SetIrq(0, true);

        Assert.Equal(ExtInt, machine.GetVcpu(1).Accept());
        Assert.Equal(None, machine.GetVcpu(1).Accept());
        Assert.Equal(None, machine.GetVcpu(0).Accept());
    }

    [Fact]
    public void NmiSmiInitPins_AreLatchedAtTheTarget()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.IoApic.WriteRegister(RteHigh(1), 0x0100_0000);
        machine.IoApic.WriteRegister(RteLow(1), 0x0000_0400);
        machine.IoApic.WriteRegister(RteHigh(2), 0x0100_0000);
        machine.IoApic.WriteRegister(RteLow(2), 0x0000_0200);

        machine.SetIrq(1, true);
        machine.SetIrq(2, true);

        Assert.Equal(Smi, machine.GetVcpu(1).Accept());
        Assert.Equal(Nmi, machine.GetVcpu(1).Accept());
        Assert.Equal(None, machine.GetVcpu(1).Accept());
    }

    [Theory]
    [InlineData(0x0000_0300u)]
    [InlineData(0x0000_0600u)]
    public void ReservedDeliveryModePin_DeliversNothing(uint low) // A25
    {
        VirtualMachine machine = NewMachine(1);
        machine.GetVcpu(0).EnableSoftware();
        machine.IoApic.WriteRegister(RteLow(5), low | 0x30);

        machine.SetIrq(5, true);

        Assert.Equal(None, machine.GetVcpu(0).Accept());
        Assert.Equal(0, machine.Counters.IoApicMessagesRouted);
        Assert.Equal(1, machine.IoApic.Counters.ReservedModeDropped);
    }

    [Fact]
    public void ExtendedDestinationId_ReachesX2ApicIdAbove255()
    {
        VirtualMachine machine = NewMachine(2, ids: [0, 0x1A5]);
        machine.EnableAll();

        // RTE bits 55:49 = destination bits 14:8 (0x1), bits 63:56 = 0xA5.
        machine.IoApic.WriteRegister(RteHigh(9), 0xA500_0000 | (0x1u << 17));
        machine.IoApic.WriteRegister(RteLow(9), 0x0000_0066);

        machine.SetIrq(9, true);

        Assert.Equal([1], machine.WithIrr(0x66));
    }

    [Fact]
    public void WithoutExtendedDestinationId_HighBitsAreIgnored()
    {
        VirtualMachine machine = NewMachine(2, ids: [0, 0x1A5], extendedDestinationId: false);
        machine.EnableAll();
        machine.IoApic.WriteRegister(RteHigh(9), 0xA500_0000 | (0x1u << 17));
        machine.IoApic.WriteRegister(RteLow(9), 0x0000_0066);

        machine.SetIrq(9, true);

        Assert.Empty(machine.WithIrr(0x66));
        Assert.Equal(1, machine.Counters.NoDestination);
    }
}
