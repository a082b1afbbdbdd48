using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.Interop;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.Interop;

/// <summary>
/// Pages as KVM and Xen write them restore into a running Vapic machine: the unimplemented LVT CMCI
/// slot (0 in both, since neither offers CMCI without MCG_CMCI_P) is not a programmed CMCI.
/// </summary>
public sealed class InteropRestoreTests
{
    private const ulong ApicBase = 0xFEE0_0000;

    // struct kvm_lapic_state of a one-vCPU xAPIC guest as KVM writes it: APIC ID 3, VER 0x0105_0014
    // (6 LVTs, no CMCI), LVT CMCI 0, a periodic timer with 400 of 1000 ticks left, vector 0xA1 in service.
    private static byte[] KvmPage()
    {
        byte[] page = new byte[0x400];
        page[0x023] = 0x03;
        page[0x030] = 0x14; page[0x032] = 0x05; page[0x033] = 0x01;
        page[0x080] = 0x30;
        page[0x0E0] = 0xFF; page[0x0E1] = 0xFF; page[0x0E2] = 0xFF; page[0x0E3] = 0xFF;
        page[0x0F0] = 0xFF; page[0x0F1] = 0x01;
        page[0x100 + 0x50] = 0x02;
        page[0x320] = 0xEC; page[0x322] = 0x02;
        page[0x332] = 0x01; page[0x342] = 0x01; page[0x352] = 0x01; page[0x362] = 0x01; page[0x372] = 0x01;
        page[0x380] = 0xE8; page[0x381] = 0x03;
        page[0x390] = 0x90; page[0x391] = 0x01;
        page[0x3E0] = 0x0B;
        return page;
    }

    private static VirtualMachine Restored(LocalApicState apic)
    {
        MachineState state = LapicStateFile.ToMachineState([apic]);
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        SavedStateResult result = machine.Restore(state);
        Assert.True(result.IsSuccess, result.ToString());
        return machine;
    }

    private static uint Read(Vcpu cpu, int offset)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.ReadMmio(ApicBase + (ulong)offset, out uint value));
        return value;
    }

    [Fact]
    public void KvmPage_WithCmciSlotZero_RestoresAndRuns()
    {
        LapicImportResult imported = KvmLapicState.Import(KvmPage(), 0xFEE0_0900, 3, false);
        Assert.True(imported.IsSuccess, imported.Message);
        Assert.Equal(LocalVectorTable.ResetValue, imported.State!.LvtCmci);

        VirtualMachine machine = Restored(imported.State);
        Vcpu cpu = machine.GetVcpu(0);
        Assert.Equal(0x0300_0000u, Read(cpu, 0x020));
        Assert.Equal(0x30u, Read(cpu, 0x080));
        Assert.Equal(0xA0u, Read(cpu, 0x0A0));                  // PPR: ISRV 0xA1's class above TPR 0x30
        Assert.Equal(1u << 1, Read(cpu, 0x150));                // ISR word 5 bit 1: vector 0xA1
        Assert.Equal(400u, Read(cpu, 0x390));
        Assert.Equal(400, machine.NextTimerDeadline);

        // The timer expires 400 ns later and re-arms a full period (1000 ticks of 1 ns).
        machine.Advance(400);
        Assert.True(cpu.Apic.Irr.Get(0xEC));
        Assert.Equal(1400, machine.NextTimerDeadline);
    }

    [Fact]
    public void KvmPage_WithProgrammedCmci_IsRefusedNamingTheRegister()
    {
        byte[] page = KvmPage();
        page[0x2F0] = 0x30;                                     // LVT CMCI: vector 0x30, unmasked
        LapicImportResult imported = KvmLapicState.Import(page, 0xFEE0_0900, 3, false);
        Assert.True(imported.IsSuccess, imported.Message);

        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        MachineState before = machine.Save();
        SavedStateResult result = machine.Restore(LapicStateFile.ToMachineState([imported.State!]));
        Assert.Equal(SavedStateError.Unsupported, result.Error);
        Assert.Contains("LvtCmci", result.Field);
        Assert.Equal(before, machine.Save());                    // nothing applied
    }

    [Fact]
    public void Export_WritesTheUnimplementedCmciSlotAsZero()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        LocalApicState state = machine.Save().Vcpus[0].Apic;
        Assert.Equal(LocalVectorTable.ResetValue, state.LvtCmci);

        byte[] kvm = KvmLapicState.Export(state, false);
        Assert.Equal(0u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(kvm.AsSpan(0x2F0)));
        byte[] xen = XenLapicRecord.ExportRegisters(state);
        Assert.Equal(0u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(xen.AsSpan(0x2F0)));

        // And back: the slot is the masked reset value again, register for register.
        LapicImportResult back = KvmLapicState.Import(kvm, state.BaseMsr, 3, false);
        Assert.True(back.IsSuccess, back.Message);
        Assert.Equal(state.LvtCmci, back.State!.LvtCmci);
    }

    [Fact]
    public void XenRegisters_WithCmciSlotZero_RestoreIntoAMachine()
    {
        var source = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        Assert.Equal(ApicAccessResult.Ok, source.GetVcpu(0).WriteMmio(ApicBase + 0x0F0, 0x1FF));
        Assert.Equal(ApicAccessResult.Ok, source.GetVcpu(0).WriteMmio(ApicBase + 0x080, 0x40));
        LocalApicState saved = source.Save().Vcpus[0].Apic;

        byte[] registers = XenLapicRecord.ExportRegisters(saved);
        Assert.Equal(0, registers[0x2F0]);
        LapicImportResult imported = XenLapicRecord.From(saved).Import(registers);
        Assert.True(imported.IsSuccess, imported.Message);

        VirtualMachine machine = Restored(imported.State!);
        Assert.Equal(0x40u, Read(machine.GetVcpu(0), 0x080));
        Assert.Equal(0x1FFu, Read(machine.GetVcpu(0), 0x0F0));
    }

    [Fact]
    public void Xen_RefusesAnXApicWhoseIdRegisterIsNotItsInitialId()
    {
        // The guest rewrote its xAPIC ID (writable, SDM "Local APIC ID"): Xen's records carry only
        // the register, so the initial APIC ID 3 could not come back.
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(0).WriteMmio(ApicBase + 0x020, 0x0700_0000));
        LocalApicState state = machine.Save().Vcpus[0].Apic;
        ArgumentException refused = Assert.Throws<ArgumentException>(() => LapicStateFile.Write(LapicStateFormat.Xen, [state]));
        Assert.Contains("initial APIC ID 0x3", refused.Message, StringComparison.Ordinal);

        // KVM's container carries the x2APIC ID beside the page: it converts and reads back.
        LapicFileReadResult kvm = LapicStateFile.Read(LapicStateFormat.Kvm, LapicStateFile.Write(LapicStateFormat.Kvm, [state]));
        Assert.True(kvm.IsSuccess, kvm.ToString());
        Assert.Equal(3u, kvm.Apics[0].X2ApicId);
        Assert.Equal(0x0700_0000u, kvm.Apics[0].XApicId);
    }

    [Fact]
    public void Readers_RefuseApicsNoMachineHas()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 1, ApicIds = [3] });
        LocalApicState state = machine.Save().Vcpus[0].Apic;
        byte[] file = LapicStateFile.Write(LapicStateFormat.Kvm, [state]);
        Assert.True(LapicStateFile.Read(LapicStateFormat.Kvm, file).IsSuccess);

        // The saved mode must be the one IA32_APIC_BASE names.
        byte[] vapic = LapicStateFile.Write(LapicStateFormat.Vapic, [state with { Mode = ApicMode.X2Apic }]);
        LapicFileReadResult read = LapicStateFile.Read(LapicStateFormat.Vapic, vapic);
        Assert.Equal(InteropError.Inconsistent, read.Error);
        Assert.Contains("says XApic", read.Message, StringComparison.Ordinal);
    }
}
