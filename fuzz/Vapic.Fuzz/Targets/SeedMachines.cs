using Vapic.Apic.SavedState;
using Vapic.Fuzz.Oracles;
using Vapic.Machine;

namespace Vapic.Fuzz.Targets;

/// <summary>The machines the binary seeds (saved states, KVM and Xen files) are taken from.</summary>
internal static class SeedMachines
{
    /// <summary>Two vCPUs with x2APIC IDs above 0xFE: the LAPICs start in x2APIC mode.</summary>
    public static MachineOptions SparseX2Apic { get; } = new()
    {
        VcpuCount = 2,
        ApicIds = [0x100, 0x2_0005],
        TscOffset = -5000,
        TscFrequencyHz = 2_500_000_000,
        ApicTimerFrequencyHz = 100_000_000,
    };

    /// <summary>Three vCPUs locked in x2APIC mode, AMD, with a version 0x11 IOAPIC (no EOI register, VER bit 24 clear).</summary>
    public static MachineOptions LockedAmd { get; } = new()
    {
        VcpuCount = 3,
        ApicIds = [0, 1, 0xFF],
        ForceX2Apic = true,
        CpuVendor = CpuVendor.Amd,
        IoApicVersion = 0x11,
    };

    /// <summary>Every LAPIC's saved state, in vCPU order.</summary>
    public static List<LocalApicState> Apics(VirtualMachine machine)
    {
        var apics = new List<LocalApicState>(machine.VcpuCount);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            apics.Add(vcpu.Apic.Save());
        }

        return apics;
    }

    /// <summary>A machine of <paramref name="vcpus"/> vCPUs at power-on.</summary>
    public static VirtualMachine PowerOn(int vcpus) => new(new MachineOptions { VcpuCount = vcpus });

    /// <summary>
    /// A machine of <paramref name="options"/> after the harness's warm-up: every AP started, the
    /// BSP with a vector in service, one pending, a periodic timer and a level IOAPIC line asserted.
    /// </summary>
    public static VirtualMachine Running(MachineOptions options)
    {
        var machine = new VirtualMachine(options);
        Vcpu bsp = machine.GetVcpu(0);
        for (int i = 1; i < machine.VcpuCount; i++)
        {
            // INIT, then SIPI with vector 0x9A, to each AP by its APIC ID (SDM "MP Initialization Example").
            uint id = options.ApicIdOf(i);
            GuestRegisters.SendIpi(bsp, 0x0_C500, id);
            GuestRegisters.SendIpi(bsp, 0x0_469A, id);
            machine.GetVcpu(i).Accept();
            machine.GetVcpu(i).Accept();
        }

        GuestRegisters.Warm(machine);
        if (machine.VcpuCount > 1)
        {
            Vcpu ap = machine.GetVcpu(1);
            GuestRegisters.Write(ap, Apic.ApicRegister.SpuriousVectorOffset, 0x1EF);
            GuestRegisters.Write(ap, Apic.ApicRegister.LvtTimerOffset, 0x4_00E0);   // TSC-deadline, vector 0xE0
            ap.WriteMsr(0x6E0, ap.Apic.GuestTscNow + 100_000);
        }

        return machine;
    }
}
