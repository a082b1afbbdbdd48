using System.Buffers.Binary;
using Vapic.Apic;
using Vapic.Apic.SavedState;
using Vapic.Machine.Interop;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.Interop;

/// <summary>KVM <c>kvm_lapic_state</c> and Xen <c>hvm_hw_lapic</c> import and export (lapic-reference.md §14).</summary>
public sealed class InteropTests
{
    private const ulong ApicBase = 0xFEE0_0000;

    private static void Write(Vcpu cpu, int offset, uint value) =>
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(ApicBase + (ulong)offset, value));

    /// <summary>Two xAPIC vCPUs with programmed registers, a running periodic timer and a pending IPI, saved 250 ns in.</summary>
    private static MachineState ProgrammedXApicMachine()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        Vcpu cpu0 = machine.GetVcpu(0), cpu1 = machine.GetVcpu(1);
        Write(cpu0, 0x0F0, 0x1FF);
        Write(cpu1, 0x0F0, 0x1FF);
        Write(cpu0, 0x080, 0x20);
        Write(cpu1, 0x0D0, 0x0200_0000);
        Write(cpu1, 0x0E0, 0);                  // cluster model: reads 0x0FFF_FFFF
        Write(cpu0, 0x370, 0xE0);
        Write(cpu0, 0x310, 0x0100_0000);
        Write(cpu0, 0x300, 0x0000_4051);        // fixed 0x51 to APIC 1
        Write(cpu0, 0x320, 0x0002_0040);        // periodic, vector 0x40
        Write(cpu0, 0x3E0, 0xB);                // divide by 1
        Write(cpu0, 0x380, 1000);
        machine.Advance(250);
        return machine.Save();
    }

    private static MachineState ProgrammedX2ApicMachine()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x21] });
        Vcpu cpu0 = machine.GetVcpu(0), cpu1 = machine.GetVcpu(1);
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x1B, 0xFEE0_0D00));
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMsr(0x1B, 0xFEE0_0C00));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x80F, 0x1FF));
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMsr(0x80F, 0x1FF));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x808, 0x40));
        Assert.Equal(ApicAccessResult.Ok, cpu0.WriteMsr(0x830, 0x0000_0021_0000_4052));   // fixed 0x52 to x2APIC ID 0x21
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMsr(0x832, 0x30));                    // one-shot, vector 0x30
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMsr(0x83E, 0x3));                     // divide by 16
        Assert.Equal(ApicAccessResult.Ok, cpu1.WriteMsr(0x838, 1000));
        machine.Advance(1600);
        return machine.Save();
    }

    private static void AssertSameRegisters(LocalApicState expected, LocalApicState actual)
    {
        Assert.Equal(expected.Mode, actual.Mode);
        Assert.Equal(expected.X2ApicId, actual.X2ApicId);
        Assert.Equal(LapicRegisterView.Registers(expected), LapicRegisterView.Registers(actual));
    }

    [Fact]
    public void Kvm_XApicMachine_RoundTripsRegisterForRegister()
    {
        MachineState state = ProgrammedXApicMachine();
        foreach (bool ids32 in new[] { false, true })
        {
            foreach (VcpuState vcpu in state.Vcpus)
            {
                LocalApicState saved = vcpu.Apic;
                byte[] page = KvmLapicState.Export(saved, ids32);
                LapicImportResult imported = KvmLapicState.Import(page, saved.BaseMsr, saved.X2ApicId, ids32);
                Assert.True(imported.IsSuccess, imported.Message);
                AssertSameRegisters(saved, imported.State!);
            }
        }

        byte[] cpu0 = KvmLapicState.Export(state.Vcpus[0].Apic, x2ApicApi32BitIds: true);
        byte[] cpu1 = KvmLapicState.Export(state.Vcpus[1].Apic, x2ApicApi32BitIds: true);
        Assert.Equal(0x0100_0000u, LapicPage.Read(cpu1, 0x020));   // xAPIC format in xAPIC mode
        Assert.Equal(0x0FFF_FFFFu, LapicPage.Read(cpu1, 0x0E0));
        Assert.Equal(0x0200_0000u, LapicPage.Read(cpu1, 0x0D0));
        Assert.Equal(1u << (0x51 - 0x40), LapicPage.Read(cpu1, 0x200 + (0x51 / 32 * 0x10)));
        Assert.Equal(0x20u, LapicPage.Read(cpu0, 0x080));
        Assert.Equal(0x20u, LapicPage.Read(cpu0, 0x0A0));           // PPR = TPR with ISR empty
        Assert.Equal(0x0000_4051u, LapicPage.Read(cpu0, 0x300));
        Assert.Equal(0x0100_0000u, LapicPage.Read(cpu0, 0x310));
        Assert.Equal(750u, LapicPage.Read(cpu0, 0x390));            // TMCCT = 1000 − 250 at divide by 1
    }

    [Fact]
    public void Kvm_ImportedTimer_ContinuesFromTheSavedCurrentCount()
    {
        MachineState state = ProgrammedXApicMachine();
        LocalApicState saved = state.Vcpus[0].Apic;
        LocalApicState imported = KvmLapicState.Import(KvmLapicState.Export(saved, false), saved.BaseMsr, 0, false).State!;
        Assert.True(imported.TimerCounting);
        Assert.Equal(750, imported.TimerExpiresInNs);

        // Restored into a fresh machine (as KVM_SET_LAPIC would), the count continues: TMCCT 750 now, fires 750 ns later.
        MachineState machine = LapicStateFile.ToMachineState([imported, state.Vcpus[1].Apic]);
        var target = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        SavedStateResult restored = target.Restore(machine with { Vcpus = [machine.Vcpus[0] with { Apic = imported with { Tsc = saved.Tsc } }, state.Vcpus[1]] });
        Assert.True(restored.IsSuccess, restored.ToString());
        Assert.Equal(ApicAccessResult.Ok, target.GetVcpu(0).ReadMmio(ApicBase + 0x390, out uint count));
        Assert.Equal(750u, count);
        Assert.Equal(750, target.NextTimerDeadline - target.Now);
    }

    [Fact]
    public void Kvm_X2ApicMachine_SplitsIcrAndUsesTheIdFormat()
    {
        MachineState state = ProgrammedX2ApicMachine();
        LocalApicState cpu0 = state.Vcpus[0].Apic, cpu1 = state.Vcpus[1].Apic;

        byte[] page32 = KvmLapicState.Export(cpu1, x2ApicApi32BitIds: true);
        byte[] pageLegacy = KvmLapicState.Export(cpu1, x2ApicApi32BitIds: false);
        Assert.Equal(0x21u, LapicPage.Read(page32, 0x020));
        Assert.Equal(0x2100_0000u, LapicPage.Read(pageLegacy, 0x020));
        Assert.Equal(0x0002_0002u, LapicPage.Read(page32, 0x0D0));   // cluster 2, bit 1 (SDM x2APIC logical ID)
        Assert.Equal(1000u - 100u, LapicPage.Read(page32, 0x390));   // 1600 ns at divide by 16 = 100 ticks

        byte[] icrPage = KvmLapicState.Export(cpu0, x2ApicApi32BitIds: true);
        Assert.Equal(0x0000_4052u, LapicPage.Read(icrPage, 0x300));
        Assert.Equal(0x21u, LapicPage.Read(icrPage, 0x310));

        foreach (LocalApicState saved in new[] { cpu0, cpu1 })
        {
            foreach (bool ids32 in new[] { false, true })
            {
                LapicImportResult imported = KvmLapicState.Import(KvmLapicState.Export(saved, ids32), saved.BaseMsr, saved.X2ApicId, ids32);
                Assert.True(imported.IsSuccess, imported.Message);
                AssertSameRegisters(saved, imported.State!);
            }
        }

        // With 32-bit IDs the page's ID must be the vCPU's (KVM: EINVAL); without, it is ignored.
        Assert.Equal(InteropError.IdMismatch, KvmLapicState.Import(page32, cpu1.BaseMsr, 0x22, true).Error);
        LapicImportResult legacy = KvmLapicState.Import(pageLegacy, cpu1.BaseMsr, 0x22, false);
        Assert.True(legacy.IsSuccess);
        Assert.Equal(0x22u, legacy.State!.X2ApicId);
        Assert.Equal(0x0002_0004u, legacy.State.LogicalDestination);   // LDR recomputed from the ID
    }

    [Fact]
    public void Kvm_HandMadePage_DecodesAsTheKvmLayoutSays()
    {
        // struct kvm_lapic_state: regs[0x400], each register little-endian at its xAPIC offset.
        byte[] page = new byte[0x400];
        page[0x023] = 0x03;                                     // ID 0x0300_0000: APIC ID 3
        page[0x030] = 0x14; page[0x032] = 0x05; page[0x033] = 0x01;   // VER 0x0105_0014
        page[0x080] = 0x30;                                     // TPR 0x30
        page[0x0E0] = 0xFF; page[0x0E1] = 0xFF; page[0x0E2] = 0xFF; page[0x0E3] = 0xFF;   // DFR flat
        page[0x0F0] = 0xFF; page[0x0F1] = 0x01;                 // SVR 0x1FF
        page[0x100 + 0x50] = 0x02;                              // ISR word 5 bit 1: vector 0xA1
        page[0x300] = 0x31; page[0x301] = 0x40; page[0x302] = 0x0C;   // ICR low 0x000C_4031
        page[0x313] = 0x02;                                     // ICR high 0x0200_0000
        page[0x320] = 0xEC; page[0x322] = 0x02;                 // LVT timer 0x0002_00EC: periodic, vector 0xEC
        page[0x332] = 0x01; page[0x342] = 0x01; page[0x352] = 0x01; page[0x362] = 0x01; page[0x372] = 0x01;
        page[0x380] = 0xE8; page[0x381] = 0x03;                 // TMICT 1000
        page[0x390] = 0x90; page[0x391] = 0x01;                 // TMCCT 400
        page[0x3E0] = 0x0B;                                     // DCR: divide by 1

        LapicImportResult result = KvmLapicState.Import(page, 0xFEE0_0900, 3, false);
        Assert.True(result.IsSuccess, result.Message);
        LocalApicState s = result.State!;
        Assert.Equal(ApicMode.XApic, s.Mode);
        Assert.Equal(3u, LapicRegisterView.ApicId(s));
        Assert.Equal(0x0300_0000u, s.XApicId);
        Assert.Equal(0x0105_0014u, s.Version);
        Assert.Equal(0x30u, s.TaskPriority);
        Assert.Equal(0x1FFu, s.SpuriousVector);
        Assert.True(s.Isr.Get(0xA1));
        Assert.Equal(0x000C_4031u, s.InterruptCommandLow);
        Assert.Equal(0x0200_0000u, s.InterruptCommandHigh);
        Assert.Equal(0x0002_00ECu, s.LvtTimer);
        Assert.Equal(1000u, s.InitialCount);
        Assert.True(s.TimerCounting);
        Assert.Equal(600, s.TimerElapsedNs);
        Assert.Equal(400, s.TimerExpiresInNs);
        Assert.Equal(400u, LapicPage.CurrentCountOf(s));
        Assert.Equal(0xA0u, LapicPage.ProcessorPriority(s));   // ISRV 0xA1 class above TPR 0x30

        // A periodic TMCCT of 0 restarts a full period; a TMCCT above TMICT is clamped to TMICT.
        page[0x390] = 0; page[0x391] = 0;
        Assert.Equal(1000, KvmLapicState.Import(page, 0xFEE0_0900, 3, false).State!.TimerExpiresInNs);
        page[0x390] = 0xFF; page[0x391] = 0xFF;
        Assert.Equal(1000, KvmLapicState.Import(page, 0xFEE0_0900, 3, false).State!.TimerExpiresInNs);

        // A one-shot timer with TMCCT 0 has expired.
        page[0x322] = 0; page[0x390] = 0; page[0x391] = 0;
        Assert.False(KvmLapicState.Import(page, 0xFEE0_0900, 3, false).State!.TimerCounting);

        Assert.Equal(InteropError.InvalidApicMode, KvmLapicState.Import(page, 0xFEE0_0400, 3, false).Error);
        Assert.Equal(InteropError.BadLength, KvmLapicState.Import(page.AsSpan(0, 0x3FF), 0xFEE0_0900, 3, false).Error);
    }

    [Fact]
    public void Kvm_X2ApicApiPage_TakesTheRaw32BitId()
    {
        byte[] page = new byte[0x400];
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x020), 0x123);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x0D0), 0xDEAD_BEEF);   // recomputed on import
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x0F0), 0x1FF);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x300), 0x4061);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(0x310), 0x0000_0456);
        LapicImportResult result = KvmLapicState.Import(page, 0xFEE0_0C00, 0x123, true);
        Assert.True(result.IsSuccess, result.Message);
        Assert.Equal(ApicMode.X2Apic, result.State!.Mode);
        Assert.Equal(0x123u, LapicRegisterView.ApicId(result.State));
        Assert.Equal(0x0012_0008u, result.State.LogicalDestination);   // test vector 27
        Assert.Equal(0x0000_0456u, result.State.InterruptCommandHigh);
    }

    [Fact]
    public void Xen_RoundTripsRegisterForRegister()
    {
        foreach (MachineState state in new[] { ProgrammedXApicMachine(), ProgrammedX2ApicMachine() })
        {
            foreach (VcpuState vcpu in state.Vcpus)
            {
                LocalApicState saved = vcpu.Apic;
                XenLapicRecord record = XenLapicRecord.From(saved);
                byte[] bytes = new byte[XenLapicRecord.Size];
                record.WriteTo(bytes);
                LapicImportResult imported = XenLapicRecord.Read(bytes).Import(XenLapicRecord.ExportRegisters(saved));
                Assert.True(imported.IsSuccess, imported.Message);
                AssertSameRegisters(saved, imported.State!);
                Assert.Equal(saved.PendingErrors, imported.State!.PendingErrors);
            }
        }
    }

    [Fact]
    public void Xen_Record_HasTheHvmHwLapicLayout()
    {
        MachineState state = ProgrammedX2ApicMachine();
        LocalApicState cpu1 = state.Vcpus[1].Apic;
        byte[] file = LapicStateFile.Write(LapicStateFormat.Xen, [state.Vcpus[0].Apic, cpu1]);

        // Descriptor: typecode 5, instance 0, length 32; then apic_base_msr, disabled, timer_divisor, tdt_msr, pending_esr.
        Assert.Equal(5, BinaryPrimitives.ReadUInt16LittleEndian(file));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(2)));
        Assert.Equal(32u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(4)));
        Assert.Equal(0xFEE0_0D00UL, BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(8)));
        int second = 8 + 32;
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(second + 2)));
        Assert.Equal(0xFEE0_0C00UL, BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(second + 8)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(second + 16)));    // enabled both ways
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(second + 20)));   // DCR 3: divide by 16
        int regs = 2 * (8 + 32) + 8 + 0x400;   // second LAPIC_REGS record
        Assert.Equal(6, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(regs)));
        Assert.Equal(0x400u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(regs + 4)));
        Assert.Equal(0x21u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(regs + 8 + 0x20)));   // raw x2APIC ID
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(file.Length - 8)));       // END

        // Power-on APIC: software disabled (SVR 0xFF).
        var fresh = new VirtualMachine(new MachineOptions()).Save().Vcpus[0].Apic;
        Assert.Equal(XenLapicRecord.SoftwareDisabled, XenLapicRecord.From(fresh).Disabled);

        // Shorter records from older Xen are zero-extended; EN = 0 with EXTD = 1 is refused.
        XenLapicRecord shortRecord = XenLapicRecord.Read(file.AsSpan(8, 12));
        Assert.Equal((0xFEE0_0D00UL, 0u, 0u), (shortRecord.ApicBaseMsr, shortRecord.TimerDivisor, shortRecord.PendingEsr));
        Assert.Equal(InteropError.InvalidApicMode, new XenLapicRecord(0xFEE0_0400, 1, 1, 0, 0).Import(new byte[0x400]).Error);
    }

    [Theory]
    [InlineData(LapicStateFormat.Kvm)]
    [InlineData(LapicStateFormat.Xen)]
    [InlineData(LapicStateFormat.Vapic)]
    public void Files_RoundTripEveryVcpu(LapicStateFormat format)
    {
        foreach (MachineState state in new[] { ProgrammedXApicMachine(), ProgrammedX2ApicMachine() })
        {
            LocalApicState[] apics = [state.Vcpus[0].Apic, state.Vcpus[1].Apic];
            byte[] file = LapicStateFile.Write(format, apics);
            Assert.Equal(format, LapicStateFile.Detect(file));
            LapicFileReadResult read = LapicStateFile.Read(format, file);
            Assert.True(read.IsSuccess, read.ToString());
            Assert.Equal(2, read.Apics.Length);
            for (int i = 0; i < apics.Length; i++)
            {
                AssertSameRegisters(apics[i], read.Apics[i]);
            }

            // And through Vapic's own format again: vapic → format → vapic.
            LapicFileReadResult back = LapicStateFile.Read(LapicStateFormat.Vapic, LapicStateFile.Write(LapicStateFormat.Vapic, read.Apics));
            Assert.True(back.IsSuccess, back.ToString());
            AssertSameRegisters(apics[1], back.Apics[1]);
        }
    }

    [Fact]
    public void Files_BadInput_GivesTypedErrors()
    {
        Assert.Equal(InteropError.BadHeader, LapicStateFile.Read(LapicStateFormat.Kvm, "VAPICKV"u8).Error);
        byte[] kvm = LapicStateFile.Write(LapicStateFormat.Kvm, [ProgrammedXApicMachine().Vcpus[0].Apic]);
        Assert.Equal(InteropError.Truncated, LapicStateFile.Read(LapicStateFormat.Kvm, kvm.AsSpan(0, kvm.Length - 1)).Error);
        Assert.Equal(InteropError.Truncated, LapicStateFile.Read(LapicStateFormat.Xen, new byte[3]).Error);
        Assert.Equal(InteropError.Empty, LapicStateFile.Read(LapicStateFormat.Xen, new byte[8]).Error);
        byte[] xen = LapicStateFile.Write(LapicStateFormat.Xen, [ProgrammedXApicMachine().Vcpus[0].Apic]);
        xen[40] = 7;   // the LAPIC_REGS record becomes typecode 7: the LAPIC record has no partner
        Assert.Equal(InteropError.Inconsistent, LapicStateFile.Read(LapicStateFormat.Xen, xen).Error);
        Assert.Equal(InteropError.BadHeader, LapicStateFile.Read(LapicStateFormat.Vapic, new byte[100]).Error);
    }

    [Fact]
    public void Vapic_LockedX2ApicMachine_RoundTripsAndRestores()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x123], ForceX2Apic = true });
        Assert.Equal(ApicAccessResult.Ok, machine.GetVcpu(1).WriteMsr(0x80F, 0x1FF));
        MachineState state = machine.Save();
        LocalApicState[] apics = [state.Vcpus[0].Apic, state.Vcpus[1].Apic];

        byte[] kvm = LapicStateFile.Write(LapicStateFormat.Kvm, apics);
        LapicFileReadResult read = LapicStateFile.Read(LapicStateFormat.Kvm, kvm);
        Assert.True(read.IsSuccess, read.ToString());
        AssertSameRegisters(apics[1], read.Apics[1]);
        Assert.Equal(0x0012_0008u, read.Apics[1].LogicalDestination);

        // Vapic → Vapic keeps the lock, so the file restores into a locked machine.
        LapicFileReadResult vapic = LapicStateFile.Read(LapicStateFormat.Vapic, LapicStateFile.Write(LapicStateFormat.Vapic, apics));
        Assert.True(vapic.IsSuccess, vapic.ToString());
        MachineState rebuilt = LapicStateFile.ToMachineState(vapic.Apics);
        Assert.True(rebuilt.Configuration.ForceX2Apic);
        var target = new VirtualMachine(new MachineOptions { VcpuCount = 2, ApicIds = [0, 0x123], ForceX2Apic = true });
        SavedStateResult restored = target.Restore(rebuilt);
        Assert.True(restored.IsSuccess, restored.ToString());
        Assert.Equal(ApicAccessResult.Ok, target.GetVcpu(1).ReadMsr(0x80F, out ulong svr));
        Assert.Equal(0x1FFUL, svr);
    }

    [Fact]
    public void ToMachineState_RepeatedIds_Throws()
    {
        LocalApicState apic = new VirtualMachine(new MachineOptions()).Save().Vcpus[0].Apic;
        Assert.Throws<ArgumentException>(() => LapicStateFile.ToMachineState([apic, apic]));
    }
}
