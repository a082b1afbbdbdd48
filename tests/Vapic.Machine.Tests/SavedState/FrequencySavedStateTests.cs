using System.Buffers.Binary;
using CsCheck;
using Vapic.Apic.SavedState;
using Vapic.Machine.SavedState;
using Xunit;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>
/// The TSC and APIC timer frequencies in the saved state: carried by format 1.1 (machine section
/// 1.1, docs/saved-state.md), defaulted to 1 GHz when reading 1.0, and required to match on restore.
/// </summary>
public sealed class FrequencySavedStateTests
{
    private const long TscHz = 2_500_000_000L;
    private const long ApicHz = 25_000_000L;
    private const uint TimerVector = 0x40;

    /// <summary>Payload offset of the frequencies in a 2-vCPU file: machine payload at 18, then 16 + 2 × 4 bytes.</summary>
    private const int FrequenciesAt = 18 + 16 + 8;

    private static MachineOptions Options(long tscHz = TscHz, long apicHz = ApicHz) =>
        new() { VcpuCount = 2, TscFrequencyHz = tscHz, ApicTimerFrequencyHz = apicHz, TscOffset = 1_000 };

    /// <summary>
    /// vCPU 0 armed with a TSC deadline that falls mid-tick, vCPU 1 (started by SIPI) with a periodic
    /// APIC timer at ÷2; then time runs to a point that is not a whole number of ticks of either.
    /// </summary>
    private static VirtualMachine Busy(MachineOptions options)
    {
        var machine = new VirtualMachine(options);
        Vcpu bsp = machine.GetVcpu(0);
        bsp.EnableSoftware();
        bsp.Write(Reg.LvtTimer, (2u << 17) | TimerVector);
        machine.Advance(1_001);
        bsp.WrMsr(Msr.TscDeadline, bsp.RdMsr(Vcpu.MsrTsc) + 1_000_000);

        bsp.SendXApicIpi(1u << 24, 0x0000_4500);   // INIT
        bsp.SendXApicIpi(1u << 24, 0x0000_4620);   // SIPI, vector 0x20
        Vcpu ap = machine.GetVcpu(1);
        Assert.Equal(CpuEventKind.Init, ap.Accept().Kind);
        Assert.Equal(new CpuEvent(CpuEventKind.StartUp, 0x20), ap.Accept());
        ap.EnableSoftware();
        ap.Write(Reg.DivideConfiguration, 0x0);
        ap.Write(Reg.LvtTimer, (1u << 17) | TimerVector);
        ap.Write(Reg.InitialCount, 77);
        machine.Advance(20_013);
        return machine;
    }

    [Fact]
    public void RoundTrip_NonDefaultFrequencies_AreWrittenReadAndContinueExactly()
    {
        VirtualMachine source = Busy(Options());
        MachineState saved = source.Save();
        Assert.Equal((TscHz, ApicHz), (saved.Configuration.TscFrequencyHz, saved.Configuration.ApicTimerFrequencyHz));

        byte[] file = SavedStateSerializer.Serialize(saved);
        Assert.Equal(0x0101, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(8)));
        Assert.Equal(0x0101, BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(12)));
        Assert.Equal(16u + 8 + 16, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(14)));
        Assert.Equal((ulong)TscHz, BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(FrequenciesAt)));
        Assert.Equal((ulong)ApicHz, BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(FrequenciesAt + 8)));

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);
        Assert.True(read.IsSuccess, read.ToString());
        Assert.Equal(saved, read.State);

        var restored = new VirtualMachine(Options());
        Assert.True(restored.Restore(read.State!).IsSuccess);
        Assert.Equal(file, SavedStateSerializer.Serialize(restored.Save()));

        // Counters are not state: compare the expiries each machine counts from here on.
        long[] baseline = [source.GetVcpu(0).Apic.Counters.TimerExpiries, source.GetVcpu(1).Apic.Counters.TimerExpiries];
        for (int step = 0; step < 50; step++)
        {
            source.Advance(9_973);
            restored.Advance(9_973);
            Assert.Equal(source.NextTimerDeadline, restored.NextTimerDeadline);
            for (int i = 0; i < 2; i++)
            {
                Vcpu a = source.GetVcpu(i), b = restored.GetVcpu(i);
                Assert.Equal(a.RdMsr(Vcpu.MsrTsc), b.RdMsr(Vcpu.MsrTsc));
                Assert.Equal(a.Read(Reg.CurrentCount), b.Read(Reg.CurrentCount));
                Assert.Equal(a.Apic.Counters.TimerExpiries - baseline[i], b.Apic.Counters.TimerExpiries);
            }
        }

        Assert.Equal(1, restored.GetVcpu(0).Apic.Counters.TimerExpiries);         // the TSC deadline
        Assert.True(restored.GetVcpu(1).Apic.Counters.TimerExpiries > 50);          // 77 × 80 ns periods
        Assert.Equal(source.Save(), restored.Save());
    }

    [Fact]
    public void RoundTrip_TscDeadlineSavedMidTick_FiresAtTheSameNanosecond()
    {
        VirtualMachine source = Busy(Options());
        long deadline = source.GetVcpu(0).Apic.TimerDeadline;

        // At t = 1001 the TSC was ⌊2502.5⌋ + 1000 = 3502; D = 1,003,502 is first reached at
        // ⌈1,002,502 / 2.5⌉ = 401,001 ns (⌊1,002,502.5⌋ + 1000 ≥ D, and at 401,000 the TSC is 1,003,500).
        Assert.Equal(401_001L, deadline);

        byte[] file = SavedStateSerializer.Serialize(source.Save());
        var restored = new VirtualMachine(Options());
        Assert.True(restored.Restore(SavedStateSerializer.Deserialize(file).State!).IsSuccess);
        Assert.Equal(deadline, restored.GetVcpu(0).Apic.TimerDeadline);

        long before = restored.GetVcpu(0).Apic.Counters.TimerExpiries;
        restored.AdvanceTo(deadline - 1);
        Assert.Equal(before, restored.GetVcpu(0).Apic.Counters.TimerExpiries);
        restored.AdvanceTo(deadline);
        Assert.Equal(before + 1, restored.GetVcpu(0).Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void Version10File_StillReads_WithOneGigahertzFrequencies()
    {
        byte[] file = AsVersion10(SavedStateSerializer.Serialize(new VirtualMachine(Options(MachineOptions.DefaultFrequencyHz, MachineOptions.DefaultFrequencyHz)).Save()));

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);

        Assert.True(read.IsSuccess, read.ToString());
        Assert.Equal(0x0100, read.State!.FormatVersion);
        Assert.Equal((1_000_000_000L, 1_000_000_000L), (read.State.Configuration.TscFrequencyHz, read.State.Configuration.ApicTimerFrequencyHz));

        var machine = new VirtualMachine(Options(MachineOptions.DefaultFrequencyHz, MachineOptions.DefaultFrequencyHz));
        Assert.True(machine.Restore(read.State).IsSuccess);

        // A 1.0 file describes a 1 GHz machine: it does not go into a machine with another TSC rate.
        SavedStateResult refused = new VirtualMachine(Options(TscHz, MachineOptions.DefaultFrequencyHz)).Restore(read.State);
        Assert.Equal((SavedStateError.ConfigurationMismatch, "Configuration.TscFrequencyHz"), (refused.Error, refused.Field));
    }

    [Fact]
    public void Version10File_WithAVersion11MachineSectionLength_IsALengthMismatch()
    {
        byte[] file = SavedStateSerializer.Serialize(new VirtualMachine(Options()).Save());
        file[12] = 0x00;   // machine section 1.0, but 16 bytes of frequencies follow the APIC IDs

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);

        Assert.Equal((SavedStateFormatError.LengthMismatch, 14), (read.Error, read.Offset));
    }

    [Theory] // The saved machine runs its TSC at 2.5 GHz and its APIC bus at 25 MHz; the target differs.
    [InlineData(1_000_000_000L, ApicHz, "Configuration.TscFrequencyHz")]
    [InlineData(2_500_000_001L, ApicHz, "Configuration.TscFrequencyHz")]
    [InlineData(TscHz, 50_000_000L, "Configuration.ApicTimerFrequencyHz")]
    [InlineData(1_000_000_000L, 1_000_000_000L, "Configuration.TscFrequencyHz")]
    public void Restore_IntoAnotherFrequency_IsAConfigurationMismatchNamingTheField(long tscHz, long apicHz, string field)
    {
        MachineState state = Busy(Options()).Save();
        var target = new VirtualMachine(Options(tscHz, apicHz));
        target.Advance(5);
        byte[] before = SavedStateSerializer.Serialize(target.Save());

        SavedStateResult result = target.Restore(state);

        Assert.Equal((SavedStateError.ConfigurationMismatch, field), (result.Error, result.Field));
        Assert.Contains("Hz", result.Message, StringComparison.Ordinal);
        Assert.Equal(before, SavedStateSerializer.Serialize(target.Save()));
    }

    [Fact]
    public void Version11File_ZeroFrequency_ReadsAsTheOneGigahertzDefault()
    {
        byte[] file = SavedStateSerializer.Serialize(new VirtualMachine(Options()).Save());
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(FrequenciesAt), 0);

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);

        Assert.True(read.IsSuccess, read.ToString());
        Assert.Equal((1_000_000_000L, ApicHz), (read.State!.Configuration.TscFrequencyHz, read.State.Configuration.ApicTimerFrequencyHz));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    public void Version11File_FrequencyAbove63Bits_IsAnInvalidValueAtItsOffset(int field)
    {
        byte[] file = SavedStateSerializer.Serialize(new VirtualMachine(Options()).Save());
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(FrequenciesAt + field), 1UL << 63);

        SavedStateReadResult read = SavedStateSerializer.Deserialize(file);

        Assert.Equal((SavedStateFormatError.InvalidValue, FrequenciesAt + field), (read.Error, read.Offset));
        Assert.Null(read.State);
    }

    [Theory]
    [InlineData(0L, 1_000_000_000L)]
    [InlineData(1_000_000_000L, -1L)]
    public void Serialize_NonPositiveFrequency_IsAnArgumentError(long tscHz, long apicHz)
    {
        MachineState state = new VirtualMachine(Options()).Save();
        state = state with { Configuration = state.Configuration with { TscFrequencyHz = tscHz, ApicTimerFrequencyHz = apicHz } };
        Assert.Throws<ArgumentException>(() => SavedStateSerializer.Serialize(state));
    }

    [Fact]
    public void SaveAtAnyInstant_RestoredMachine_ContinuesLikeTheOriginal() =>
        Gen.Select(Gen.Long[1_000_000, 10_000_000_000], Gen.Int[0, 6], Gen.Long[1, 3_000_000], Gen.Long[1, 50_000], Gen.UInt[1, 5_000])
            .Sample((tscHz, busPower, deadlineTicks, saveAt, initialCount) =>
            {
                // APIC bus cycles of 1, 2, 4, 5, 8, 10 or 25 ns (the frequency divides 10^9).
                long apicHz = 1_000_000_000L / new[] { 1, 2, 4, 5, 8, 10, 25 }[busPower];
                MachineOptions options = Options(tscHz, apicHz);
                var source = new VirtualMachine(options);
                Vcpu bsp = source.GetVcpu(0);
                bsp.EnableSoftware();
                bsp.Write(Reg.LvtTimer, (2u << 17) | TimerVector);
                source.Advance(saveAt % 997);
                bsp.WrMsr(Msr.TscDeadline, bsp.RdMsr(Vcpu.MsrTsc) + (ulong)deadlineTicks);
                source.Advance(saveAt);

                var restored = new VirtualMachine(options);
                Assert.True(restored.Restore(SavedStateSerializer.Deserialize(SavedStateSerializer.Serialize(source.Save())).State!).IsSuccess);
                Assert.Equal(source.GetVcpu(0).Apic.TimerDeadline, restored.GetVcpu(0).Apic.TimerDeadline);
                Assert.Equal(source.GetVcpu(0).RdMsr(Vcpu.MsrTsc), restored.GetVcpu(0).RdMsr(Vcpu.MsrTsc));
                long baseline = source.GetVcpu(0).Apic.Counters.TimerExpiries;   // counters are not state

                // Run both past the deadline (at most 3 × 10^6 ticks: 3 × 10^15 / f ns), then side by
                // side on a periodic APIC timer.
                foreach (VirtualMachine m in new[] { source, restored })
                {
                    m.Advance((3_000_000_000_000_000 / tscHz) + 1);
                    m.GetVcpu(0).Write(Reg.LvtTimer, (1u << 17) | TimerVector);
                    m.GetVcpu(0).Write(Reg.InitialCount, initialCount);
                    m.Advance(saveAt);
                }

                Assert.Equal(source.Save(), restored.Save());
                Assert.Equal(source.GetVcpu(0).Apic.Counters.TimerExpiries - baseline, restored.GetVcpu(0).Apic.Counters.TimerExpiries);
            }, iter: 300);

    /// <summary>
    /// The same file as format 1.0 wrote it: header and machine section version 0x0100, and the
    /// machine payload without the 16 frequency bytes after the APIC IDs.
    /// </summary>
    private static byte[] AsVersion10(byte[] file)
    {
        int machineLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(14));
        int frequencies = 18 + machineLength - 16;
        byte[] old = [.. file.AsSpan(0, frequencies), .. file.AsSpan(frequencies + 16)];
        BinaryPrimitives.WriteUInt16LittleEndian(old.AsSpan(8), 0x0100);
        BinaryPrimitives.WriteUInt16LittleEndian(old.AsSpan(12), 0x0100);
        BinaryPrimitives.WriteUInt32LittleEndian(old.AsSpan(14), (uint)(machineLength - 16));
        return old;
    }
}
