// The saved-state tests of this project (MachineSavedStateTests, SavedStateSerializerTests) build
// their machines with the SavedStateMachineSpec shared with Vapic.Virtualization.Tests.
global using Vapic.Testing;
using System.Text;
using CsCheck;
using Vapic.Apic;
using Vapic.Machine.SavedState;

namespace Vapic.Machine.Tests.SavedState;

/// <summary>
/// The bare-machine saved-state workload: every operation of <see cref="WorkloadDriver"/>, logged
/// with the host's view (a bare machine has no mode that could see things differently), plus host
/// scheduling changes of one vCPU at a time.
/// </summary>
internal static class SavedStateDriver
{
    /// <summary>The guest's operations and, now and then, a vCPU's host state.</summary>
    public static readonly Gen<WorkloadStep> Steps = WorkloadStep.Generator((1, WorkloadOp.HostState));

    /// <summary>Runs <paramref name="step"/> and logs what it observed, host states included.</summary>
    public static void Run(VirtualMachine machine, WorkloadStep step, StringBuilder log)
    {
        if (WorkloadDriver.HostView.TryRun(machine, step, log))
        {
            return;
        }

        // WorkloadOp.HostState, the only host operation in Steps.
        int index = step.Cpu % machine.VcpuCount;
        Vcpu cpu = machine.GetVcpu(index);
        cpu.SetHostState((VcpuHostState)(step.A % 3));
        log.AppendLine($"host {index} {cpu.HostState}");
    }

    /// <summary>Every vCPU's registers, host state and pending events, the IOAPIC and the clock.</summary>
    public static string DumpAll(VirtualMachine machine) => WorkloadDriver.HostView.DumpAll(machine);

    /// <inheritdoc cref="WorkloadDriver.WriteRegister"/>
    public static ApicAccessResult WriteRegister(Vcpu cpu, int offset, uint value) => WorkloadDriver.WriteRegister(cpu, offset, value);
}

/// <summary>Mutations of a saved-state file for the corruption property.</summary>
internal readonly record struct Corruption(int Kind, uint A, uint B, uint C, byte[] Noise)
{
    public static readonly Gen<Corruption> Generator = Gen.Select(Gen.Int[0, 7], Gen.UInt, Gen.UInt, Gen.UInt, Gen.Byte.Array[0, 300],
        (k, a, b, c, noise) => new Corruption(k, a, b, c, noise));

    public byte[] Apply(byte[] original)
    {
        byte[] bytes = (byte[])original.Clone();
        switch (Kind)
        {
            case 0:
            case 1:
                {
                    // One to eight bit flips.
                    uint seed = A;
                    int flips = 1 + (int)(B % 8);
                    for (int i = 0; i < flips; i++)
                    {
                        seed = (seed * 1_664_525) + 1_013_904_223;
                        int bit = (int)(seed % (uint)(bytes.Length * 8));
                        bytes[bit / 8] ^= (byte)(1 << (bit % 8));
                    }

                    return bytes;
                }

            case 2:
                return bytes[..(int)(A % (uint)bytes.Length)];
            case 3:
                {
                    // A different format or section version.
                    int at = A % 2 == 0 ? 8 : SectionOffset(bytes, (int)(B % 64)) + 2;
                    bytes[at] = (byte)C;
                    bytes[at + 1] = (byte)(C >> 8);
                    return bytes;
                }

            case 4:
                return A % 2 == 0 ? Noise : [.. "VAPICSS\0"u8.ToArray(), .. Noise];
            case 5:
                {
                    // A random 32-bit value over any aligned field.
                    int at = (int)(A % (uint)(bytes.Length - 3));
                    BitConverter.TryWriteBytes(bytes.AsSpan(at), C % 3 == 0 ? B : B % 256);
                    return bytes;
                }

            case 6:
                {
                    // Duplicate or drop a whole section.
                    int start = SectionOffset(bytes, (int)(A % 64));
                    int length = 8 + BitConverter.ToInt32(bytes, start + 4);
                    return B % 2 == 0
                        ? [.. bytes[..(start + length)], .. bytes[start..(start + length)], .. bytes[(start + length)..]]
                        : [.. bytes[..start], .. bytes[(start + length)..]];
                }

            default:
                // Trailing bytes.
                return [.. bytes, .. Noise.Length == 0 ? [0] : Noise];
        }
    }

    /// <summary>The offset of section number <paramref name="n"/> (wrapping) in a well-formed file.</summary>
    private static int SectionOffset(byte[] file, int n)
    {
        var offsets = new List<int>();
        int at = SavedStateSerializer.HeaderSize;
        while (at + 8 <= file.Length)
        {
            offsets.Add(at);
            at += 8 + BitConverter.ToInt32(file, at + 4);
        }

        return offsets[n % offsets.Count];
    }
}
