using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// The Secure AVIC scenario vectors TV58-TV64 of virtualization-reference §9, and the backing page,
/// control MSR, setup, ALLOWED_IRR and NMI rules of §7 they rest on.
/// </summary>
public class SecureAvicScenarioTests
{
    // TV58: ALLOWED_IRR[0x41] = 0; the hypervisor requests 0x41: IRR unchanged (the request is dropped).
    [Fact]
    public void Tv58HypervisorRequestOfADisallowedVectorLeavesIrrUnchanged()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        Assert.False(m.State(1).Page.IsAllowed(0x41));
        InterruptBitmap before = m[1].Apic.Irr;

        m.Mode.InjectFromHypervisor(m[1], 0x41);

        Assert.Equal(before, m[1].Apic.Irr);
        Assert.Equal(1, m.Mode.Counters.HypervisorInjections);
        Assert.Equal(1, m.Mode.Counters.HypervisorInjectionsBlocked);
        Assert.Equal(CpuEvent.None, m[1].Accept());
    }

    // TV59: the guest sets bit 1 at 0x224 (ALLOWED_IRR word 2, vectors 64-95): 0x41 is now injectable.
    [Fact]
    public void Tv59GuestSettingBit1At0x224AllowsVector0x41()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicBackingPage page = m.State(1).Page;

        Assert.True(page.Write(0x224, 0x2));

        Assert.True(page.IsAllowed(0x41));
        Assert.Equal(0x2u, page.Read(0x224));
        m.Mode.InjectFromHypervisor(m[1], 0x41);
        Assert.True(m[1].Apic.Irr.Get(0x41));
        Assert.Equal(0, m.Mode.Counters.HypervisorInjectionsBlocked);
        m.TakeAndEoi(1, 0x41);
    }

    // TV60: WRMSR SELF_IPI (0x83F) <- 0xF0: IRR[0xF0] = 1 and no #VC (the hardware accelerates it).
    [Fact]
    public void Tv60SelfIpiSetsIrrWithoutVc()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        long vc = m.Mode.Counters.VcExceptions;
        SecureAvicLedgerDelta d = m.Measure();

        m.Write(0, SecureAvicTestMachine.SelfIpi, 0xF0);

        Assert.True(m[0].Apic.Irr.Get(0xF0));
        Assert.Equal(1u << 16, m.State(0).Page.Read(0x270)); // IRR word 7: vectors 0xE0-0xFF
        Assert.Equal(vc, m.Mode.Counters.VcExceptions);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AcceleratedAccess));
    }

    // TV61: IPI fixed 0xFB to APIC ID 2: the target's page IRR[0xFB] = 1, and one MSR-protocol VMGEXIT (the ICR).
    [Fact]
    public void Tv61IpiSetsTheTargetsPageIrrAndTakesOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 3);
        long vmgexits = m.Mode.Counters.MsrProtocolVmgexits;
        long ipis = m.Mode.Counters.IpisSent;
        SecureAvicLedgerDelta d = m.Measure();

        m.SendIpi(0, 0xFB, destination: 2);

        Assert.Equal(1u << 27, m.State(2).Page.Read(0x270));
        d.AssertVmgexits(1);
        Assert.Equal(vmgexits + 1, m.Mode.Counters.MsrProtocolVmgexits);
        Assert.Equal(ipis + 1, m.Mode.Counters.IpisSent);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell)); // the hypervisor kicks the running target
        m.TakeAndEoi(2, 0xFB);
    }

    // TV62: reading the timer current count: one MSR-protocol VMGEXIT, the value from the hypervisor's timer.
    [Fact]
    public void Tv62TimerCurrentCountReadIsOneVmgexitWithTheHypervisorsValue()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.DivideConfiguration, 0xB); // divide by 1
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0x000100EC);     // masked one-shot
        m.Write(0, SecureAvicTestMachine.InitialCount, 1000);
        m.Machine.Advance(300);
        SecureAvicLedgerDelta d = m.Measure();

        ulong count = m.Read(0, SecureAvicTestMachine.CurrentCount);

        Assert.Equal(700UL, count);
        d.AssertVmgexits(1);
        Assert.Equal(0u, m.State(0).Page.Read(0x390)); // the timer registers are not in the page
    }

    // TV63: EOI of a level vector: the ISR bit is cleared in the page and the EOI goes to the
    // hypervisor in one MSR-protocol VMGEXIT, which completes it at the IOAPIC.
    [Fact]
    public void Tv63LevelEoiClearsIsrAndForwardsTheEoi()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 10, vector: 0x3A, level: true, destination: 1);
        m.Machine.SetIrq(10, true);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x3A), m[1].Accept());
        Assert.True(m[1].Apic.Tmr.Get(0x3A));
        m.Machine.SetIrq(10, false);
        long broadcasts = m.Machine.Counters.EoiBroadcasts;
        SecureAvicLedgerDelta d = m.Measure();

        m.Write(1, SecureAvicTestMachine.Eoi, 0);

        Assert.Equal(0u, m.State(1).Page.Read(0x110)); // ISR word 1: vectors 0x20-0x3F
        d.AssertVmgexits(1);
        Assert.Equal(broadcasts + 1, m.Machine.Counters.EoiBroadcasts);
        Assert.False(new RedirectionEntry(m.Machine.IoApic.GetRedirectionEntry(10)).RemoteIrr);
    }

    // TV64: kexec (disable_local_APIC): control MSR 0, the GPA unregistered (VMGEXIT 0x8000001A, EXITINFO1 = 1).
    [Fact]
    public void Tv64KexecTeardownZeroesTheControlMsrAndUnregistersThePage()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        long registrations = m.Mode.Counters.RegistrationVmgexits;
        SecureAvicLedgerDelta d = m.Measure();

        m.Mode.Kexec(tearDown: true, SecureAvicGuestKernel.Unaware);

        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(0UL, m.State(i).ControlMsr);
            Assert.Null(m.State(i).RegisteredGpa);
            Assert.False(m.State(i).Enabled);
        }

        d.AssertVmgexits(2);
        Assert.Equal(registrations + 2, m.Mode.Counters.RegistrationVmgexits);
        Assert.Equal(2, m.Mode.Counters.Teardowns);
    }

    [Fact]
    public void SetupRegistersEachPageAndEnablesWithTheNmiAllowance()
    {
        var m = new SecureAvicTestMachine(vcpus: 3);
        for (int i = 0; i < 3; i++)
        {
            SecureAvicVcpu s = m.State(i);
            ulong gpa = SecureAvicMode.DefaultBackingPageBase + ((ulong)i * 0x1000);
            Assert.Equal(gpa, s.Page.GuestPhysicalAddress);
            Assert.Equal(gpa, s.RegisteredGpa);
            Assert.Equal(gpa | SecureAvicControl.AllowedNmi | SecureAvicControl.Enable, s.ControlMsr);
            Assert.True(s.NmiAllowed);
        }

        Assert.Equal(3, m.Mode.Counters.Setups);
        Assert.Equal(3, m.Mode.Counters.RegistrationVmgexits);
    }

    [Fact]
    public void SetupHappensWhenTheGuestEntersX2ApicAndCostsTwoVmgexits()
    {
        var mode = new SecureAvicMode();
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1 }, mode);
        Vcpu bsp = machine.GetVcpu(0);
        Assert.False(mode.GetVcpu(0).Enabled);
        var d = new SecureAvicLedgerDelta(mode.Ledger);

        Assert.Equal(ApicAccessResult.Ok, bsp.WriteMsr(ApicBaseMsr.Msr, 0xFEE0_0D00));

        Assert.True(mode.GetVcpu(0).Enabled);

        // The APIC base write itself, then setup: the APIC ID from the hypervisor and the page registration.
        d.AssertVmgexits(3);
        Assert.Null(mode.InapplicableReason);
    }

    [Fact]
    public void TheBackingPageHoldsTheX2ApicRegistersAtTheirMmioOffsets()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.Write(1, SecureAvicTestMachine.Tpr, 0x20);
        SecureAvicBackingPage page = m.State(1).Page;

        Assert.Equal(1u, page.Read(0x020));                        // x2APIC ID
        Assert.Equal(m[1].Apic.Version, page.Read(0x030));
        Assert.Equal(0x20u, page.Read(0x080));                     // TPR
        Assert.Equal(0x20u, page.Read(0x0A0));                     // PPR
        Assert.Equal(0x0000_0002u, page.Read(0x0D0));              // derived LDR: cluster 0, bit 1
        Assert.Equal(0x1FFu, page.Read(0x0F0));                    // SVR
        Assert.Equal(0x0001_0000u, page.Read(0x350));              // LVT LINT0 masked
        Assert.Equal(0u, page.Read(0x320));                        // LVT timer: the hypervisor's
        Assert.Equal(0u, page.Read(SecureAvicBackingPage.NmiRequestOffset));
        Assert.Throws<ArgumentOutOfRangeException>(() => page.Read(0x202));
        Assert.Throws<ArgumentOutOfRangeException>(() => page.Read(0x1000));
        Assert.False(page.Write(0x080, 0x30)); // architectural registers change through the LAPIC
    }

    [Fact]
    public void AllowedIrrWordsSitBetweenTheIrrWords()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        SecureAvicBackingPage page = m.State(0).Page;
        m.Write(0, SecureAvicTestMachine.SelfIpi, 0x21);   // IRR word 1, bit 1
        page.Write(0x214, 0x8000_0000);                    // ALLOWED_IRR word 1, bit 31: vector 0x3F

        Assert.Equal(0x2u, page.Read(0x210));
        Assert.Equal(0x8000_0000u, page.Read(0x214));
        Assert.True(page.IsAllowed(0x3F));
        Assert.False(page.IsAllowed(0x21));
    }

    [Fact]
    public void TheDriverAllowsExactlyTheVectorsItProgramsAndNeverItsIpiVectors()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 4, vector: 0x41, level: false, destination: 1);
        m.SendIpi(0, 0xFB, destination: 1);
        m.TakeAndEoi(1, 0xFB);
        m.SendMsi(destination: 1, vector: 0x42);
        m.TakeAndEoi(1, 0x42);
        m.Write(1, SecureAvicTestMachine.LvtTimer, 0x000100EC);

        InterruptBitmap expected = default;
        expected.Set(0x41);
        expected.Set(0x42);
        expected.Set(0xEC);
        Assert.Equal(expected, m.State(1).Page.AllowedIrr);
        Assert.True(m.State(0).Page.AllowedIrr.IsEmpty);
    }

    // Beyond the RFC: when a vector moves to another vCPU, its ALLOWED_IRR bit leaves the old one.
    [Fact]
    public void AVectorThatMovesIsNoLongerAllowedOnTheVcpuItLeft()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 4, vector: 0x41, level: false, destination: 0);
        Assert.True(m.State(0).Page.IsAllowed(0x41));

        m.ProgramIoApic(pin: 4, vector: 0x41, level: false, destination: 1);

        Assert.False(m.State(0).Page.IsAllowed(0x41));
        Assert.True(m.State(1).Page.IsAllowed(0x41));
        Assert.Equal(1, m.Mode.Counters.AllowancesWithdrawn);
        m.Mode.InjectFromHypervisor(m[0], 0x41);
        Assert.False(m[0].Apic.Irr.Get(0x41));
        m.Pulse(4);
        m.TakeAndEoi(1, 0x41);
    }

    [Fact]
    public void AVectorStaysAllowedWhileAnotherSourceStillSendsItThere()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 4, vector: 0x41, level: false, destination: 0);
        m.ProgramIoApic(pin: 5, vector: 0x41, level: false, destination: 0);

        m.ProgramIoApic(pin: 4, vector: 0x45, level: false, destination: 0);

        Assert.True(m.State(0).Page.IsAllowed(0x41));
        Assert.True(m.State(0).Page.IsAllowed(0x45));
        m.ProgramIoApic(pin: 5, vector: 0x46, level: false, destination: 0);
        Assert.False(m.State(0).Page.IsAllowed(0x41));
    }

    [Fact]
    public void ReprogrammingTheTimerVectorGivesUpTheOldOne()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0xEC);
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0xED);

        Assert.False(m.State(0).Page.IsAllowed(0xEC));
        Assert.True(m.State(0).Page.IsAllowed(0xED));
        Assert.Equal(0xED, m.State(0).AllowedTimerVector);
    }

    [Fact]
    public void TheHypervisorsTimerInterruptArrivesThroughTheAllowedVector()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.DivideConfiguration, 0xB);
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0xEC);
        m.Write(0, SecureAvicTestMachine.InitialCount, 100);

        m.Machine.Advance(100);

        Assert.Equal(1, m.Mode.Counters.TimerInjections);
        Assert.Equal(0, m.Mode.Counters.TimerInterruptsBlocked);
        m.TakeAndEoi(0, 0xEC);
    }

    [Fact]
    public void HypervisorNmiNeedsTheAllowance()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicVcpu s = m.State(1);

        m.Mode.InjectNmiFromHypervisor(m[1]);
        Assert.Equal(CpuEventKind.Nmi, m[1].Accept().Kind);

        m.Mode.WriteControlMsr(m[1], s.ControlMsr & ~SecureAvicControl.AllowedNmi);
        Assert.False(s.NmiAllowed);
        m.Mode.InjectNmiFromHypervisor(m[1]);

        Assert.Equal(ApicEvents.None, m[1].Apic.PendingEvents & ApicEvents.Nmi);
        Assert.Equal(CpuEvent.None, m[1].Accept());
        Assert.Equal(2, m.Mode.Counters.HypervisorNmis);
        Assert.Equal(1, m.Mode.Counters.HypervisorNmisBlocked);
    }

    [Fact]
    public void AGuestNmiIpiSetsTheNmiRequestInTheTargetsPage()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicLedgerDelta d = m.Measure();

        m.SendIpi(0, 0x400, destination: 1);

        Assert.True(m.State(1).Page.NmiRequest);
        Assert.Equal(1u, m.State(1).Page.Read(0x278));
        d.AssertVmgexits(1);
        Assert.Equal(CpuEventKind.Nmi, m[1].Accept().Kind);
        Assert.False(m.State(1).Page.NmiRequest);
    }

    [Fact]
    public void ALogicalIpiIsRefusedCountedAndMakesTheGuestInapplicable()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicLedgerDelta d = m.Measure();

        // x2APIC logical: cluster 0, member bit 1 = vCPU 1; fixed 0x50 and an NMI.
        m.SendIpi(0, 0x0850, destination: 0x2);
        m.SendIpi(0, 0x0C00, destination: 0x2);

        Assert.False(m[1].Apic.Irr.Get(0x50));
        Assert.Equal(ApicEvents.None, m[1].Apic.PendingEvents & ApicEvents.Nmi);
        Assert.Equal(2, m.Mode.Counters.LogicalIpisRefused);
        Assert.Equal(0, d.TotalExits);
        Assert.StartsWith("physical destinations only", m.Mode.InapplicableReason);
    }

    [Fact]
    public void ARefusedLogicalNmiLeavesAnNmiThatWasAlreadyPending()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.SendIpi(0, 0x400, destination: 1);            // physical NMI: pending on vCPU 1
        m.SendIpi(0, 0x0C00, destination: 0x2);         // logical NMI: refused

        Assert.Equal(ApicEvents.Nmi, m[1].Apic.PendingEvents & ApicEvents.Nmi);
    }

    [Fact]
    public void XApicMmioMakesTheGuestInapplicable()
    {
        var mode = new SecureAvicMode();
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1 }, mode);
        machine.GetVcpu(0).ReadMmio(0xFEE0_0030, out _);
        Assert.StartsWith("x2APIC only", mode.InapplicableReason);
    }

    [Fact]
    public void ALapicAccessBeforeX2ApicMakesTheGuestInapplicable()
    {
        var mode = new SecureAvicMode();
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1 }, mode);
        machine.GetVcpu(0).WriteCr8(1);
        Assert.StartsWith("x2APIC only", mode.InapplicableReason);
    }

    [Fact]
    public void X2ApicMmioAndIoApicAccessesKeepTheGuestApplicable()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        Assert.Equal(ApicAccessResult.Unmapped, m[0].ReadMmio(0xFEE0_0030, out _));
        m.ProgramIoApic(pin: 2, vector: 0x33, level: false, destination: 0);
        Assert.Null(m.Mode.InapplicableReason);
    }

    [Fact]
    public void LeavingX2ApicTearsDownAndReenteringSetsUpAgainWithTheSameAllowances()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 4, vector: 0x41, level: false, destination: 1);
        Assert.True(m.State(1).Page.IsAllowed(0x41));

        m.Write(1, ApicBaseMsr.Msr, 0xFEE0_0000); // x2APIC -> disabled
        Assert.False(m.State(1).Enabled);
        Assert.Null(m.State(1).RegisteredGpa);
        Assert.False(m.State(1).Page.IsAllowed(0x41));

        m.Write(1, ApicBaseMsr.Msr, 0xFEE0_0800); // -> xAPIC
        m.Write(1, ApicBaseMsr.Msr, 0xFEE0_0C00); // -> x2APIC: setup again
        Assert.True(m.State(1).Enabled);
        Assert.True(m.State(1).Page.IsAllowed(0x41));
        m.Write(1, SecureAvicTestMachine.Svr, 0x1FF);
        m.Pulse(4);
        m.TakeAndEoi(1, 0x41);
        Assert.Null(m.Mode.InapplicableReason);
    }

    [Fact]
    public void AnIpiToAHaltedTargetWakesIt()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m[1].SetHostState(VcpuHostState.Halted);
        SecureAvicLedgerDelta d = m.Measure();

        m.SendIpi(0, 0x60, destination: 1);

        d.AssertVmgexits(1);
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(VcpuHostState.Running, m[1].HostState);
        m.TakeAndEoi(1, 0x60);
    }

    [Fact]
    public void TheHypervisorCannotTurnSecureAvicOff()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Mode.SetInhibit(ApicvInhibit.Sev, true);
        m.Mode.SetInhibit(ApicvInhibit.BlockIrq, true);

        Assert.True(m.Mode.IsAccelerated);
        m.Mode.InjectFromHypervisor(m[0], 0x77);
        Assert.False(m[0].Apic.Irr.Get(0x77));
    }
}
