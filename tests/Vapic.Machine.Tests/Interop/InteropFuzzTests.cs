using CsCheck;
using Vapic.Machine.Interop;
using Xunit;

namespace Vapic.Machine.Tests.Interop;

/// <summary>The KVM, Xen and Vapic file decoders never throw, whatever the bytes.</summary>
public sealed class InteropFuzzTests
{
    private static readonly LapicStateFormat[] s_formats = [LapicStateFormat.Kvm, LapicStateFormat.Xen, LapicStateFormat.Vapic];

    [Fact]
    public void RandomBytes_NeverThrow()
    {
        Gen.Byte.Array[0, 3000].Sample(bytes =>
        {
            foreach (LapicStateFormat format in s_formats)
            {
                LapicFileReadResult read = LapicStateFile.Read(format, bytes);
                Assert.True(read.IsSuccess || read.Message is not null);
            }
        }, iter: 2000);
    }

    [Fact]
    public void CorruptedValidFiles_NeverThrow()
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 });
        var apics = new[] { machine.Save().Vcpus[0].Apic, machine.Save().Vcpus[1].Apic };
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, int.MaxValue].Array[1, 8], Gen.Byte.Array[1, 8], Gen.Int[0, 2100]).Sample((which, positions, values, cut) =>
        {
            LapicStateFormat format = s_formats[which];
            byte[] file = LapicStateFile.Write(format, apics);
            for (int i = 0; i < positions.Length; i++)
            {
                file[positions[i] % file.Length] ^= values[i % values.Length];
            }

            // Every other case is also truncated, to a random length.
            int length = cut % 2 == 0 ? cut % (file.Length + 1) : file.Length;
            LapicFileReadResult read = LapicStateFile.Read(format, file.AsSpan(0, length));
            Assert.True(read.IsSuccess || read.Message is not null);
        }, iter: 2000);
    }
}
