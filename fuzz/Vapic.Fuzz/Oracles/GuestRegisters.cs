using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Fuzz.Oracles;

/// <summary>
/// Register accesses the way a guest driver makes them: through the x2APIC MSRs when its LAPIC is
/// in x2APIC mode, otherwise through the xAPIC MMIO page at the LAPIC's current base.
/// </summary>
public static class GuestRegisters
{
    /// <summary>Writes the register at MMIO <paramref name="offset"/> (its x2APIC MSR is 0x800 + offset / 16).</summary>
    public static ApicAccessResult Write(Vcpu vcpu, int offset, uint value)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        return vcpu.Apic.Mode == ApicMode.X2Apic
            ? vcpu.WriteMsr(ApicRegister.X2ApicMsrBase + (uint)(offset >> 4), value)
            : vcpu.WriteMmio(vcpu.Apic.MmioBase + (uint)offset, value);
    }

    /// <summary>Reads the register at MMIO <paramref name="offset"/>.</summary>
    public static ApicAccessResult Read(Vcpu vcpu, int offset, out ulong value)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        if (vcpu.Apic.Mode == ApicMode.X2Apic)
        {
            return vcpu.ReadMsr(ApicRegister.X2ApicMsrBase + (uint)(offset >> 4), out value);
        }

        ApicAccessResult result = vcpu.ReadMmio(vcpu.Apic.MmioBase + (uint)offset, out uint low);
        value = low;
        return result;
    }

    /// <summary>
    /// Sends an IPI: in x2APIC mode one 64-bit ICR write (destination in bits 63:32), in xAPIC mode
    /// ICR high (destination in bits 31:24) and then ICR low, whose write sends it (SDM "Interrupt
    /// Command Register (ICR)").
    /// </summary>
    public static ApicAccessResult SendIpi(Vcpu vcpu, uint commandLow, uint destination)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        if (vcpu.Apic.Mode == ApicMode.X2Apic)
        {
            return vcpu.WriteMsr(ApicRegister.X2ApicMsrBase + (ApicRegister.InterruptCommandOffset >> 4), ((ulong)destination << 32) | commandLow);
        }

        ApicAccessResult high = vcpu.WriteMmio(vcpu.Apic.MmioBase + ApicRegister.InterruptCommandHighOffset, destination << 24);
        return high != ApicAccessResult.Ok ? high : vcpu.WriteMmio(vcpu.Apic.MmioBase + ApicRegister.InterruptCommandOffset, commandLow);
    }

    /// <summary>
    /// A few steps that leave <paramref name="machine"/> in a state worth comparing: the BSP's APIC
    /// software-enabled with a TPR, a self-IPI taken (so a vector is in service) and another
    /// pending, the timer counting periodically, an IOAPIC pin routed, level-triggered and
    /// asserted, and some virtual time gone by. A restore that is refused must leave all of it.
    /// </summary>
    public static void Warm(VirtualMachine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        Vcpu bsp = machine.GetVcpu(0);
        Write(bsp, ApicRegister.SpuriousVectorOffset, 0x1FF);
        Write(bsp, ApicRegister.TaskPriorityOffset, 0x10);
        Write(bsp, ApicRegister.DivideConfigurationOffset, 0xB);
        Write(bsp, ApicRegister.LvtTimerOffset, 0x2_0040);   // periodic, vector 0x40
        Write(bsp, ApicRegister.InitialCountOffset, 5000);
        SendIpi(bsp, 0x4_4060, 0);                            // self, fixed, vector 0x60
        bsp.Accept();
        SendIpi(bsp, 0x4_4070, 0);
        ulong ioApic = machine.IoApic.BaseAddress;
        machine.IoApic.WriteMmio(ioApic, 0x10 + (2 * 5));     // RTE 5 low: vector 0x75, level, physical
        machine.IoApic.WriteMmio(ioApic + 0x10, 0x8075);
        machine.IoApic.WriteMmio(ioApic, 0x11 + (2 * 5));     // RTE 5 high: destination APIC 0
        machine.IoApic.WriteMmio(ioApic + 0x10, 0);
        machine.SetIrq(5, true);
        machine.Advance(1234);
    }
}
