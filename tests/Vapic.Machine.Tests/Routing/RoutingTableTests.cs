using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// Destinations follow every change of APIC ID, LDR, DFR, mode and software enable: deliver,
/// change, deliver again to the new address (lapic-reference.md §1 A1, §3, §10).
/// </summary>
public sealed class RoutingTableTests
{
    [Fact]
    public void XApicIdChange_MovesThePhysicalAddress()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendXApicIpi(0x0200_0000, 0x0000_4041);
        Assert.Equal([2], machine.WithIrr(0x41));

        machine.GetVcpu(2).Write(Reg.Id, 0x3000_0000);
        cpu0.SendXApicIpi(0x0200_0000, 0x0000_4042);
        cpu0.SendXApicIpi(0x3000_0000, 0x0000_4043);

        Assert.Empty(machine.WithIrr(0x42));
        Assert.Equal([2], machine.WithIrr(0x43));
    }

    [Fact]
    public void LdrChange_MovesTheLogicalAddress()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x0100_0000);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4841);
        Assert.Equal([1], machine.WithIrr(0x41));

        machine.GetVcpu(1).Write(Reg.LogicalDestination, 0x2000_0000);
        machine.GetVcpu(2).Write(Reg.LogicalDestination, 0x0100_0000);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4842);
        cpu0.SendXApicIpi(0x2000_0000, 0x0000_4843);

        Assert.Equal([2], machine.WithIrr(0x42));
        Assert.Equal([1], machine.WithIrr(0x43));
    }

    [Fact]
    public void DfrChange_SwitchesBetweenFlatAndClusterReading()
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.Write(Reg.LogicalDestination, 0x2100_0000);

        // Flat: 0x20 hits LDR bit 5.
        cpu0.SendXApicIpi(0x2000_0000, 0x0000_4841);
        Assert.Equal([1], machine.WithIrr(0x41));

        // Cluster: LDR 0x21 is cluster 2, member bit 0; 0x20 names cluster 2 with no member.
        cpu1.Write(Reg.DestinationFormat, 0x0FFF_FFFF);
        cpu0.SendXApicIpi(0x2000_0000, 0x0000_4842);
        cpu0.SendXApicIpi(0x2100_0000, 0x0000_4843);
        Assert.Empty(machine.WithIrr(0x42));
        Assert.Equal([1], machine.WithIrr(0x43));

        // Back to flat: 0x01 hits LDR bit 0 again.
        cpu1.Write(Reg.DestinationFormat, 0xFFFF_FFFF);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4844);
        Assert.Equal([1], machine.WithIrr(0x44));
    }

    [Fact]
    public void ModeChangeToX2Apic_SwitchesToThe32BitIdAndDerivedLdr()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu2 = machine.GetVcpu(2);
        cpu2.Write(Reg.Id, 0x0900_0000);
        cpu2.Write(Reg.LogicalDestination, 0x8000_0000);

        cpu0.SendXApicIpi(0x0900_0000, 0x0000_4041);
        cpu0.SendXApicIpi(0x8000_0000, 0x0000_4842);
        Assert.Equal([2], machine.WithIrr(0x41));
        Assert.Equal([2], machine.WithIrr(0x42));

        cpu2.EnterX2Apic();

        // In x2APIC mode the ID is the initial ID 2 and the LDR 0x0000_0004; the written values are gone.
        cpu0.SendXApicIpi(0x0900_0000, 0x0000_4043);
        cpu0.SendXApicIpi(0x8000_0000, 0x0000_4844);
        cpu0.SendXApicIpi(0x0200_0000, 0x0000_4045);
        cpu0.SendXApicIpi(0x0400_0000, 0x0000_4846);
        Assert.Empty(machine.WithIrr(0x43));
        Assert.Empty(machine.WithIrr(0x44));
        Assert.Equal([2], machine.WithIrr(0x45));
        Assert.Equal([2], machine.WithIrr(0x46));
    }

    [Fact]
    public void GlobalDisableAndReenable_RemovesThenRestoresWithInitialId()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.Write(Reg.Id, 0x0700_0000);

        cpu1.DisableGlobally();
        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4041);
        cpu0.SendXApicIpi(0xFF00_0000, 0x0000_4042);
        Assert.Equal([0, 2], machine.WithIrr(0x42));
        Assert.Equal(0, cpu1.Apic.Counters.FixedAccepted);

        // disabled → xAPIC rewrites the ID from the initial ID (lapic-reference §3); SVR survived (A15).
        cpu1.EnterXApic();
        Assert.Equal(0x0100_0000u, cpu1.Read(Reg.Id));
        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4043);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4044);
        Assert.Empty(machine.WithIrr(0x43));
        Assert.Equal([1], machine.WithIrr(0x44));
    }

    [Fact]
    public void X2ApicToXApicViaDisabled_RestoresXApicRouting()
    {
        VirtualMachine machine = NewMachine(2, forceX2Apic: false);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.EnterX2Apic();
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4041);
        Assert.Equal([1], machine.WithIrr(0x41));

        cpu1.EnterXApic();
        cpu1.Write(Reg.LogicalDestination, 0x1000_0000);
        cpu0.SendXApicIpi(0x1000_0000, 0x0000_4842);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4043);

        Assert.Equal([1], machine.WithIrr(0x42));
        Assert.Equal([1], machine.WithIrr(0x43));
    }

    [Fact]
    public void SoftwareEnableChange_UpdatesLowestPriorityCandidates()
    {
        VirtualMachine machine = NewMachine(3);
        machine.EnableAll();
        for (int i = 0; i < 3; i++)
        {
            machine.GetVcpu(i).Write(Reg.LogicalDestination, 1u << (24 + i));
        }

        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4943); // 0x43 mod 3 = 1
        Assert.Equal([1], machine.WithIrr(0x43));

        machine.GetVcpu(1).Write(Reg.SpuriousVector, 0xFF);
        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4945); // candidates 0, 2: 0x45 mod 2 = 1
        Assert.Equal([2], machine.WithIrr(0x45));

        machine.GetVcpu(1).Write(Reg.SpuriousVector, 0x1FF);
        cpu0.SendXApicIpi(0x0700_0000, 0x0000_4946); // 0x46 mod 3 = 1
        Assert.Equal([1], machine.WithIrr(0x46));
    }

    [Fact]
    public void InitClearsXApicLdr_SoTheOldLogicalAddressIsGone()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.Write(Reg.LogicalDestination, 0x0200_0000);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4500);
        Assert.Equal(Init, cpu1.Accept());
        cpu1.EnableSoftware();

        cpu0.SendXApicIpi(0x0200_0000, 0x0000_4841);

        Assert.Empty(machine.WithIrr(0x41));
    }

    [Fact]
    public void MachineReset_RestoresPowerOnIdsAndLdrs()
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        machine.GetVcpu(1).Write(Reg.Id, 0x0600_0000);
        machine.GetVcpu(0).SendXApicIpi(0x0600_0000, 0x0000_4041);
        Assert.Equal([1], machine.WithIrr(0x41));

        machine.Reset();
        machine.EnableAll();
        machine.GetVcpu(0).SendXApicIpi(0x0600_0000, 0x0000_4042);
        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4043);

        Assert.Empty(machine.WithIrr(0x42));
        Assert.Equal([1], machine.WithIrr(0x43));
    }

    [Fact]
    public void RepeatedDeliveriesWithoutChanges_DoNotRebuild()
    {
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();
        machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4041);
        long rebuilds = machine.RoutingRebuilds;

        for (int i = 0; i < 10; i++)
        {
            machine.GetVcpu(0).SendXApicIpi(0x0100_0000, 0x0000_4041);
            machine.SendMsi(0xFEE0_2000, 0x42);
        }

        Assert.Equal(rebuilds, machine.RoutingRebuilds);
        machine.GetVcpu(3).Write(Reg.LogicalDestination, 0x1000_0000);
        machine.GetVcpu(0).SendXApicIpi(0x1000_0000, 0x0000_4843);
        Assert.Equal(rebuilds + 1, machine.RoutingRebuilds);
        Assert.Equal([3], machine.WithIrr(0x43));
    }
}
