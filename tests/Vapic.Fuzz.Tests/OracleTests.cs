using System.Collections.Immutable;
using Vapic.Apic.SavedState;
using Vapic.Fuzz.Oracles;
using Vapic.Machine;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>The oracles see what they are meant to see, so that a green smoke run means something.</summary>
public sealed class OracleTests
{
    [Fact]
    public void Snapshot_TimeAdvanced_IsADifference()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        MachineSnapshot before = MachineSnapshot.Of(machine);

        Assert.Null(MachineSnapshot.Of(machine).DifferenceFrom(before));
        machine.Advance(1);
        Assert.Equal("virtual time 0 became 1", before.DifferenceFrom(MachineSnapshot.Of(machine)));
    }

    [Fact]
    public void Snapshot_IrrBitSet_IsADifferenceOfThatVcpu()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        GuestRegisters.Write(machine.GetVcpu(1), Apic.ApicRegister.SpuriousVectorOffset, 0x1FF);
        MachineSnapshot before = MachineSnapshot.Of(machine);

        machine.GetVcpu(1).Apic.AcceptInterrupt(Apic.DeliveryMode.Fixed, 0x50, levelTriggered: false);

        Assert.StartsWith("vCPU 1 changed", before.DifferenceFrom(MachineSnapshot.Of(machine)));
    }

    [Fact]
    public void RestoreOracle_StateWithAnIllegalVectorInService_IsRefusedWithoutChange()
    {
        // Vectors 0-15 are reserved (SDM "Valid Interrupt Vectors"): no valid state has one in ISR.
        var source = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        MachineState state = source.Save();
        var isr = new Apic.InterruptBitmap();
        isr.Set(3);
        MachineState bad = state with { Vcpus = state.Vcpus.SetItem(1, state.Vcpus[1] with { Apic = state.Vcpus[1].Apic with { Isr = isr } }) };
        var target = new VirtualMachine(new MachineOptions { VcpuCount = 2 });

        Assert.False(target.ValidateState(bad).IsSuccess);
        foreach (string mode in Virtualization.ModeRegistry.Known)
        {
            RestoreOracle.Check(bad, new MachineOptions { VcpuCount = 2 }, mode);
        }
    }

    [Fact]
    public void RestoreOracle_RunningMachinesState_RestoresUnderEveryMode()
    {
        var source = new VirtualMachine(new MachineOptions { VcpuCount = 3, ApicIds = [0, 4, 8] });
        GuestRegisters.Warm(source);
        MachineState state = source.Save();

        foreach (string mode in Virtualization.ModeRegistry.Known)
        {
            RestoreOracle.Check(state, new MachineOptions { VcpuCount = 3, ApicIds = [0, 4, 8] }, mode);
        }
    }

    [Fact]
    public void ApicInvariants_PowerOnAndWarmMachine_Hold()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        ApicInvariants.Check(machine, "power-on");
        GuestRegisters.Warm(machine);

        ApicInvariants.Check(machine, "warm-up");
        Assert.Equal(0x60, machine.GetVcpu(0).Apic.ProcessorPriority);   // TPR 0x10 < ISR class 0x60
    }

    [Fact]
    public void IsRestorable_RepeatedApicIds_IsFalse()
    {
        LocalApicState apic = new VirtualMachine(new MachineOptions()).GetVcpu(0).Apic.Save();

        Assert.True(RestoreOracle.IsRestorable([apic]));
        Assert.False(RestoreOracle.IsRestorable(ImmutableArray.Create(apic, apic)));
    }
}
