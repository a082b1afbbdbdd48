using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Trace.Replay;
using Vapic.Trace.Syntax;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Vapic.Virtualization.Nested;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>
/// The per-vCPU NESTED inhibit of AMD AVIC (virtualization-reference §4.1 reason 7, §4.2, §5.3;
/// TV44): while a vCPU runs L2, KVM (<c>avic_vcpu_get_apicv_inhibit_reasons</c>) turns AVIC off for
/// that vCPU alone, so its physical APIC ID table entry has IsRunning clear and a peer's IPI to it
/// takes #VMEXIT AVIC_INCOMPLETE_IPI (0x401) with cause 1; leaving L2 turns it back on. The VM-wide
/// set stays empty, the other vCPUs keep AVIC, and Intel APICv (no NESTED in its mask) is unaffected.
/// </summary>
public class AvicNestedInhibitTests
{
    /// <summary>An L2 page L1's EPT leaves out: an L2 access to it exits to L1 (EPT violation).</summary>
    private const ulong NotInEpt = 0x0020_0000;

    /// <summary>An L2 page that is plain L1 RAM: an L2 access to it runs L2 without exit.</summary>
    private const ulong L1Ram = 0x0030_0000;

    private static NestedVmx Nest(VirtualizationMode mode)
    {
        var nested = new NestedVmx(mode);
        nested.L2Translation.Unmap(NotInEpt);
        for (int i = 0; i < mode.Machine.VcpuCount; i++)
        {
            // L2 without APIC virtualization; external interrupts exit to L1 (never touches L1's APIC page).
            nested.GetVmcs12(i).Controls = Vmcs12Controls.EnableEpt | Vmcs12Controls.ExternalInterruptExiting;
        }

        return nested;
    }

    private static void EnterL2(NestedVmx nested, int vcpu)
    {
        Assert.Equal(VmEntryOutcome.EnteredL2, nested.VmLaunch(vcpu).Outcome);
        Assert.True(nested.IsInGuestMode(vcpu));
    }

    private static void ExitToL1(NestedVmx nested, int vcpu)
    {
        L2AccessResult result = nested.L2Read(vcpu, NotInEpt);
        Assert.Equal(L2AccessOutcome.L1Exit, result.Outcome);
        Assert.Equal(L1ExitReason.EptViolation, result.Exit.Reason);
        Assert.False(nested.IsInGuestMode(vcpu));
    }

    private static void AssertNestedInhibited(AvicTestMachine m, int vcpu, bool inhibited)
    {
        AvicPhysicalIdEntry entry = m.Mode.PhysicalIdTable[m[vcpu].Apic.Id];
        Assert.True(entry.Valid);
        Assert.Equal(vcpu, entry.VcpuIndex);
        Assert.Equal(!inhibited, entry.IsRunning);
        Assert.Equal(inhibited ? 0 : AvicPhysicalIdEntry.IsRunningBit, entry.Raw & AvicPhysicalIdEntry.IsRunningBit);
        Assert.Equal(inhibited ? ApicvInhibitMask.Nested : ApicvInhibitMask.None, m.Mode.GetVcpuInhibits(m[vcpu]));
        Assert.Equal(!inhibited, m.Mode.IsAcceleratedFor(m[vcpu]));
    }

    [Fact]
    public void TV44_PeerIpiToVcpuInL2_IncompleteIpiCause1_NoDoorbell_KvmInjectsIt()
    {
        var m = new AvicTestMachine(3);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);

        // NESTED for vCPU 0 only: its entry stays valid with IsRunning (bit 62) clear.
        AssertNestedInhibited(m, 0, inhibited: true);
        AssertNestedInhibited(m, 1, inhibited: false);
        AssertNestedInhibited(m, 2, inhibited: false);
        Assert.Equal(ApicvInhibitMask.None, m.Mode.Inhibits.Reasons);
        Assert.True(m.Mode.IsAccelerated);

        LedgerDelta d = m.Measure();
        long notRunningBefore = m.Mode.IncompleteIpis(AvicIncompleteIpiCause.TargetNotRunning);
        m.SendIpi(1, 0x0000_0041, destination: 0);

        // #VMEXIT 0x401, EXITINFO1 = ICR, EXITINFO2 = cause 1 << 32 | physical ID 0.
        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        AvicIncompleteIpiInfo info = m.Mode.LastIncompleteIpi!.Value;
        Assert.Equal(0x401u, AvicIncompleteIpiInfo.ExitCode);
        Assert.Equal(AvicIncompleteIpiCause.TargetNotRunning, info.Cause);
        Assert.Equal(0u, info.Index);
        Assert.Equal(0x0000_0000_0000_0041UL, info.ExitInfo1);
        Assert.Equal(1UL << 32, info.ExitInfo2);
        Assert.Equal(notRunningBefore + 1, m.Mode.IncompleteIpis(AvicIncompleteIpiCause.TargetNotRunning));

        // The IRR bit is in vCPU 0's page (L1's LAPIC); with its AVIC off KVM raises KVM_REQ_EVENT and
        // kicks it (svm_complete_interrupt_delivery): no doorbell.
        Assert.True(m[0].Apic.Irr.Get(0x41));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(2, d.TotalExits);

        // KVM injects it, as in emulation; the vCPU is still in L2 and still inhibited.
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), m[0].Accept());
        Assert.Equal(1, d.Events(CostEvent.Injection));
        Assert.Equal(0, d.Events(CostEvent.VirtualInterruptDelivery));
        AssertNestedInhibited(m, 0, inhibited: true);
        Assert.Equal(ApicvInhibitMask.None, m.Mode.Inhibits.Reasons);
    }

    [Fact]
    public void TV44_IpiToAPeerInL1_StillTakesNoExit()
    {
        var m = new AvicTestMachine(3);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);
        AvicIncompleteIpiInfo? before = m.Mode.LastIncompleteIpi;

        LedgerDelta d = m.Measure();
        m.SendIpi(2, 0x0000_00EC, destination: 1);

        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(before, m.Mode.LastIncompleteIpi);
        Assert.True(m[1].Apic.Irr.Get(0xEC));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0xEC), m[1].Accept());
        Assert.Equal(1, d.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(0, d.Events(CostEvent.Injection));
        Assert.Equal(0, d.TotalExits);
    }

    [Fact]
    public void LeavingL2_ReactivatesAvicForTheVcpu_NextIpiRingsTheDoorbell()
    {
        var m = new AvicTestMachine(3);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);
        m.SendIpi(1, 0x0000_0041, destination: 0);
        AvicIncompleteIpiInfo? incomplete = m.Mode.LastIncompleteIpi;

        ExitToL1(nested, 0);
        AssertNestedInhibited(m, 0, inhibited: false);

        // L1 runs again on vCPU 0 (the kick is over) and reads its IRR from the backing page: no exit.
        LedgerDelta d = m.Measure();
        Assert.Equal(0x0000_0002u, m.Read(0, 0x220));
        m.SendIpi(1, 0x0000_0042, destination: 0);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(incomplete, m.Mode.LastIncompleteIpi);

        // Both are in the backing page's IRR; AVIC delivers them without injection.
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x42), m[0].Accept());
        m.Write(0, 0x0B0, 0);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), m[0].Accept());
        m.Write(0, 0x0B0, 0);
        Assert.Equal(2, d.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(0, d.Events(CostEvent.Injection));
        Assert.Equal(0, d.TotalExits);
    }

    public static TheoryData<string> WaysBackToL1() => ["l1-exit", "vmfail", "internal-error"];

    [Theory]
    [MemberData(nameof(WaysBackToL1))]
    public void EveryWayOutOfL2_ClearsTheVcpusInhibit(string way)
    {
        var m = new AvicTestMachine(2);
        NestedVmx nested = Nest(m.Mode);
        Vmcs12 vmcs12 = nested.GetVmcs12(0);
        if (way == "internal-error")
        {
            // A descriptor that is not L1 RAM: L0 enters without posted interrupts and stops the vCPU
            // when L1 posts (TV48).
            vmcs12.Controls = Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualInterruptDelivery | Vmcs12Controls.ProcessPostedInterrupts |
                Vmcs12Controls.ExternalInterruptExiting | Vmcs12Controls.AcknowledgeInterruptOnExit | Vmcs12Controls.EnableEpt;
            vmcs12.VirtualApicAddress = 0x0010_1000;
            vmcs12.PostedInterruptDescriptorAddress = 0xC000_0000;
            vmcs12.PostedInterruptNotificationVector = 0xF2;
        }

        EnterL2(nested, 0);
        AssertNestedInhibited(m, 0, inhibited: true);

        switch (way)
        {
            case "l1-exit":
                ExitToL1(nested, 0);
                break;
            case "vmfail":
                // L1 got control back and executes VMLAUNCH on a vmcs12 that fails the checks.
                vmcs12.Controls = Vmcs12Controls.ApicRegisterVirtualization;
                Assert.Equal(VmEntryOutcome.VmFailValid, nested.VmLaunch(0).Outcome);
                Assert.Equal(NestedVcpuState.InL1, nested.GetState(0));
                break;
            default:
                Assert.Equal(NestedPostOutcome.InternalError, nested.PostToL2(0, 0x61).Outcome);
                Assert.Equal(NestedVcpuState.Stopped, nested.GetState(0));
                break;
        }

        Assert.False(nested.IsInGuestMode(0));
        AssertNestedInhibited(m, 0, inhibited: false);
        Assert.Equal(1, m.Mode.NestedInhibitsSet);
        Assert.Equal(ApicvInhibitMask.None, m.Mode.Inhibits.Reasons);
    }

    [Fact]
    public void L1ResumingL2_SetsTheInhibitAgain()
    {
        var m = new AvicTestMachine(2);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);
        ExitToL1(nested, 0);

        // L1 resumes L2 (the model's next L2 command): L2 reads L1 RAM, no exit to L1.
        Assert.Equal(L2AccessOutcome.Completed, nested.L2Read(0, L1Ram).Outcome);
        Assert.True(nested.IsInGuestMode(0));
        AssertNestedInhibited(m, 0, inhibited: true);
        Assert.Equal(2, m.Mode.NestedInhibitsSet);

        LedgerDelta d = m.Measure();
        m.SendIpi(1, 0x0000_0051, destination: 0);
        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal(AvicIncompleteIpiCause.TargetNotRunning, m.Mode.LastIncompleteIpi!.Value.Cause);
    }

    [Fact]
    public void HaltedL2Vcpu_IsWokenBySoftware_AndStaysNotRunning()
    {
        var m = new AvicTestMachine(2);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);
        m[0].SetHostState(VcpuHostState.Halted);
        m[0].SetHostState(VcpuHostState.Running);
        AssertNestedInhibited(m, 0, inhibited: true);
        m[0].SetHostState(VcpuHostState.Halted);

        LedgerDelta d = m.Measure();
        m.SendIpi(1, 0x0000_0041, destination: 0);

        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal(1, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.Equal(VcpuHostState.Running, m[0].HostState);
        AssertNestedInhibited(m, 0, inhibited: true);
    }

    [Fact]
    public void PerVcpu_TwoVcpusInL2_VmWideSetStaysEmpty_BroadcastFindsTheFirstNotRunning()
    {
        var m = new AvicTestMachine(3);
        NestedVmx nested = Nest(m.Mode);
        long toggles = m.Mode.Inhibits.Toggles;
        EnterL2(nested, 0);
        EnterL2(nested, 1);
        AssertNestedInhibited(m, 0, inhibited: true);
        AssertNestedInhibited(m, 1, inhibited: true);
        AssertNestedInhibited(m, 2, inhibited: false);
        Assert.Equal(ApicvInhibitMask.None, m.Mode.Inhibits.Reasons);
        Assert.Equal(toggles, m.Mode.Inhibits.Toggles);

        LedgerDelta d = m.Measure();
        m.SendIpi(2, 0x000C_00EC, destination: 0); // fixed, all excluding self
        Assert.Equal(1, d.Exits(ExitReason.AvicIncompleteIpi));
        Assert.Equal((1UL << 32) | 0, m.Mode.LastIncompleteIpi!.Value.ExitInfo2);
        Assert.Equal(2, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[0].Apic.Irr.Get(0xEC) && m[1].Apic.Irr.Get(0xEC));

        Assert.Contains(new KeyValuePair<string, long>("NESTED inhibit set (per-vCPU, L2 entries)", 2), m.Mode.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("vCPUs NESTED-inhibited at the end", 2), m.Mode.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("VM-wide inhibit toggles", toggles), m.Mode.ModeCounters);
    }

    [Fact]
    public void VmWideInhibitWhileInL2_ClearingItLeavesTheL2VcpuNotRunning()
    {
        var m = new AvicTestMachine(3);
        NestedVmx nested = Nest(m.Mode);
        EnterL2(nested, 0);
        m.Mode.SetInhibit(ApicvInhibit.BlockIrq, true);
        Assert.False(m.Mode.PhysicalIdTable[1].IsRunning);

        // The vCPU leaves L2 while AVIC is off VM-wide: its own reason clears, the VM's remains.
        ExitToL1(nested, 0);
        Assert.Equal(ApicvInhibitMask.None, m.Mode.GetVcpuInhibits(m[0]));
        Assert.False(m.Mode.PhysicalIdTable[0].IsRunning);
        EnterL2(nested, 0);

        m.Mode.SetInhibit(ApicvInhibit.BlockIrq, false);
        AssertNestedInhibited(m, 0, inhibited: true);
        AssertNestedInhibited(m, 1, inhibited: false);
        AssertNestedInhibited(m, 2, inhibited: false);
    }

    [Fact]
    public void IntelApicv_SameSequence_IsNotInhibited_AndAccountsAsWithoutL2()
    {
        // NESTED is outside VMX_REQUIRED_APICV_INHIBITS and VMX has no per-vCPU reasons.
        Assert.Equal(ApicvInhibitMask.None, ApicvInhibitMask.Vmx & ApicvInhibitMask.Nested);
        var withL2 = new ApicvMode();
        var withoutL2 = new ApicvMode();
        VirtualMachine a = BootedMachine(withL2, 3);
        VirtualMachine b = BootedMachine(withoutL2, 3);
        NestedVmx nested = Nest(withL2);
        EnterL2(nested, 0);
        Assert.Equal(ApicvInhibitMask.None, withL2.GetVcpuInhibits(a.GetVcpu(0)));
        Assert.Equal(ApicvInhibitMask.None, withL2.Inhibits.Reasons);
        Assert.True(withL2.IsAccelerated);

        long exits = withL2.Ledger.TotalExits;
        SendIpi(a, 1, 0x0000_0041, 0);
        SendIpi(b, 1, 0x0000_0041, 0);
        Assert.Equal(exits, withL2.Ledger.TotalExits); // IPI virtualization: the sender takes no exit
        ExitToL1(nested, 0);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), a.GetVcpu(0).Accept());
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), b.GetVcpu(0).Accept());
        foreach (ExitReason reason in ExitLedger.Reasons)
        {
            Assert.Equal(withoutL2.Ledger.ExitsOf(reason), withL2.Ledger.ExitsOf(reason));
        }

        foreach (CostEvent costEvent in ExitLedger.Events)
        {
            Assert.Equal(withoutL2.Ledger.EventsOf(costEvent), withL2.Ledger.EventsOf(costEvent));
        }
    }

    [Fact]
    public void ReplayStats_ShowTheIncompleteIpisAndThePerVcpuInhibit()
    {
        string path = Path.Combine(TraceSuite.Root, "nested", "011-avic-nested-inhibit-peer-ipi.trace");
        TraceParseResult parsed = TraceParser.ParseFile(path);
        Assert.True(parsed.Succeeded, string.Join(Environment.NewLine, parsed.Errors));

        ModeRun avic = TraceReplayer.Run(parsed.Document!, new AvicMode());
        ModeRun emulated = TraceReplayer.Run(parsed.Document!, new EmulatedMode());
        Assert.True(avic.Passed, avic.Failure?.ToString());
        Assert.Equal(emulated.Observations, avic.Observations);

        // Two IPIs reach vCPU 0 in L2 (one to it, one broadcast); the INIT and SIPI of the boot are cause 0.
        Assert.Equal(4, avic.Ledger.ExitsOf(ExitReason.AvicIncompleteIpi));
        Assert.Contains(new KeyValuePair<string, long>("incomplete IPI: target not running", 2), avic.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("incomplete IPI: invalid int type", 2), avic.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("NESTED inhibit set (per-vCPU, L2 entries)", 2), avic.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("vCPUs NESTED-inhibited at the end", 0), avic.ModeCounters);
        Assert.Contains(new KeyValuePair<string, long>("VM-wide inhibit toggles", 0), avic.ModeCounters);

        // Doorbells: vCPU 1 -> 2 while 0 runs L2, 1 -> 0 back in L1, the broadcast's copy to vCPU 1.
        Assert.Equal(3, avic.Ledger.EventsOf(CostEvent.AvicDoorbell));
    }

    private enum OpKind : byte
    {
        Enter,
        ExitToL1,
        Resume,
        Ipi,
        Broadcast,
        HostState,
        AcceptAndEoi,
    }

    private readonly record struct Op(OpKind Kind, int A, int B, byte Vector)
    {
        public static readonly Gen<Op> Generator =
            Gen.Select(
                Gen.Frequency(
                    (3, Gen.Const(OpKind.Enter)),
                    (3, Gen.Const(OpKind.ExitToL1)),
                    (2, Gen.Const(OpKind.Resume)),
                    (8, Gen.Const(OpKind.Ipi)),
                    (2, Gen.Const(OpKind.Broadcast)),
                    (3, Gen.Const(OpKind.HostState)),
                    (8, Gen.Const(OpKind.AcceptAndEoi))),
                Gen.Int[0, 2],
                Gen.Int[0, 2],
                Gen.Byte[0x20, 0xFF])
            .Select((kind, a, b, vector) => new Op(kind, a, b, vector));
    }

    /// <summary>
    /// Random entries to and exits from L2, IPIs, host-state changes and accepts on three vCPUs,
    /// under AVIC and under plain emulation: the guest sees the same thing at every step, nothing is
    /// lost, IsRunning is set exactly for the vCPUs the host runs outside L2, and the VM-wide inhibit
    /// set stays empty.
    /// </summary>
    [Fact]
    public void RandomNesting_MatchesEmulation_AndIsRunningFollowsGuestMode() =>
        Op.Generator.Array[1, 120].Sample(RunAgainstEmulation, iter: 300, time: 5);

    private static void RunAgainstEmulation(Op[] ops)
    {
        var avic = new AvicMode();
        var emulated = new EmulatedMode();
        VirtualMachine a = BootedMachine(avic, 3);
        VirtualMachine e = BootedMachine(emulated, 3);
        NestedVmx na = Nest(avic);
        NestedVmx ne = Nest(emulated);
        for (int step = 0; step < ops.Length; step++)
        {
            Op op = ops[step];
            switch (op.Kind)
            {
                case OpKind.Enter:
                    Assert.Equal(ne.VmLaunch(op.A).Outcome, na.VmLaunch(op.A).Outcome);
                    break;
                case OpKind.ExitToL1:
                    Assert.Equal(ne.L2Read(op.A, NotInEpt).Outcome, na.L2Read(op.A, NotInEpt).Outcome);
                    break;
                case OpKind.Resume:
                    Assert.Equal(ne.L2Read(op.A, L1Ram), na.L2Read(op.A, L1Ram));
                    break;
                case OpKind.Ipi:
                    SendIpi(a, op.A, op.Vector, (uint)op.B);
                    SendIpi(e, op.A, op.Vector, (uint)op.B);
                    break;
                case OpKind.Broadcast:
                    SendIpi(a, op.A, 0x000C_0000u | op.Vector, 0);
                    SendIpi(e, op.A, 0x000C_0000u | op.Vector, 0);
                    break;
                case OpKind.HostState:
                    a.GetVcpu(op.A).SetHostState((VcpuHostState)op.B);
                    e.GetVcpu(op.A).SetHostState((VcpuHostState)op.B);
                    break;
                default:
                {
                    CpuEvent taken = a.GetVcpu(op.A).Accept();
                    Assert.Equal(e.GetVcpu(op.A).Accept(), taken);
                    if (taken.Kind == CpuEventKind.Fixed)
                    {
                        WriteApic(a, op.A, 0x0B0, 0);
                        WriteApic(e, op.A, 0x0B0, 0);
                    }

                    break;
                }
            }

            for (int i = 0; i < 3; i++)
            {
                Vcpu vcpu = a.GetVcpu(i);
                Assert.True(vcpu.Apic.Irr == e.GetVcpu(i).Apic.Irr && vcpu.Apic.Isr == e.GetVcpu(i).Apic.Isr, $"step {step} {op}: vCPU {i} differs");
                Assert.Equal(ne.IsInGuestMode(i), na.IsInGuestMode(i));
                bool running = vcpu.HostState == VcpuHostState.Running && !na.IsInGuestMode(i);
                Assert.True(running == avic.PhysicalIdTable[vcpu.Apic.Id].IsRunning, $"step {step} {op}: vCPU {i} IsRunning");
                Assert.Equal(na.IsInGuestMode(i) ? ApicvInhibitMask.Nested : ApicvInhibitMask.None, avic.GetVcpuInhibits(vcpu));
            }

            Assert.Equal(ApicvInhibitMask.None, avic.Inhibits.Reasons);
        }

        // Drain: every pending interrupt is taken the same way on both machines.
        for (int i = 0; i < 3; i++)
        {
            for (int guard = 0; guard < 300; guard++)
            {
                CpuEvent taken = a.GetVcpu(i).Accept();
                Assert.Equal(e.GetVcpu(i).Accept(), taken);
                if (taken.Kind == CpuEventKind.None)
                {
                    break;
                }

                WriteApic(a, i, 0x0B0, 0);
                WriteApic(e, i, 0x0B0, 0);
            }

            LocalApic apic = a.GetVcpu(i).Apic;
            Assert.True(apic.Irr.IsEmpty);
            Assert.Equal(e.GetVcpu(i).Apic.Counters.FixedAccepted, apic.Counters.FixedAccepted);
            Assert.Equal(e.GetVcpu(i).Apic.Counters.Merged, apic.Counters.Merged);
        }

        Assert.Equal(emulated.Ledger.InterruptsDelivered, avic.Ledger.InterruptsDelivered);
    }

    /// <summary>A three-way xAPIC machine with every AP started (INIT, SIPI) and every APIC software-enabled.</summary>
    private static VirtualMachine BootedMachine(VirtualizationMode mode, int vcpus)
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus }, mode);
        WriteApic(machine, 0, 0x0F0, 0x1FF);
        SendIpi(machine, 0, 0x000C_4500, 0);
        for (int i = 1; i < vcpus; i++)
        {
            Assert.Equal(CpuEventKind.Init, machine.GetVcpu(i).Accept().Kind);
        }

        SendIpi(machine, 0, 0x000C_4608, 0);
        for (int i = 1; i < vcpus; i++)
        {
            Assert.Equal(CpuEventKind.StartUp, machine.GetVcpu(i).Accept().Kind);
            WriteApic(machine, i, 0x0F0, 0x1FF);
        }

        return machine;
    }

    private static void SendIpi(VirtualMachine machine, int cpu, uint low, uint destination)
    {
        WriteApic(machine, cpu, 0x310, destination << 24);
        WriteApic(machine, cpu, 0x300, low);
    }

    private static void WriteApic(VirtualMachine machine, int cpu, int offset, uint value) =>
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(cpu).WriteMmio(AvicTestMachine.ApicBase + (ulong)offset, value));
}
