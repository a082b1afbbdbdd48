using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// INIT, INIT de-assert and SIPI between CPUs (lapic-reference.md §4; §15 #39-#45; SDM "MP
/// Initialization Protocol", "Local APIC State After an INIT Reset").
/// </summary>
public sealed class StartupRoutingTests
{
    [Fact]
    public void Sipi_StartsWaitingCpuAtVectorPage() // §15 #39
    {
        VirtualMachine machine = NewMachine(2);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        Assert.Equal(VcpuRunState.WaitForSipi, cpu1.RunState);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4608);

        Assert.Equal(Sipi(0x08), cpu1.Accept());
        Assert.Equal(VcpuRunState.Running, cpu1.RunState);
        Assert.Equal(0x8000UL, cpu1.EntryPoint);
        Assert.Equal((ushort)0x0800, cpu1.CodeSegment);
    }

    [Fact]
    public void SecondSipi_ToRunningCpu_IsIgnored() // §15 #40
    {
        VirtualMachine machine = NewMachine(2);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4608);
        Assert.Equal(Sipi(0x08), cpu1.Accept());

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4609);

        Assert.Equal(None, cpu1.Accept());
        Assert.Equal(VcpuRunState.Running, cpu1.RunState);
        Assert.Equal(0x8000UL, cpu1.EntryPoint);
        Assert.Equal(ApicEvents.None, cpu1.Apic.PendingEvents);
        Assert.Equal(1, machine.Counters.StartupsDiscarded);
    }

    [Fact]
    public void Init_ResetsTargetToInitStateAndWaitForSipi() // §15 #41
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.EnableSoftware();
        cpu1.Write(Reg.TaskPriority, 0x20);
        cpu1.Write(Reg.LogicalDestination, 0x0200_0000);
        cpu1.Write(Reg.LvtTimer, 0x0002_0030);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4500);

        Assert.Equal(Init, cpu1.Accept());
        Assert.Equal(VcpuRunState.WaitForSipi, cpu1.RunState);
        Assert.Equal(0x0100_0000u, cpu1.Read(Reg.Id));
        Assert.Equal(0xFEE0_0800UL, cpu1.RdMsr(Msr.ApicBase));
        Assert.Equal(0xFFu, cpu1.Read(Reg.SpuriousVector));
        Assert.Equal(0u, cpu1.Read(Reg.TaskPriority));
        Assert.Equal(0u, cpu1.Read(Reg.LogicalDestination));
        Assert.Equal(0xFFFF_FFFFu, cpu1.Read(Reg.DestinationFormat));
        Assert.Equal(0x0001_0000u, cpu1.Read(Reg.LvtTimer));
    }

    [Fact]
    public void Init_KeepsX2ApicModeIdAndDerivedLdr() // §15 #42
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu0.EnterX2Apic();
        cpu1.EnterX2Apic();

        cpu0.SendX2ApicIpi(1, 0x0000_4500);

        Assert.Equal(Init, cpu1.Accept());
        Assert.Equal(0xFEE0_0C00UL, cpu1.RdMsr(Msr.ApicBase));
        Assert.Equal(1UL, cpu1.RdMsr(Msr.X2ApicId));
        Assert.Equal(2UL, cpu1.RdMsr(Msr.X2ApicLogicalDestination));
        Assert.Equal(VcpuRunState.WaitForSipi, cpu1.RunState);
    }

    [Fact]
    public void InitDeassert_ToAllIncludingSelf_ChangesNothing() // §15 #43
    {
        VirtualMachine machine = NewMachine(3);
        machine.StartAllAps();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.Write(Reg.InterruptCommandLow, 0x0008_8500);

        for (int i = 0; i < 3; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            Assert.Equal(None, cpu.Accept());
            Assert.Equal(VcpuRunState.Running, cpu.RunState);
            Assert.Equal(ApicEvents.None, cpu.Apic.PendingEvents);
        }

        cpu0.Write(Reg.ErrorStatus, 0);
        Assert.Equal(0u, cpu0.Read(Reg.ErrorStatus));
        Assert.Equal(1, machine.Counters.InitDeassertsIgnored);
        Assert.Equal(0, machine.Counters.InitsTaken);
    }

    [Fact]
    public void InitDeassert_ToWaitingCpu_DoesNotLetASipiIn()
    {
        // A de-assert is not an INIT: an AP that is running stays running and a later SIPI is discarded.
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_8500);
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4610);
        Assert.Equal(None, machine.GetVcpu(1).Accept());
        Assert.Equal(0x8000UL, machine.GetVcpu(1).EntryPoint);
    }

    [Fact]
    public void InitToBsp_RestartsItAtResetVector() // §15 #44 (A17)
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);

        cpu1.SendXApicIpi(0x0000_0000, 0x0000_4500);

        Assert.Equal(Init, cpu0.Accept());
        Assert.Equal(VcpuRunState.Running, cpu0.RunState);
        Assert.Equal(0xFFFF_FFF0UL, cpu0.EntryPoint);
        Assert.Equal((ushort)0xF000, cpu0.CodeSegment);
        Assert.Equal(0xFEE0_0900UL, cpu0.RdMsr(Msr.ApicBase));
    }

    [Fact]
    public void Nmi_ToWaitingCpu_StaysPendingUntilAfterSipi() // §15 #45
    {
        VirtualMachine machine = NewMachine(2);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4400);
        Assert.Equal(None, cpu1.Accept());
        Assert.Equal(VcpuRunState.WaitForSipi, cpu1.RunState);

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4620);
        Assert.Equal(Sipi(0x20), cpu1.Accept());
        Assert.Equal(Nmi, cpu1.Accept());
        Assert.Equal(None, cpu1.Accept());
    }

    [Fact]
    public void BroadcastSipi_StartsOnlyTheWaitingCpus()
    {
        VirtualMachine machine = NewMachine(4);
        machine.StartAp(2, 0x30);
        Vcpu cpu0 = machine.GetVcpu(0);

        // All excluding self: CPU1 and CPU3 wait, CPU2 runs.
        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4640);

        Assert.Equal(Sipi(0x40), machine.GetVcpu(1).Accept());
        Assert.Equal(None, machine.GetVcpu(2).Accept());
        Assert.Equal(0x30000UL, machine.GetVcpu(2).EntryPoint);
        Assert.Equal(Sipi(0x40), machine.GetVcpu(3).Accept());
        Assert.Equal(None, cpu0.Accept());
        Assert.Equal(VcpuRunState.Running, cpu0.RunState);
        Assert.Equal(1, machine.Counters.StartupsDiscarded);
    }

    [Fact]
    public void InitSipiSipi_Broadcast_StartsEveryAp()
    {
        // The MP initialization protocol: INIT, SIPI, SIPI to all excluding self, before any AP runs.
        VirtualMachine machine = NewMachine(3);
        machine.StartAllAps();
        Vcpu cpu0 = machine.GetVcpu(0);
        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4500);
        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4650);
        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4650);

        for (int i = 1; i < 3; i++)
        {
            Vcpu ap = machine.GetVcpu(i);
            Assert.Equal(Init, ap.Accept());
            Assert.Equal(Sipi(0x50), ap.Accept());
            Assert.Equal(None, ap.Accept());
            Assert.Equal(0x50000UL, ap.EntryPoint);
        }

        Assert.Equal(None, cpu0.Accept());
    }

    [Fact]
    public void FixedInterrupt_ToWaitingCpu_IsDroppedBecauseApicIsSoftwareDisabledAfterInit()
    {
        VirtualMachine machine = NewMachine(2);
        machine.StartAp(1);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.EnableSoftware();
        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4500);
        Assert.Equal(Init, cpu1.Accept());

        cpu0.SendXApicIpi(0x0100_0000, 0x0000_4051);

        Assert.False(cpu1.IrrHas(0x51));
        Assert.Equal(1, cpu1.Apic.Counters.DroppedSoftwareDisabled);
    }

    [Fact]
    public void InitAndSipi_ToGloballyDisabledApic_AreDropped()
    {
        VirtualMachine machine = NewMachine(2);
        Vcpu cpu0 = machine.GetVcpu(0);
        Vcpu cpu1 = machine.GetVcpu(1);
        cpu1.DisableGlobally();

        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4500);
        cpu0.Write(Reg.InterruptCommandLow, 0x000C_4608);

        Assert.Equal(None, cpu1.Accept());
        Assert.Equal(VcpuRunState.WaitForSipi, cpu1.RunState);
        Assert.Equal(ApicEvents.None, cpu1.Apic.PendingEvents);
    }
}
