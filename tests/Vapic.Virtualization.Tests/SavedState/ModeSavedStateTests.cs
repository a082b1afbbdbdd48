using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine;
using Vapic.Machine.SavedState;
using Vapic.Testing;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Vapic.Virtualization.Passthrough;
using Vapic.Virtualization.SecureAvic;
using Vapic.Virtualization.Tests.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SavedState;

/// <summary>
/// Saving and restoring a machine under a virtualization mode: what each mode moves into the
/// LAPICs before a save, what it rebuilds after a restore, and the mode that refuses.
/// </summary>
public sealed class ModeSavedStateTests
{
    private const ulong ApicBase = 0xFEE0_0000;
    private const byte EdgeVector = 0x51;
    private const byte LevelVector = 0x62;
    private const int LevelPin = 3;

    /// <summary>Two booted xAPIC vCPUs with IDs 0 and 1.</summary>
    private static readonly SavedStateMachineSpec s_twoVcpus = new(2, 0, false, 0x20, true, 0);

    /// <summary>Three booted xAPIC vCPUs with IDs 0, 1 and 2.</summary>
    private static readonly SavedStateMachineSpec s_threeVcpus = new(3, 0, false, 0x20, true, 0);

    [Fact]
    public void Apicv_SaveMovesWhatThePirHoldsForAPreemptedVcpuIntoItsIrr()
    {
        VirtualMachine machine = PostToPreemptedVcpu1(out ApicvMode apicv);
        PostedInterruptDescriptor descriptor = apicv.GetVcpuState(1).Descriptor;
        long exitsBefore = apicv.Ledger.TotalExits;
        long mergesBefore = apicv.Ledger.EventsOf(CostEvent.PostedMergeOnEntry);

        MachineState state = machine.Save();

        // KVM_GET_LAPIC syncs the PIR first: exactly the two posted vectors are in the saved IRR,
        // and TMR has exactly the level-triggered one.
        LocalApicState saved = state.Vcpus[1].Apic;
        Assert.Equal(Bitmap(EdgeVector, LevelVector), saved.Irr);
        Assert.Equal(Bitmap(LevelVector), saved.Tmr);
        Assert.True(saved.Isr.IsEmpty);
        Assert.Equal(VcpuHostState.Preempted, state.Vcpus[1].HostState);

        // The descriptor is empty, ON is clear, SN stays set (still preempted); a save costs nothing.
        Assert.True(descriptor.Pir.IsEmpty);
        Assert.False(descriptor.OutstandingNotification);
        Assert.True(descriptor.SuppressNotification);
        Assert.Equal(VcpuHostState.Preempted, machine.GetVcpu(1).HostState);
        Assert.Equal(exitsBefore, apicv.Ledger.TotalExits);
        Assert.Equal(mergesBefore, apicv.Ledger.EventsOf(CostEvent.PostedMergeOnEntry));

        // The saved machine goes on as before: each vector is taken once, not again from a PIR.
        AssertTakesPostedVectorsOnce(machine);
    }

    [Theory]
    [InlineData("apicv")]
    [InlineData("avic")]
    [InlineData("emulated")]
    [InlineData("passthrough")]
    public void Apicv_APostedVectorSavedForAPreemptedVcpu_IsTakenOnceAfterRestoreUnderAnyMode(string mode)
    {
        MachineState state = PostToPreemptedVcpu1(out _).Save();
        VirtualMachine restored = s_twoVcpus.Create(mode);

        Assert.Equal(SavedStateResult.Success, restored.Restore(state));

        Assert.Equal(VcpuHostState.Preempted, restored.GetVcpu(1).HostState);
        AssertTakesPostedVectorsOnce(restored);
    }

    [Fact]
    public void Apicv_RestoreDropsThePirOfTheReplacedStateAndLoadsTheDescriptorsForTheRestoredHostStates()
    {
        // The state to restore: vCPU 1 running with 0x40 pending in IRR.
        VirtualMachine source = s_twoVcpus.Boot("emulated");
        SendFixedIpi(source, 0, 1, 0x40);
        MachineState state = source.Save();

        // The target holds 0x51 in vCPU 1's PIR (preempted) when the restore replaces its state.
        VirtualMachine target = PostToPreemptedVcpu1(out ApicvMode apicv);
        ApicvVcpuState vcpu1 = apicv.GetVcpuState(1);
        Assert.False(vcpu1.Descriptor.Pir.IsEmpty);
        long exitsBefore = apicv.Ledger.TotalExits;

        Assert.Equal(SavedStateResult.Success, target.Restore(state));

        // vmx_apicv_pre_state_restore: PIR and ON cleared; the running vCPU gets SN = 0, NV = 0xF2, NDST = its pCPU.
        Assert.True(vcpu1.Descriptor.Pir.IsEmpty);
        Assert.False(vcpu1.Descriptor.OutstandingNotification);
        Assert.False(vcpu1.Descriptor.SuppressNotification);
        Assert.Equal(PostedInterruptDescriptor.PostedInterruptVector, vcpu1.Descriptor.NotificationVector);
        Assert.Equal(vcpu1.HostApicId, vcpu1.Descriptor.NotificationDestination);
        Assert.Equal(0x40, vcpu1.Rvi);
        Assert.Equal(exitsBefore, apicv.Ledger.TotalExits);

        // Only what the restored state had pending is taken.
        Vcpu cpu1 = target.GetVcpu(1);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x40), cpu1.Accept());
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMmio(ApicBase + 0x0B0, 0));
        Assert.Equal(CpuEvent.None, cpu1.Accept());
    }

    [Fact]
    public void Apicv_RestoreReDerivesTheStickyIdentityInhibitsFromTheRestoredIds()
    {
        MachineState unmodified = s_twoVcpus.Boot("emulated").Save();
        VirtualMachine modifiedSource = s_twoVcpus.Boot("emulated");
        Assert.Equal(ApicAccessResult.Ok, modifiedSource.GetVcpu(1).WriteMmio(ApicBase + 0x020, 0x0500_0000));
        MachineState modified = modifiedSource.Save();

        // The guest changed vCPU 1's xAPIC ID: APIC_ID_MODIFIED, sticky while the guest runs.
        VirtualMachine machine = s_twoVcpus.Boot("apicv");
        var apicv = (ApicvMode)machine.Virtualization!;
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(1).WriteMmio(ApicBase + 0x020, 0x0500_0000));
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(1).WriteMmio(ApicBase + 0x020, 0x0100_0000));
        Assert.True(apicv.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        long exitsBefore = apicv.Ledger.TotalExits;

        // Restoring IDs that are their reset values re-derives it clear: acceleration is back, and
        // no vCPU was kicked for the APICv update (none is in guest mode during a restore).
        Assert.Equal(SavedStateResult.Success, machine.Restore(unmodified));
        Assert.False(apicv.Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.True(apicv.IsAccelerated);
        Assert.Equal(exitsBefore, apicv.Ledger.TotalExits);

        // And a restored modified ID sets it, in a machine that never saw the write.
        VirtualMachine fresh = s_twoVcpus.Create("apicv");
        Assert.Equal(SavedStateResult.Success, fresh.Restore(modified));
        Assert.True(((ApicvMode)fresh.Virtualization!).Inhibits.Contains(ApicvInhibit.ApicIdModified));
        Assert.False(((ApicvMode)fresh.Virtualization!).IsAccelerated);
    }

    [Fact]
    public void Avic_RestoreRebuildsThePhysicalIdTable_AnIpiToARunningTargetTakesNoExit()
    {
        MachineState state = s_threeVcpus.Boot("emulated").Save();
        Assert.Equal(VcpuHostState.Running, state.Vcpus[2].HostState);

        // The target machine last had vCPU 2 descheduled: its entry has IsRunning clear.
        VirtualMachine machine = s_threeVcpus.Create("avic");
        var avic = (AvicMode)machine.Virtualization!;
        machine.GetVcpu(2).SetHostState(VcpuHostState.Preempted);
        Assert.False(avic.PhysicalIdTable[2].IsRunning);

        Assert.Equal(SavedStateResult.Success, machine.Restore(state));

        AvicPhysicalIdEntry entry = avic.PhysicalIdTable[2];
        Assert.True(entry.Valid);
        Assert.True(entry.IsRunning);
        Assert.Same(machine.GetVcpu(2).Apic, entry.BackingPage);
        Assert.Equal(AvicPhysicalIdEntry.ValidBit | AvicPhysicalIdEntry.IsRunningBit | 2, entry.Raw);

        // Fixed edge IPI 0x45 from vCPU 0 to APIC ID 2: hardware sets IRR in the backing page and
        // rings the doorbell (AMD APM "Interprocessor Interrupts" under AVIC); no VM exit anywhere.
        long exitsBefore = avic.Ledger.TotalExits;
        long doorbellsBefore = avic.Ledger.EventsOf(CostEvent.AvicDoorbell);
        SendFixedIpi(machine, 0, 2, 0x45);
        Assert.Equal(exitsBefore, avic.Ledger.TotalExits);
        Assert.Equal(doorbellsBefore + 1, avic.Ledger.EventsOf(CostEvent.AvicDoorbell));
        Assert.True(machine.GetVcpu(2).Apic.Irr.Get(0x45));
    }

    [Fact]
    public void Avic_RestoreClearsIsRunningOfAHaltedTarget_TheIpiTakesIncompleteIpiAndWakesIt()
    {
        VirtualMachine source = s_threeVcpus.Boot("emulated");
        source.GetVcpu(2).SetHostState(VcpuHostState.Halted);
        MachineState state = source.Save();

        // A fresh machine has every vCPU running, so its table says IsRunning for vCPU 2.
        VirtualMachine machine = s_threeVcpus.Create("avic");
        var avic = (AvicMode)machine.Virtualization!;
        Assert.True(avic.PhysicalIdTable[2].IsRunning);

        Assert.Equal(SavedStateResult.Success, machine.Restore(state));
        Assert.False(avic.PhysicalIdTable[2].IsRunning);
        Assert.True(avic.PhysicalIdTable[2].Valid);

        long incomplete = avic.IncompleteIpis(AvicIncompleteIpiCause.TargetNotRunning);
        long wakeups = avic.Ledger.EventsOf(CostEvent.WakeupBlockedVcpu);
        SendFixedIpi(machine, 0, 2, 0x45);
        Assert.Equal(incomplete + 1, avic.IncompleteIpis(AvicIncompleteIpiCause.TargetNotRunning));
        Assert.Equal(wakeups + 1, avic.Ledger.EventsOf(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(VcpuHostState.Running, machine.GetVcpu(2).HostState);
    }

    [Fact]
    public void Avic_RestoreRebuildsTheLogicalIdTableFromTheRestoredLdrs()
    {
        // Flat model, vCPU i has logical ID bit i: slot i names physical ID i.
        VirtualMachine source = s_threeVcpus.Boot("emulated");
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(ApicAccessResult.Ok, source.GetVcpu(i).WriteMmio(ApicBase + 0x0D0, (1u << i) << 24));
        }

        MachineState state = source.Save();
        VirtualMachine machine = s_threeVcpus.Create("avic");
        var avic = (AvicMode)machine.Virtualization!;
        Assert.False(avic.LogicalIdTable[2].Valid);

        Assert.Equal(SavedStateResult.Success, machine.Restore(state));

        Assert.Equal(new AvicLogicalIdEntry(2, Valid: true), avic.LogicalIdTable[2]);
        long exitsBefore = avic.Ledger.TotalExits;
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(0).WriteMmio(ApicBase + 0x310, 0x0400_0000));
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(0).WriteMmio(ApicBase + 0x300, 0x4845));   // logical, fixed, 0x45
        Assert.Equal(exitsBefore, avic.Ledger.TotalExits);
        Assert.True(machine.GetVcpu(2).Apic.Irr.Get(0x45));
    }

    [Fact]
    public void Passthrough_RestoreReprogramsTheMsrBitmapAndThePhysicalTscDeadline()
    {
        // vCPU 0 in x2APIC with its own TSC offset and an armed TSC-deadline timer.
        var spec = new SavedStateMachineSpec(2, 0, false, 0x20, true, 0b01);
        VirtualMachine source = spec.Boot("emulated");
        Vcpu cpu0 = source.GetVcpu(0);
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(Vcpu.MsrTsc, 1_000_000));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x832, 0x4_0040));   // LVT timer: TSC deadline, vector 0x40
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x6E0, 1_050_000));
        long offset = cpu0.Apic.TscOffset;
        Assert.NotEqual(0, offset);
        MachineState state = source.Save();

        VirtualMachine machine = spec.Create("passthrough");
        var passthrough = (PassthroughMode)machine.Virtualization!;
        Assert.False(passthrough.IsPassthroughActive(0));

        Assert.Equal(SavedStateResult.Success, machine.Restore(state));

        // x2APIC: the MSRs pass through except ID/LDR reads and ICR writes; a non-zero offset keeps
        // the TSC deadline intercepted, and the pCPU's deadline is the guest's minus the offset
        // (ACRN set_tsc_deadline). vCPU 1 stays in the emulated xAPIC phase.
        Assert.True(passthrough.IsPassthroughActive(0));
        MsrBitmap bitmap = passthrough.GetMsrBitmap(0);
        Assert.False(bitmap.IsReadIntercepted(0x808));
        Assert.True(bitmap.IsReadIntercepted(PassthroughMode.X2ApicIdMsr));
        Assert.True(bitmap.IsWriteIntercepted(PassthroughMode.InterruptCommandMsr));
        Assert.True(bitmap.IsWriteIntercepted(PassthroughMode.TscDeadlineMsr));
        int pcpu0 = passthrough.Host.PcpuOf(0);
        Assert.Equal(1_050_000UL - (ulong)offset, passthrough.Host.PhysicalTscDeadline(pcpu0));
        Assert.False(passthrough.IsPassthroughActive(1));
        Assert.Equal(0UL, passthrough.Host.PhysicalTscDeadline(passthrough.Host.PcpuOf(1)));

        // The restored deadline fires at its time: guest TSC 1_050_000 is virtual time 1_050_000 − offset.
        machine.AdvanceTo(1_050_000 - offset);
        Assert.True(machine.GetVcpu(0).Apic.Irr.Get(0x40));
    }

    [Fact]
    public void SecureAvic_TrySaveIsRefusedAsUnsupportedNamingTheModeAndChangesNothing()
    {
        var rig = new SecureAvicTestMachine(vcpus: 2);
        rig.ProgramIoApic(pin: 5, vector: 0x70, level: false, destination: 1);
        rig.Pulse(5);
        rig.Machine.GetVcpu(1).SetHostState(VcpuHostState.Preempted);
        string before = Snapshot(rig);

        SavedStateResult result = rig.Machine.TrySave(out MachineState? state);

        Assert.Null(state);
        Assert.Equal(SavedStateError.Unsupported, result.Error);
        Assert.Equal("Vcpus", result.Field);
        Assert.Contains("'savic'", result.Message);
        Assert.Contains("SEV-SNP", result.Message);
        Assert.Equal(before, Snapshot(rig));

        InvalidOperationException e = Assert.Throws<InvalidOperationException>(() => rig.Machine.Save());
        Assert.Contains("'savic'", e.Message);
        Assert.Equal(before, Snapshot(rig));
    }

    [Fact]
    public void SecureAvic_RestoreIsRefusedBeforeAnythingChanges()
    {
        var rig = new SecureAvicTestMachine(vcpus: 2);
        MachineState state = new SavedStateMachineSpec(2, 0, false, 0x20, true, 0b11).Boot("emulated").Save();
        string before = Snapshot(rig);

        SavedStateResult validation = rig.Machine.ValidateState(state);
        SavedStateResult result = rig.Machine.Restore(state);

        Assert.Equal(SavedStateError.Unsupported, result.Error);
        Assert.Equal(validation, result);
        Assert.Contains("'savic'", result.Message);
        Assert.Equal(before, Snapshot(rig));
    }

    [Fact]
    public void Emulated_SaveUnderTheModeEqualsTheBareMachinesState()
    {
        VirtualMachine bare = s_twoVcpus.Boot();
        VirtualMachine emulated = s_twoVcpus.Boot("emulated");
        foreach (VirtualMachine machine in (VirtualMachine[])[bare, emulated])
        {
            SendFixedIpi(machine, 0, 1, 0x40);
            machine.GetVcpu(1).SetHostState(VcpuHostState.Halted);
        }

        // Emulation holds nothing outside the LAPICs: the mode changes nothing in the saved state.
        // (The notification woke the halted vCPU under the mode only after the IPI, so host states agree.)
        Assert.Equal(bare.Save(), emulated.Save());
    }

    /// <summary>
    /// vCPU 1 of a booted two-vCPU machine under APICv is preempted, and gets fixed edge IPI 0x51
    /// from vCPU 0 and level-triggered IOAPIC vector 0x62 (pin 3, asserted then de-asserted): both
    /// wait in its PIR, nothing is in its IRR.
    /// </summary>
    private static VirtualMachine PostToPreemptedVcpu1(out ApicvMode apicv)
    {
        VirtualMachine machine = s_twoVcpus.Boot("apicv");
        apicv = (ApicvMode)machine.Virtualization!;
        Vcpu cpu0 = machine.GetVcpu(0);
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApic.DefaultBase, (uint)(0x11 + (2 * LevelPin))));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApic.DefaultBase + 0x10, 0x0100_0000));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApic.DefaultBase, (uint)(0x10 + (2 * LevelPin))));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMmio(IoApic.DefaultBase + 0x10, 0x8000u | LevelVector));

        machine.GetVcpu(1).SetHostState(VcpuHostState.Preempted);
        SendFixedIpi(machine, 0, 1, EdgeVector);
        machine.SetIrq(LevelPin, true);
        machine.SetIrq(LevelPin, false);

        PostedInterruptDescriptor descriptor = apicv.GetVcpuState(1).Descriptor;
        Assert.Equal(Bitmap(EdgeVector, LevelVector), descriptor.Pir);
        Assert.Equal(Bitmap(LevelVector), descriptor.LevelTriggered);
        Assert.True(machine.GetVcpu(1).Apic.Irr.IsEmpty);
        return machine;
    }

    /// <summary>vCPU 1 reads TMR bit 0x62, then takes 0x62 and 0x51, each once, and nothing more.</summary>
    private static void AssertTakesPostedVectorsOnce(VirtualMachine machine)
    {
        Vcpu cpu1 = machine.GetVcpu(1);

        // TMR[0x62]: register 0x1B0 (vectors 0x60-0x7F), bit 2.
        Assert.Equal(ApicAccessResult.Ok, cpu1.ReadMmio(ApicBase + 0x1B0, out uint tmr3));
        Assert.Equal(0x4u, tmr3);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, LevelVector), cpu1.Accept());
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMmio(ApicBase + 0x0B0, 0));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, EdgeVector), cpu1.Accept());
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMmio(ApicBase + 0x0B0, 0));
        Assert.Equal(CpuEvent.None, cpu1.Accept());
        Assert.Equal(ApicAccessResult.Ok, cpu1.ReadMmio(ApicBase + 0x200, out uint irr0));
        Assert.Equal(0u, irr0);
    }

    /// <summary>A fixed edge IPI with physical destination <paramref name="apicId"/> through the xAPIC ICR.</summary>
    private static void SendFixedIpi(VirtualMachine machine, int sender, uint apicId, byte vector)
    {
        Vcpu cpu = machine.GetVcpu(sender);
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(ApicBase + 0x310, apicId << 24));
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(ApicBase + 0x300, 0x4000u | vector));
    }

    private static InterruptBitmap Bitmap(params byte[] vectors)
    {
        var bitmap = default(InterruptBitmap);
        foreach (byte v in vectors)
        {
            bitmap.Set(v);
        }

        return bitmap;
    }

    /// <summary>Everything a Secure AVIC machine and its mode hold, read without guest accesses.</summary>
    private static string Snapshot(SecureAvicTestMachine rig)
    {
        VirtualMachine machine = rig.Machine;
        var parts = new List<string> { $"now {machine.Now} next {machine.NextTimerDeadline} ioapic {machine.IoApic.Save()}" };
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            SecureAvicVcpu savic = rig.State(i);
            parts.Add($"cpu {i} {cpu.RunState} {cpu.HostState} {cpu.Apic.Save()} control {savic.ControlMsr:x} gpa {savic.RegisteredGpa} " +
                $"allowed {savic.Page.AllowedIrr} nmi {savic.Page.NmiRequest} timer {savic.AllowedTimerVector}");
        }

        foreach (ExitReason reason in ExitLedger.Reasons)
        {
            parts.Add($"{reason} {rig.Mode.Ledger.ExitsOf(reason)}");
        }

        foreach (CostEvent costEvent in ExitLedger.Events)
        {
            parts.Add($"{costEvent} {rig.Mode.Ledger.EventsOf(costEvent)}");
        }

        foreach (KeyValuePair<string, long> row in rig.Mode.ModeCounters)
        {
            parts.Add($"{row.Key} {row.Value}");
        }

        return string.Join("\n", parts);
    }
}
