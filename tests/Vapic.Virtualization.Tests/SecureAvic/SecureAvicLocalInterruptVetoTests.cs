using Vapic.Apic;
using Vapic.Machine;
using Vapic.Trace.Replay;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// What a Secure AVIC guest's LAPIC raises through its own LVTs is, on real hardware, injected by
/// the hypervisor that emulates those LVTs (virtualization-reference §7.5: the timer registers and,
/// since v2, every LVT belong to the hypervisor), so ALLOWED_IRR decides fixed vectors and ALLOWEDNMI
/// decides NMIs (§7.4, §7.5; TV58 for the merge rule): a refused one never reaches IRR or the pending
/// events and is counted, while the LVT's own state (the timer) runs on. Other modes deliver the same
/// sequence unchanged.
/// </summary>
public class SecureAvicLocalInterruptVetoTests
{
    private const uint LvtThermal = 0x833;
    private const uint LvtPerformanceCounter = 0x834;
    private const uint LvtLint0 = 0x835;
    private const uint LvtLint1 = 0x836;
    private const uint TscDeadline = 0x6E0;

    /// <summary>LVT delivery mode NMI (bits 10:8 = 100b), edge, unmasked.</summary>
    private const uint NmiDelivery = 0x400;

    /// <summary>The timer vector of the tests: Linux's LOCAL_TIMER_VECTOR, which the driver allows.</summary>
    private const byte TimerVector = 0xEC;

    /// <summary>A vector no source of the driver uses: never in ALLOWED_IRR unless the guest puts it there.</summary>
    private const byte LocalVector = 0x51;

    [Fact]
    public void APeriodicTimerVectorTheGuestWithdrewNeverReachesIrrAndTheTimerRunsOn()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        StartTimer(m, lvt: 0x2_0000u | TimerVector, count: 1000);
        Assert.True(m.State(0).Page.IsAllowed(TimerVector));

        // The guest owns ALLOWED_IRR (TV59): it takes the vector back out of word 7 (0xE0-0xFF).
        SetAllowed(m, 0, TimerVector, allowed: false);
        m.Machine.Advance(1000);

        Assert.False(apic.Irr.Get(TimerVector));
        Assert.Equal(CpuEvent.None, m[0].Accept());
        Assert.Equal(1, m.Mode.Counters.TimerInjections);
        Assert.Equal(1, m.Mode.Counters.TimerInterruptsBlocked);
        Assert.Equal(1, apic.Counters.LocalInterruptsVetoed);
        Assert.StartsWith("vCPU 0's LVT Timer raised vector 0xec", m.Mode.InapplicableReason);

        // The expiry happened: counted as an unmasked one, and the periodic timer re-armed a period later.
        Assert.Equal(1, apic.Counters.TimerExpiries);
        Assert.Equal(0, apic.Counters.TimerExpiriesMasked);
        Assert.Equal(2000, apic.TimerDeadline);
    }

    [Fact]
    public void OnceAllowedTheTimerInterruptArrivesAtItsExactExpiry()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        StartTimer(m, lvt: 0x2_0000u | TimerVector, count: 1000);
        SetAllowed(m, 0, TimerVector, allowed: false);
        m.Machine.Advance(1000);
        Assert.False(apic.Irr.Get(TimerVector));

        m.Machine.Advance(500);
        SetAllowed(m, 0, TimerVector, allowed: true);
        m.Machine.Advance(499);
        Assert.False(apic.Irr.Get(TimerVector));

        m.Machine.Advance(1);
        Assert.Equal(2000, m.Machine.Now);
        Assert.True(apic.Irr.Get(TimerVector));
        Assert.Equal(2, m.Mode.Counters.TimerInjections);
        Assert.Equal(1, m.Mode.Counters.TimerInterruptsBlocked);
        m.TakeAndEoi(0, TimerVector);
    }

    [Fact]
    public void ARefusedOneShotExpiryStillEndsTheCount()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        StartTimer(m, lvt: TimerVector, count: 300);
        SetAllowed(m, 0, TimerVector, allowed: false);

        m.Machine.Advance(300);

        Assert.False(m[0].Apic.Irr.Get(TimerVector));
        Assert.Equal(0UL, m.Read(0, SecureAvicTestMachine.CurrentCount));
        Assert.Equal(long.MaxValue, m[0].Apic.TimerDeadline);
        Assert.Equal(1, m.Mode.Counters.TimerInterruptsBlocked);
    }

    [Fact]
    public void ARefusedTscDeadlineExpiryStillDisarmsTheDeadline()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0x4_0000u | TimerVector);
        SetAllowed(m, 0, TimerVector, allowed: false);
        m.Write(0, TscDeadline, m[0].Apic.GuestTscNow + 700);

        m.Machine.Advance(700);

        Assert.False(m[0].Apic.Irr.Get(TimerVector));
        Assert.Equal(0UL, m.Read(0, TscDeadline));
        Assert.Equal(1, m.Mode.Counters.TimerInterruptsBlocked);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AKernelWithoutTheDriverGetsOnlyTheTimerVectorsTheOldKernelAllowed(bool tearDown)
    {
        // Kernel 1 (with the driver) allowed 0xEC; kexec to a kernel that knows nothing of Secure
        // AVIC and programs its timer with 0xEF. Without teardown Secure AVIC stays on with kernel
        // 1's ALLOWED_IRR and the hypervisor's timer interrupt is dropped; with teardown the vCPU is
        // a plain SEV-SNP guest and gets it.
        const byte secondKernelVector = 0xEF;
        var m = new SecureAvicTestMachine(vcpus: 1);
        StartTimer(m, lvt: TimerVector, count: 0);
        m.Mode.Kexec(tearDown, SecureAvicGuestKernel.Unaware);

        StartTimer(m, lvt: secondKernelVector, count: 100);
        m.Machine.Advance(100);

        Assert.Equal(tearDown, m[0].Apic.Irr.Get(secondKernelVector));
        Assert.Equal(tearDown ? 0 : 1, m.Mode.Counters.TimerInterruptsBlocked);
        Assert.Equal(tearDown ? 0 : 1, m[0].Apic.Counters.LocalInterruptsVetoed);
    }

    [Fact]
    public void AnNmiThroughLint1IsBlockedUntilTheGuestAllowsHypervisorNmis()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        SecureAvicVcpu state = m.State(0);
        m.Write(0, LvtLint1, NmiDelivery);
        m.Mode.WriteControlMsr(m[0], state.ControlMsr & ~SecureAvicControl.AllowedNmi);

        Pulse(apic, pin: 1);

        Assert.Equal(ApicEvents.None, apic.PendingEvents & ApicEvents.Nmi);
        Assert.Equal(CpuEvent.None, m[0].Accept());
        Assert.Equal(1, apic.Counters.LintDeliveries);
        Assert.Equal(1, apic.Counters.LocalInterruptsVetoed);
        Assert.Equal(1, m.Mode.Counters.LvtInterrupts);
        Assert.Equal(1, m.Mode.Counters.LvtInterruptsBlocked);

        m.Mode.WriteControlMsr(m[0], state.ControlMsr | SecureAvicControl.AllowedNmi);
        Pulse(apic, pin: 1);

        Assert.Equal(CpuEventKind.Nmi, m[0].Accept().Kind);
        Assert.Equal(2, m.Mode.Counters.LvtInterrupts);
        Assert.Equal(1, m.Mode.Counters.LvtInterruptsBlocked);
    }

    [Theory]
    [InlineData(LvtEntry.Lint0)]
    [InlineData(LvtEntry.Thermal)]
    [InlineData(LvtEntry.PerformanceCounter)]
    public void AFixedLvtVectorIsDeliveredOnlyOnceTheGuestAllowsIt(LvtEntry source)
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        uint msr = MsrOf(source);
        m.Write(0, msr, LocalVector);

        Raise(apic, source);

        Assert.False(apic.Irr.Get(LocalVector));
        Assert.Equal(1, m.Mode.Counters.LvtInterruptsBlocked);
        Assert.Equal(1, apic.Counters.LocalInterruptsVetoed);
        if (source == LvtEntry.PerformanceCounter)
        {
            // The counter overflowed all the same: LVT Perf masks itself after it fires (SDM LVT note).
            Assert.NotEqual(0u, apic.GetLvt(LvtEntry.PerformanceCounter) & LocalVectorTable.Masked);
            m.Write(0, msr, LocalVector);
        }

        SetAllowed(m, 0, LocalVector, allowed: true);
        Raise(apic, source);

        Assert.Equal(2, m.Mode.Counters.LvtInterrupts);
        Assert.Equal(1, m.Mode.Counters.LvtInterruptsBlocked);
        m.TakeAndEoi(0, LocalVector);
    }

    [Fact]
    public void ARefusedLevelLint0LeavesRemoteIrrClearAndTheStillAssertedLineDeliversOnceAllowed()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        m.Write(0, LvtLint0, 0x8000u | LocalVector);

        apic.SetLint(0, true);

        Assert.False(apic.Irr.Get(LocalVector));
        Assert.Equal(0u, apic.GetLvt(LvtEntry.Lint0) & LocalVectorTable.RemoteIrr);

        SetAllowed(m, 0, LocalVector, allowed: true);
        apic.SetLint(0, true);

        Assert.True(apic.Irr.Get(LocalVector));
        Assert.True(apic.Tmr.Get(LocalVector));
        Assert.NotEqual(0u, apic.GetLvt(LvtEntry.Lint0) & LocalVectorTable.RemoteIrr);
    }

    [Fact]
    public void AVcpuWithoutSecureAvicTakesEveryLocalInterrupt()
    {
        // The driver's teardown and a kernel that does not set Secure AVIC up again.
        var m = new SecureAvicTestMachine(vcpus: 1);
        LocalApic apic = m[0].Apic;
        m.Mode.Kexec(tearDown: true, SecureAvicGuestKernel.Unaware);
        m.Write(0, LvtThermal, LocalVector);
        m.Write(0, LvtLint1, NmiDelivery);

        apic.RaiseThermalInterrupt();
        Pulse(apic, pin: 1);

        Assert.True(apic.Irr.Get(LocalVector));
        Assert.Equal(ApicEvents.Nmi, apic.PendingEvents & ApicEvents.Nmi);
        Assert.Equal(0, apic.Counters.LocalInterruptsVetoed);
        Assert.Equal(0, m.Mode.Counters.LvtInterrupts);
    }

    [Fact]
    public void AReplayWhoseLvtInterruptSecureAvicRefusesSkipsSavicAndPassesInTheOtherModes()
    {
        // A fixed LINT0 interrupt (no Linux guest programs one; the Secure AVIC driver never allows
        // its vector): savic drops it, so it cannot show what emulation shows and is skipped there.
        const string Text = """
            machine vcpus=1 force-x2apic
            0 wrmsr 0x80f 0x1ff
            0 wrmsr 0x835 0x51
            0 lint 0 pulse
            0 accept = 0x51
            0 wrmsr 0x80b 0
            """;
        FileReplayResult result = new ReplaySession(TextWriter.Null, quiet: true).RunText("lint.trace", Text, ReplayMode.Available);

        Assert.Equal(ReplayOutcome.Passed, result.Outcome);
        ModeSkip skip = Assert.Single(result.Skipped);
        Assert.Equal("savic", skip.Mode);
        Assert.Equal(4, skip.Location.Line);
        Assert.Equal("vCPU 0's LVT Lint0 raised vector 0x51, which its ALLOWED_IRR does not hold (the Secure AVIC driver allows device vectors and its timer's): the interrupt was dropped", skip.Reason);
    }

    [Fact]
    public void AllowedLocalInterruptsLeaveTheModeApplicable()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        StartTimer(m, lvt: TimerVector, count: 10);
        m.Write(0, LvtLint1, NmiDelivery);

        m.Machine.Advance(10);
        Pulse(m[0].Apic, pin: 1);

        Assert.Null(m.Mode.InapplicableReason);
        Assert.Equal(0, m[0].Apic.Counters.LocalInterruptsVetoed);
        Assert.Equal(CpuEventKind.Nmi, m[0].Accept().Kind);
        m.TakeAndEoi(0, TimerVector);
    }

    [Fact]
    public void TheVetoIsInTheModeCountersOfReplayStats()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        StartTimer(m, lvt: TimerVector, count: 10);
        SetAllowed(m, 0, TimerVector, allowed: false);
        m.Machine.Advance(10);

        Dictionary<string, long> rows = m.Mode.ModeCounters.ToDictionary(r => r.Key, r => r.Value);

        Assert.Equal(1, rows["timer interrupts"]);
        Assert.Equal(1, rows["timer interrupts blocked"]);
        Assert.Equal(0, rows["other LVT interrupts blocked"]);
        Assert.Equal(0, rows["device NMIs blocked"]);
    }

    /// <summary>
    /// The same guest sequence (timer 0xEC, LINT1 NMI, thermal 0x51) in each mode: every mode but
    /// savic delivers all three; savic delivers the timer (the driver allowed its vector) and the
    /// NMI (ALLOWEDNMI is set at setup), and refuses the thermal vector, which the driver never
    /// allows (Linux allows device vectors and LOCAL_TIMER_VECTOR only).
    /// </summary>
    [Theory]
    [InlineData("emulated")]
    [InlineData("apicv")]
    [InlineData("avic")]
    [InlineData("savic")]
    public void OnlySecureAvicRefusesWhatItsGuestDidNotAllow(string name)
    {
        VirtualizationMode mode = ModeRegistry.Create(name);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ForceX2Apic = true }, mode);
        Vcpu vcpu = machine.GetVcpu(0);
        LocalApic apic = vcpu.Apic;
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.Svr, 0x1FF));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.DivideConfiguration, 0xB));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.LvtTimer, TimerVector));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(LvtLint1, NmiDelivery));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(LvtThermal, LocalVector));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.InitialCount, 100));

        machine.Advance(100);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, TimerVector), vcpu.Accept());
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.Eoi, 0));
        Pulse(apic, pin: 1);
        Assert.Equal(CpuEventKind.Nmi, vcpu.Accept().Kind);
        apic.RaiseThermalInterrupt();

        bool secureAvic = mode is SecureAvicMode;
        Assert.Equal(!secureAvic, apic.Irr.Get(LocalVector));
        Assert.Equal(secureAvic ? 1 : 0, apic.Counters.LocalInterruptsVetoed);
    }

    [Fact]
    public void AMachineWithoutAModeDeliversEveryLocalInterrupt()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ForceX2Apic = true });
        Vcpu vcpu = machine.GetVcpu(0);
        LocalApic apic = vcpu.Apic;
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(SecureAvicTestMachine.Svr, 0x1FF));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(LvtThermal, LocalVector));
        Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(LvtLint1, NmiDelivery));

        apic.RaiseThermalInterrupt();
        Pulse(apic, pin: 1);

        Assert.True(apic.Irr.Get(LocalVector));
        Assert.Equal(ApicEvents.Nmi, apic.PendingEvents & ApicEvents.Nmi);
        Assert.Equal(0, apic.Counters.LocalInterruptsVetoed);
    }

    private static void StartTimer(SecureAvicTestMachine m, uint lvt, uint count)
    {
        m.Write(0, SecureAvicTestMachine.DivideConfiguration, 0xB);
        m.Write(0, SecureAvicTestMachine.LvtTimer, lvt);
        if (count != 0)
        {
            m.Write(0, SecureAvicTestMachine.InitialCount, count);
        }
    }

    /// <summary>The guest sets or clears <paramref name="vector"/> in ALLOWED_IRR of its own page (word vector / 32 at 0x204 + 0x10·word).</summary>
    private static void SetAllowed(SecureAvicTestMachine m, int cpu, byte vector, bool allowed)
    {
        SecureAvicBackingPage page = m.State(cpu).Page;
        int offset = SecureAvicBackingPage.AllowedIrrOffset + (0x10 * (vector >> 5));
        uint bit = 1u << (vector & 31);
        uint word = page.Read(offset);
        Assert.True(page.Write(offset, allowed ? word | bit : word & ~bit));
        Assert.Equal(allowed, page.IsAllowed(vector));
    }

    private static void Pulse(LocalApic apic, int pin)
    {
        apic.SetLint(pin, true);
        apic.SetLint(pin, false);
    }

    private static uint MsrOf(LvtEntry source) => source switch
    {
        LvtEntry.Lint0 => LvtLint0,
        LvtEntry.Thermal => LvtThermal,
        _ => LvtPerformanceCounter,
    };

    private static void Raise(LocalApic apic, LvtEntry source)
    {
        switch (source)
        {
            case LvtEntry.Lint0:
                Pulse(apic, pin: 0);
                break;
            case LvtEntry.Thermal:
                apic.RaiseThermalInterrupt();
                break;
            default:
                apic.RaisePerformanceCounterInterrupt();
                break;
        }
    }
}
