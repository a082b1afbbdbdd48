using Vapic.Fuzz.Oracles;
using Vapic.Machine;
using Vapic.Machine.Acpi;
using Vapic.Machine.Interop;
using Vapic.Machine.SavedState;
using Vapic.Virtualization.Configuration;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>
/// The checked-in binary seeds are what their names say and are accepted by today's readers: a
/// seed the readers refuse teaches the fuzzer nothing past the header (re-run --write-seeds).
/// </summary>
public sealed class SeedTests
{
    [Theory]
    [InlineData("power-on-1.vss", 1)]
    [InlineData("running-4.vss", 4)]
    [InlineData("running-x2apic-sparse.vss", 2)]
    [InlineData("running-locked-amd-ioapic11.vss", 3)]
    public void SavedStateSeed_DecodesAndRestoresIntoItsMachine(string file, int vcpus)
    {
        SavedStateReadResult read = SavedStateSerializer.Deserialize(Seed("saved-state", file));
        Assert.True(read.IsSuccess, read.ToString());
        MachineState state = read.State!;
        Assert.Equal(vcpus, state.Vcpus.Length);

        MachineOptions options = Oracles.RestoreOracle.OptionsOf(state.Configuration)!;
        var machine = new VirtualMachine(options);
        Assert.True(machine.Restore(state).IsSuccess);
    }

    [Fact]
    public void RunningSeed_HasEveryApStartedAndAVectorInService()
    {
        MachineState state = SavedStateSerializer.Deserialize(Seed("saved-state", "running-4.vss")).State!;

        Assert.All(state.Vcpus, vcpu => Assert.Equal(VcpuRunState.Running, vcpu.RunState));
        Assert.True(state.Vcpus[0].Apic.Isr.Get(0x60));
        Assert.True(state.Vcpus[0].Apic.Irr.Get(0x70));
        Assert.Equal(0x9A000UL, state.Vcpus[1].EntryPoint);
    }

    [Theory]
    [InlineData("kvm", "power-on-1.kvm", LapicStateFormat.Kvm, 1)]
    [InlineData("kvm", "running-4.kvm", LapicStateFormat.Kvm, 4)]
    [InlineData("kvm", "running-x2apic-sparse-16bit-ids.kvm", LapicStateFormat.Kvm, 2)]
    [InlineData("kvm", "running-locked.kvm", LapicStateFormat.Kvm, 3)]
    [InlineData("xen", "power-on-1.xen", LapicStateFormat.Xen, 1)]
    [InlineData("xen", "running-4.xen", LapicStateFormat.Xen, 4)]
    [InlineData("xen", "running-x2apic-sparse.xen", LapicStateFormat.Xen, 2)]
    [InlineData("xen", "running-locked.xen", LapicStateFormat.Xen, 3)]
    [InlineData("lapic-file", "running-2.vss", LapicStateFormat.Vapic, 2)]
    [InlineData("lapic-file", "running-2.kvm", LapicStateFormat.Kvm, 2)]
    [InlineData("lapic-file", "running-2.xen", LapicStateFormat.Xen, 2)]
    public void LapicFileSeed_IsDetectedAndRead(string target, string file, LapicStateFormat format, int apics)
    {
        byte[] data = Seed(target, file);

        LapicFileReadResult read = LapicStateFile.Read(LapicStateFile.Detect(data), data);

        Assert.Equal(format, LapicStateFile.Detect(data));
        Assert.True(read.IsSuccess, read.ToString());
        Assert.Equal(apics, read.Apics.Length);
        Assert.True(RestoreOracle.IsRestorable(read.Apics));
    }

    [Theory]
    [InlineData("vcpus-1.madt", 1, 0)]
    [InlineData("vcpus-4.madt", 4, 0)]
    [InlineData("vcpus-300.madt", 255, 45)]
    [InlineData("vcpus-4-locked.madt", 0, 4)]
    [InlineData("sparse-x2apic-no-pcat.madt", 0, 2)]
    public void MadtSeed_IsValidWithItsProcessors(string file, int localApics, int localX2Apics)
    {
        // Madt.CreateEntries: type 0 (Processor Local APIC) for IDs up to 0xFE, type 9 (Processor
        // Local x2APIC) above (300 vCPUs: IDs 0xFF-0x12B; the sparse IDs 0x100 and 0x2_0005), and
        // type 9 for every vCPU of a locked x2APIC machine.
        MadtDecodeResult decoded = Madt.Decode(Seed("madt", file));

        Assert.True(decoded.IsValid, string.Join("; ", decoded.Errors));
        Assert.Equal(localApics, decoded.Count(MadtEntryType.LocalApic));
        Assert.Equal(localX2Apics, decoded.Count(MadtEntryType.LocalX2Apic));
    }

    [Fact]
    public void ConfigSeeds_AllLoad()
    {
        foreach (FuzzInput seed in TargetData.Corpus("config"))
        {
            ConfigurationLoadResult loaded = MachineConfigurationLoader.Parse(System.Text.Encoding.UTF8.GetString(seed.Data), seed.Name);
            Assert.True(loaded.Succeeded, loaded.Error?.ToString());
        }
    }

    private static byte[] Seed(string target, string file) =>
        File.ReadAllBytes(Path.Combine(FuzzCorpus.CorpusDirectory(TargetData.Root, target), file));
}
