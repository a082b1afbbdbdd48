using System.Collections.Immutable;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>VirtualMachine.Save / Restore: what is captured, what must match, and that a refusal changes nothing.</summary>
public sealed class MachineSavedStateTests
{
    [Fact]
    public void Save_AtPowerOn_RecordsConfigurationClockAndRunStates()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 3, ApicIds = [4, 9, 2], IoApicVersion = 0x11 });
        MachineState state = machine.Save();

        Assert.Equal(SavedStateSerializer.FormatVersion, state.FormatVersion);
        Assert.Equal([4u, 9u, 2u], state.Configuration.ApicIds);
        Assert.Equal(3, state.Configuration.VcpuCount);
        Assert.Equal(0x11, state.Configuration.IoApicVersion);
        Assert.Equal(46, state.Configuration.MaxPhysicalAddressBits);
        Assert.True(state.Configuration.ExtendedDestinationId);
        Assert.Equal(0, state.VirtualTime);

        // SDM "MP Initialization Protocol": the BSP runs from the reset vector, the APs wait for SIPI.
        Assert.Equal(VcpuRunState.Running, state.Vcpus[0].RunState);
        Assert.Equal(VcpuRunState.WaitForSipi, state.Vcpus[1].RunState);
        Assert.All(state.Vcpus, v => Assert.Equal((0xFFFF_FFF0UL, (ushort)0xF000), (v.EntryPoint, v.CodeSegment)));
        Assert.Equal(9u, state.Vcpus[1].Apic.X2ApicId);
        Assert.Equal(0x0005_0014u, state.Vcpus[1].Apic.Version);   // no EOI-broadcast suppression with a 0x11 IOAPIC
        Assert.Equal(0x11, state.IoApic.Version);
    }

    [Fact]
    public void Restore_SetsTheClockRebuildsTimersAndRouting()
    {
        VirtualMachine source = new SavedStateMachineSpec(3, 0, false, 0x20, true, 0b010).Boot();
        Vcpu cpu1 = source.GetVcpu(1);
        SavedStateDriver.WriteRegister(cpu1, 0x320, 0x2_0040);   // periodic, vector 0x40
        SavedStateDriver.WriteRegister(cpu1, 0x3E0, 0xB);        // divide by 1
        SavedStateDriver.WriteRegister(cpu1, 0x380, 700);
        source.Advance(1_000);
        MachineState state = source.Save();

        VirtualMachine target = new SavedStateMachineSpec(3, 0, false, 0x20, true, 0).Create();
        target.Advance(50_000);
        Assert.Equal(SavedStateResult.Success, target.Restore(state));

        Assert.Equal(1_000, target.Now);
        Assert.Equal(1_400, target.NextTimerDeadline);
        Assert.Equal(ApicMode.X2Apic, target.GetVcpu(1).Apic.Mode);
        Assert.Equal(VcpuRunState.Running, target.GetVcpu(2).RunState);

        // Routing follows the restored x2APIC ID: a physical IPI from vCPU 0 to APIC ID 1 reaches vCPU 1.
        SavedStateDriver.WriteRegister(target.GetVcpu(0), 0x310, 0x0100_0000);
        SavedStateDriver.WriteRegister(target.GetVcpu(0), 0x300, 0x4055);
        Assert.True(target.GetVcpu(1).Apic.Irr.Get(0x55));

        target.AdvanceTo(1_400);
        Assert.True(target.GetVcpu(1).Apic.Irr.Get(0x40));
        Assert.Equal(2_100, target.NextTimerDeadline);
    }

    [Fact]
    public void Restore_IntoTheSameMachine_RewindsIt()
    {
        VirtualMachine machine = new SavedStateMachineSpec(2, 0, false, 0x20, true, 0).Boot();
        MachineState snapshot = machine.Save();
        string before = SavedStateDriver.DumpAll(machine);

        machine.SetIrq(1, true);
        SavedStateDriver.WriteRegister(machine.GetVcpu(0), 0x380, 10);
        machine.Advance(5_000);
        Assert.NotEqual(before, SavedStateDriver.DumpAll(machine));

        Assert.Equal(SavedStateResult.Success, machine.Restore(snapshot));
        Assert.Equal(before, SavedStateDriver.DumpAll(machine));
        Assert.Equal(snapshot, machine.Save());
    }

    private sealed record RefusalCase(Func<MachineState, MachineState> Mutate, SavedStateError Error, string Field);

    private static readonly Dictionary<string, RefusalCase> s_refusals = new()
    {
        ["format major 2"] = new(s => s with { FormatVersion = 0x0200 }, SavedStateError.Unsupported, "FormatVersion"),
        ["format minor newer"] = new(s => s with { FormatVersion = 0x0102 }, SavedStateError.Unsupported, "FormatVersion"),
        ["no configuration"] = new(s => s with { Configuration = null! }, SavedStateError.Missing, "Configuration"),
        ["vCPU count"] = new(s => s with { Configuration = s.Configuration with { ApicIds = [0, 1] } }, SavedStateError.ConfigurationMismatch, "Configuration.VcpuCount"),
        ["APIC ID"] = new(s => s with { Configuration = s.Configuration with { ApicIds = [0, 1, 7] } }, SavedStateError.ConfigurationMismatch, "Configuration.ApicIds[2]"),
        ["duplicate APIC ID"] = new(s => s with { Configuration = s.Configuration with { ApicIds = [0, 1, 1] } }, SavedStateError.DuplicateApicId, "Configuration.ApicIds[2]"),
        ["force x2APIC"] = new(s => s with { Configuration = s.Configuration with { ForceX2Apic = true } }, SavedStateError.ConfigurationMismatch, "Configuration.ForceX2Apic"),
        ["IOAPIC version"] = new(s => s with { Configuration = s.Configuration with { IoApicVersion = 0x11 } }, SavedStateError.ConfigurationMismatch, "Configuration.IoApicVersion"),
        ["extended destination ID"] = new(s => s with { Configuration = s.Configuration with { ExtendedDestinationId = false } }, SavedStateError.ConfigurationMismatch, "Configuration.ExtendedDestinationId"),
        ["MAXPHYADDR"] = new(s => s with { Configuration = s.Configuration with { MaxPhysicalAddressBits = 40 } }, SavedStateError.ConfigurationMismatch, "Configuration.MaxPhysicalAddressBits"),
        ["CPU vendor"] = new(s => s with { Configuration = s.Configuration with { CpuVendor = CpuVendor.Amd } }, SavedStateError.ConfigurationMismatch, "Configuration.CpuVendor"),
        ["negative time"] = new(s => s with { VirtualTime = -1 }, SavedStateError.TimeOutOfRange, "VirtualTime"),
        ["no vCPUs"] = new(s => s with { Vcpus = default }, SavedStateError.Missing, "Vcpus"),
        ["two vCPU states for three vCPUs"] = new(s => s with { Vcpus = s.Vcpus.RemoveAt(2) }, SavedStateError.ConfigurationMismatch, "Vcpus"),
        ["null vCPU"] = new(s => s with { Vcpus = s.Vcpus.SetItem(1, null!) }, SavedStateError.Missing, "Vcpus[1]"),
        ["run state 5"] = new(s => WithVcpu(s, 2, v => v with { RunState = (VcpuRunState)5 }), SavedStateError.InvalidValue, "Vcpus[2].RunState"),
        ["host state 3"] = new(s => WithVcpu(s, 0, v => v with { HostState = (VcpuHostState)3 }), SavedStateError.InvalidValue, "Vcpus[0].HostState"),
        ["entry point not from RESET or SIPI"] = new(s => WithVcpu(s, 1, v => v with { EntryPoint = 0x9000, CodeSegment = 0x0800 }), SavedStateError.Inconsistent, "Vcpus[1].EntryPoint"),
        ["LAPIC field"] = new(s => WithVcpu(s, 1, v => v with { Apic = v.Apic with { BaseMsr = v.Apic.BaseMsr | 0x200 } }), SavedStateError.ReservedBits, "Vcpus[1].Apic.BaseMsr"),
        ["LAPIC of another vCPU"] = new(s => WithVcpu(s, 1, v => v with { Apic = s.Vcpus[2].Apic }), SavedStateError.ConfigurationMismatch, "Vcpus[1].Apic.X2ApicId"),
        ["no LAPIC"] = new(s => WithVcpu(s, 0, v => v with { Apic = null! }), SavedStateError.Missing, "Vcpus[0].Apic"),
        ["IOAPIC field"] = new(s => s with { IoApic = s.IoApic with { Id = 0x10 } }, SavedStateError.ReservedBits, "IoApic.Id"),
        ["no IOAPIC"] = new(s => s with { IoApic = null! }, SavedStateError.Missing, "IoApic"),
    };

    public static TheoryData<string> RefusalNames => new(s_refusals.Keys);

    [Theory]
    [MemberData(nameof(RefusalNames))]
    public void Restore_RefusesTheStateAndChangesNothing(string name)
    {
        RefusalCase c = s_refusals[name];
        MachineState state = Busy().Save();
        VirtualMachine target = new SavedStateMachineSpec(3, 0, false, 0x20, true, 0b100).Boot();
        target.Advance(777);
        byte[] before = SavedStateSerializer.Serialize(target.Save());
        long next = target.NextTimerDeadline;

        SavedStateResult result = target.Restore(c.Mutate(state));

        Assert.Equal((c.Error, c.Field), (result.Error, result.Field));
        Assert.Equal(before, SavedStateSerializer.Serialize(target.Save()));
        Assert.Equal((777, next), (target.Now, target.NextTimerDeadline));
        Assert.True(target.Restore(state).IsSuccess, "the unmutated state restores");
    }

    [Fact]
    public void ValidateState_ChecksWithoutChanging()
    {
        VirtualMachine machine = Busy();
        MachineState state = machine.Save();
        byte[] before = SavedStateSerializer.Serialize(state);
        Assert.True(machine.ValidateState(state).IsSuccess);
        Assert.False(machine.ValidateState(state with { VirtualTime = -5 }).IsSuccess);
        Assert.Equal(before, SavedStateSerializer.Serialize(machine.Save()));
    }

    [Fact]
    public void UnderAVirtualizationMode_SavePreparesFirstAndRestoreRebuildsLast()
    {
        var options = new MachineOptions { VcpuCount = 2 };
        var bare = new VirtualMachine(options);
        bare.Advance(1_234);
        MachineState state = bare.Save();
        var mode = new InertVirtualization();
        var machine = new VirtualMachine(options, mode);

        MachineState saved = machine.Save();
        Assert.Equal(1, mode.Prepared);
        Assert.Equal(SavedStateResult.Success, machine.TrySave(out MachineState? again));
        Assert.Equal(saved, again);
        Assert.Equal(2, mode.Prepared);

        Assert.Equal(SavedStateResult.Success, machine.Restore(state));
        Assert.Equal(1, mode.Restored);
        Assert.Equal(1_234, mode.TimeSeenOnRestore);   // called after the clock (and everything else) was restored
    }

    [Fact]
    public void UnderARefusingMode_TrySaveFailsSaveThrowsAndRestoreChangesNothing()
    {
        var options = new MachineOptions { VcpuCount = 1 };
        MachineState state = new VirtualMachine(options).Save();
        var mode = new InertVirtualization { Refusal = SavedStateResult.Fail(SavedStateError.Unsupported, "Vcpus", "the host cannot read it") };
        var machine = new VirtualMachine(options, mode);
        machine.Advance(500);

        Assert.Equal(mode.Refusal, machine.TrySave(out MachineState? saved));
        Assert.Null(saved);
        InvalidOperationException e = Assert.Throws<InvalidOperationException>(() => machine.Save());
        Assert.Contains("the host cannot read it", e.Message);

        Assert.Equal(mode.Refusal, machine.ValidateState(state));
        Assert.Equal(mode.Refusal, machine.Restore(state));
        Assert.Equal((500, 0), (machine.Now, mode.Restored));
    }

    [Fact]
    public void States_CompareByValue()
    {
        Assert.Equal(Busy().Save(), Busy().Save());
        Assert.Equal(Busy().Save().GetHashCode(), Busy().Save().GetHashCode());
        MachineState a = Busy().Save();
        Assert.NotEqual(a, a with { Configuration = a.Configuration with { ApicIds = [0, 1, 3] } });
    }

    /// <summary>A booted 3-vCPU machine with a running timer, an asserted level pin and a pending IPI.</summary>
    private static VirtualMachine Busy()
    {
        VirtualMachine machine = new SavedStateMachineSpec(3, 0, false, 0x20, true, 0b100).Boot();
        Vcpu cpu0 = machine.GetVcpu(0);
        SavedStateDriver.WriteRegister(cpu0, 0x320, 0x0041);
        SavedStateDriver.WriteRegister(cpu0, 0x380, 5_000);
        cpu0.WriteMmio(IoApic.DefaultBase, 0x10 + 4);
        cpu0.WriteMmio(IoApic.DefaultBase + 0x10, 0xA092);
        machine.SetIrq(2, true);
        SavedStateDriver.WriteRegister(cpu0, 0x310, 0x0100_0000);
        SavedStateDriver.WriteRegister(cpu0, 0x300, 0x4061);
        machine.Advance(1_234);
        return machine;
    }

    private static MachineState WithVcpu(MachineState state, int index, Func<VcpuState, VcpuState> change) =>
        state with { Vcpus = state.Vcpus.SetItem(index, change(state.Vcpus[index])) };

    /// <summary>A virtualization mode that observes and changes nothing.</summary>
    /// <summary>A mode that holds nothing and records the saved-state hooks (or refuses both directions).</summary>
    private sealed class InertVirtualization : IInterruptVirtualization
    {
        private VirtualMachine? _machine;

        public SavedStateResult Refusal { get; init; } = SavedStateResult.Success;

        public int Prepared { get; private set; }

        public int Restored { get; private set; }

        public long TimeSeenOnRestore { get; private set; } = -1;

        public void Attach(VirtualMachine machine) => _machine = machine;

        public void OnGuestEntry(Vcpu vcpu)
        {
        }

        public void BeforeAccess(Vcpu vcpu, in GuestAccess access)
        {
        }

        public void AfterAccess(Vcpu vcpu, in GuestAccess access, ApicAccessResult result)
        {
        }

        public bool DeliverFixed(Vcpu target, byte vector, bool levelTriggered, in InterruptMessage message) =>
            target.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered);

        public void OnEventLatched(Vcpu target, DeliveryMode mode, in InterruptMessage message)
        {
        }

        public void OnTimerExpiry(Vcpu vcpu)
        {
        }

        public void OnEventTaken(Vcpu vcpu, CpuEvent taken)
        {
        }

        public void OnHostStateChanged(Vcpu vcpu, VcpuHostState previous)
        {
        }

        public SavedStateResult PrepareForSave()
        {
            if (Refusal.IsSuccess)
            {
                Prepared++;
            }

            return Refusal;
        }

        public SavedStateResult CheckRestore() => Refusal;

        public void OnStateRestored()
        {
            Restored++;
            TimeSeenOnRestore = _machine!.Now;
        }
    }
}
