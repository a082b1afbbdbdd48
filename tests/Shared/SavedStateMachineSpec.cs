using CsCheck;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Testing;

/// <summary>
/// A machine for the saved-state round-trip properties (bare and under a virtualization mode): 1-16
/// vCPUs, an APIC ID scheme, the platform switches, the TSC offset and the TSC and APIC timer
/// frequencies. <see cref="Boot"/> leaves it as a guest does after boot.
/// </summary>
/// <param name="X2ApicMask">Bit i: vCPU i switches to x2APIC during <see cref="Boot"/>.</param>
internal sealed record SavedStateMachineSpec(
    int VcpuCount, int IdScheme, bool ForceX2Apic, byte IoApicVersion, bool ExtendedDestinationId, int X2ApicMask,
    CpuVendor Vendor = CpuVendor.Intel, long TscOffset = 0,
    long TscFrequencyHz = MachineOptions.DefaultFrequencyHz, long ApicTimerFrequencyHz = MachineOptions.DefaultFrequencyHz)
{
    /// <summary>
    /// APIC timer frequencies other than the default 1 GHz (each divides 1 GHz, so that a bus cycle is
    /// a whole number of ns): 500, 200, 100 and 25 MHz, 1 MHz and the slowest allowed, 1 kHz.
    /// </summary>
    private static readonly long[] s_apicTimerFrequencies = [500_000_000, 200_000_000, 100_000_000, 25_000_000, 1_000_000, 1_000];

    /// <summary>
    /// Mostly the default 1 GHz; otherwise anything from 1 MHz to 10 GHz, below 1 GHz as often as above
    /// (a uniform draw over the whole range would almost never be slower than the default).
    /// </summary>
    private static readonly Gen<long> s_tscFrequency = Gen.Frequency(
        (6, Gen.Const(MachineOptions.DefaultFrequencyHz)),
        (1, Gen.Long[MachineOptions.MinTscFrequencyHz, MachineOptions.DefaultFrequencyHz]),
        (1, Gen.Long[MachineOptions.DefaultFrequencyHz, 10_000_000_000]));

    /// <summary>Mostly the default 1 GHz; otherwise one of <see cref="s_apicTimerFrequencies"/>.</summary>
    private static readonly Gen<long> s_apicTimerFrequency = Gen.Frequency(
        (3, Gen.Const(MachineOptions.DefaultFrequencyHz)),
        (1, Gen.Int[0, s_apicTimerFrequencies.Length - 1].Select(i => s_apicTimerFrequencies[i])));

    /// <summary>
    /// Machines of 1-16 vCPUs; 1 in 8 with locked x2APIC, 1 in 8 with a version 0x11 IOAPIC, half
    /// without the extended destination ID, half AMD; a TSC offset of 0 (half), small, or anything;
    /// 1 in 4 with a TSC that is not 1 GHz and 1 in 4 with an APIC timer that is not 1 GHz.
    /// </summary>
    public static readonly Gen<SavedStateMachineSpec> Generator = Gen.Select(
        Gen.Int[1, 16], Gen.Int[0, 3], Gen.Int[0, 7], Gen.Int[0, 7], Gen.Bool, Gen.Int[0, 0xFFFF], Gen.Bool,
        Gen.Frequency((2, Gen.Const(0L)), (1, Gen.Long[-1_000_000, 1_000_000]), (1, Gen.Long)),
        s_tscFrequency, s_apicTimerFrequency,
        (n, scheme, force, io, extendedDestinationId, x2, amd, tscOffset, tscHz, timerHz) => new SavedStateMachineSpec(
            n, scheme, force == 0, io == 0 ? (byte)0x11 : (byte)0x20, extendedDestinationId, x2,
            amd ? CpuVendor.Amd : CpuVendor.Intel, tscOffset, tscHz, timerHz));

    public MachineOptions Options => new()
    {
        VcpuCount = VcpuCount,
        ApicIds = IdScheme switch
        {
            0 => null,
            1 => Enumerable.Range(0, VcpuCount).Select(i => (uint)((2 * i) + 1)).ToArray(),
            2 => Enumerable.Range(0, VcpuCount).Select(i => (uint)(0x1F0 + (i * 0x11))).ToArray(), // above 0xFE: x2APIC from RESET
            _ => Enumerable.Range(0, VcpuCount).Select(i => (uint)(i * 0x10)).ToArray(),
        },
        ForceX2Apic = ForceX2Apic,
        IoApicVersion = IoApicVersion,
        ExtendedDestinationId = ExtendedDestinationId,
        CpuVendor = Vendor,
        TscOffset = TscOffset,
        TscFrequencyHz = TscFrequencyHz,
        ApicTimerFrequencyHz = ApicTimerFrequencyHz,
    };

    /// <summary>A fresh machine at power-on, bare or under <paramref name="virtualization"/>.</summary>
    public VirtualMachine Create(IInterruptVirtualization? virtualization = null) => new(Options, virtualization);

    /// <summary>
    /// A machine as a guest leaves it after boot: every AP started by SIPI, every LAPIC
    /// software-enabled, some switched to x2APIC (<see cref="X2ApicMask"/>).
    /// </summary>
    public VirtualMachine Boot(IInterruptVirtualization? virtualization = null)
    {
        VirtualMachine machine = Create(virtualization);
        for (int i = 1; i < VcpuCount; i++)
        {
            var sipi = new InterruptMessage((byte)(0x10 + i), DeliveryMode.StartUp, DestinationMode.Physical, 0, DestinationShorthand.Self,
                LevelTriggered: false, Assert: true, RedirectionHint: false, InterruptSource.External, SourceVcpu: i);
            machine.Deliver(in sipi);
            machine.GetVcpu(i).Accept();
        }

        for (int i = 0; i < VcpuCount; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            if (cpu.Apic.Mode == ApicMode.XApic && ((X2ApicMask >> i) & 1) != 0)
            {
                cpu.WriteMsr(ApicBaseMsr.Msr, cpu.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable);
            }

            WorkloadDriver.WriteRegister(cpu, 0x0F0, 0x1FF);
        }

        return machine;
    }
}
