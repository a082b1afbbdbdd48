using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests;

/// <summary>xAPIC register offsets (lapic-reference.md §1); the x2APIC MSR is 0x800 + (offset &gt;&gt; 4).</summary>
internal static class Reg
{
    public const uint Id = 0x020;
    public const uint Version = 0x030;
    public const uint TaskPriority = 0x080;
    public const uint ProcessorPriority = 0x0A0;
    public const uint Eoi = 0x0B0;
    public const uint LogicalDestination = 0x0D0;
    public const uint DestinationFormat = 0x0E0;
    public const uint SpuriousVector = 0x0F0;
    public const uint InService = 0x100;
    public const uint TriggerMode = 0x180;
    public const uint InterruptRequest = 0x200;
    public const uint ErrorStatus = 0x280;
    public const uint InterruptCommandLow = 0x300;
    public const uint InterruptCommandHigh = 0x310;
    public const uint LvtTimer = 0x320;
    public const uint LvtThermal = 0x330;
    public const uint LvtPerformanceCounter = 0x340;
    public const uint LvtLint0 = 0x350;
    public const uint LvtLint1 = 0x360;
    public const uint LvtError = 0x370;
    public const uint InitialCount = 0x380;
    public const uint CurrentCount = 0x390;
    public const uint DivideConfiguration = 0x3E0;
}

/// <summary>Architectural MSR numbers used by the tests.</summary>
internal static class Msr
{
    public const uint ApicBase = 0x1B;
    public const uint TscDeadline = 0x6E0;
    public const uint X2ApicId = 0x802;
    public const uint X2ApicTaskPriority = 0x808;
    public const uint X2ApicEoi = 0x80B;
    public const uint X2ApicLogicalDestination = 0x80D;
    public const uint X2ApicSpuriousVector = 0x80F;
    public const uint X2ApicInterruptCommand = 0x830;
    public const uint X2ApicSelfIpi = 0x83F;

    /// <summary>The x2APIC MSR of xAPIC register <paramref name="offset"/>.</summary>
    public static uint Of(uint offset) => 0x800 + (offset >> 4);
}

/// <summary>
/// Guest-side helpers: every state change the tests make goes through the accesses a guest has
/// (MMIO, MSR, accept), so the tests see what the architecture shows and nothing else.
/// </summary>
internal static class TestGuest
{
    public const ulong ApicBase = 0xFEE0_0000;
    public const ulong IoApicBase = 0xFEC0_0000;

    /// <summary>IA32_APIC_BASE EN (bit 11) and EXTD (bit 10).</summary>
    public const ulong BaseEnable = 1UL << 11;
    public const ulong BaseExtended = 1UL << 10;

    /// <summary>IOAPIC indirect index of redirection entry <paramref name="pin"/>, low dword.</summary>
    public static byte RteLow(int pin) => (byte)(0x10 + (2 * pin));

    /// <summary>IOAPIC indirect index of redirection entry <paramref name="pin"/>, high dword.</summary>
    public static byte RteHigh(int pin) => (byte)(0x11 + (2 * pin));

    public static VirtualMachine NewMachine(int vcpus, uint[]? ids = null, bool forceX2Apic = false, byte ioApicVersion = 0x20, bool extendedDestinationId = true) =>
        new(new MachineOptions
        {
            VcpuCount = vcpus,
            ApicIds = ids,
            ForceX2Apic = forceX2Apic,
            IoApicVersion = ioApicVersion,
            ExtendedDestinationId = extendedDestinationId,
        });

    /// <summary>Reads IA32_APIC_BASE and returns the mode its EN/EXTD bits select.</summary>
    public static ApicMode Mode(this Vcpu cpu)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.ReadMsr(Msr.ApicBase, out ulong value));
        return (value & (BaseEnable | BaseExtended)) switch
        {
            BaseEnable => ApicMode.XApic,
            BaseEnable | BaseExtended => ApicMode.X2Apic,
            _ => ApicMode.Disabled,
        };
    }

    /// <summary>A 32-bit xAPIC MMIO write at APIC offset <paramref name="offset"/> that must be decoded.</summary>
    public static void Write(this Vcpu cpu, uint offset, uint value) =>
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(ApicBase + offset, value));

    /// <summary>A 32-bit xAPIC MMIO read at APIC offset <paramref name="offset"/> that must be decoded.</summary>
    public static uint Read(this Vcpu cpu, uint offset)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.ReadMmio(ApicBase + offset, out uint value));
        return value;
    }

    public static void WrMsr(this Vcpu cpu, uint msr, ulong value) =>
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMsr(msr, value));

    public static ulong RdMsr(this Vcpu cpu, uint msr)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.ReadMsr(msr, out ulong value));
        return value;
    }

    /// <summary>Reads register <paramref name="offset"/> through MMIO in xAPIC mode or its MSR in x2APIC mode.</summary>
    public static uint ReadRegister(this Vcpu cpu, uint offset) => cpu.Mode() switch
    {
        ApicMode.XApic => cpu.Read(offset),
        ApicMode.X2Apic => (uint)cpu.RdMsr(Msr.Of(offset)),
        _ => throw new InvalidOperationException("The APIC is globally disabled."),
    };

    /// <summary>Writes register <paramref name="offset"/> through MMIO in xAPIC mode or its MSR in x2APIC mode.</summary>
    public static void WriteRegister(this Vcpu cpu, uint offset, uint value)
    {
        switch (cpu.Mode())
        {
            case ApicMode.XApic:
                cpu.Write(offset, value);
                break;
            case ApicMode.X2Apic:
                cpu.WrMsr(Msr.Of(offset), value);
                break;
            default:
                throw new InvalidOperationException("The APIC is globally disabled.");
        }
    }

    /// <summary>SVR := 0x1FF: software-enabled, spurious vector 0xFF (the "EN" of lapic-reference §15).</summary>
    public static void EnableSoftware(this Vcpu cpu) => cpu.WriteRegister(Reg.SpuriousVector, 0x1FF);

    /// <summary>Enables every vCPU of <paramref name="machine"/> (SVR 0x1FF).</summary>
    public static void EnableAll(this VirtualMachine machine)
    {
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            machine.GetVcpu(i).EnableSoftware();
        }
    }

    /// <summary>xAPIC → x2APIC through IA32_APIC_BASE, keeping the BSP flag and base.</summary>
    public static void EnterX2Apic(this Vcpu cpu)
    {
        ulong value = cpu.RdMsr(Msr.ApicBase);
        cpu.WrMsr(Msr.ApicBase, value | BaseEnable | BaseExtended);
    }

    /// <summary>Globally disables the APIC (EN = EXTD = 0).</summary>
    public static void DisableGlobally(this Vcpu cpu)
    {
        ulong value = cpu.RdMsr(Msr.ApicBase);
        cpu.WrMsr(Msr.ApicBase, value & ~(BaseEnable | BaseExtended));
    }

    /// <summary>x2APIC → disabled → xAPIC (the only way back, SDM "x2APIC State Transitions").</summary>
    public static void EnterXApic(this Vcpu cpu)
    {
        if (cpu.Mode() == ApicMode.X2Apic)
        {
            cpu.DisableGlobally();
        }

        ulong value = cpu.RdMsr(Msr.ApicBase);
        cpu.WrMsr(Msr.ApicBase, (value & ~BaseExtended) | BaseEnable);
    }

    /// <summary>xAPIC IPI: ICR high then ICR low, as a guest writes it.</summary>
    public static void SendXApicIpi(this Vcpu cpu, uint high, uint low)
    {
        cpu.Write(Reg.InterruptCommandHigh, high);
        cpu.Write(Reg.InterruptCommandLow, low);
    }

    /// <summary>x2APIC IPI: one 64-bit WRMSR of the ICR.</summary>
    public static void SendX2ApicIpi(this Vcpu cpu, uint destination, uint low) =>
        cpu.WrMsr(Msr.X2ApicInterruptCommand, ((ulong)destination << 32) | low);

    /// <summary>Sends an IPI in whatever mode the sender is in (destination truncated to 8 bits for xAPIC).</summary>
    public static void SendIpi(this Vcpu cpu, uint destination, uint low)
    {
        if (cpu.Mode() == ApicMode.X2Apic)
        {
            cpu.SendX2ApicIpi(destination, low);
        }
        else
        {
            cpu.SendXApicIpi(destination << 24, low);
        }
    }

    /// <summary>Writes EOI in the current mode (0 through MSR 0x80B, any value through MMIO).</summary>
    public static void Eoi(this Vcpu cpu) => cpu.WriteRegister(Reg.Eoi, 0);

    private static bool BitOf(Vcpu cpu, uint baseOffset, int vector) =>
        ((cpu.ReadRegister(baseOffset + ((uint)(vector >> 5) << 4)) >> (vector & 31)) & 1) != 0;

    /// <summary>IRR bit <paramref name="vector"/> as the guest reads it.</summary>
    public static bool IrrHas(this Vcpu cpu, int vector) => BitOf(cpu, Reg.InterruptRequest, vector);

    /// <summary>ISR bit <paramref name="vector"/> as the guest reads it.</summary>
    public static bool IsrHas(this Vcpu cpu, int vector) => BitOf(cpu, Reg.InService, vector);

    /// <summary>TMR bit <paramref name="vector"/> as the guest reads it.</summary>
    public static bool TmrHas(this Vcpu cpu, int vector) => BitOf(cpu, Reg.TriggerMode, vector);

    /// <summary>The eight IRR (or ISR/TMR) chunks as the guest reads them.</summary>
    public static uint[] ReadBitmap(this Vcpu cpu, uint baseOffset)
    {
        var chunks = new uint[8];
        for (int i = 0; i < 8; i++)
        {
            chunks[i] = cpu.ReadRegister(baseOffset + ((uint)i << 4));
        }

        return chunks;
    }

    /// <summary>True when no IRR bit is set.</summary>
    public static bool IrrEmpty(this Vcpu cpu) => Array.TrueForAll(cpu.ReadBitmap(Reg.InterruptRequest), c => c == 0);

    /// <summary>The vCPU indices whose IRR holds <paramref name="vector"/>.</summary>
    public static int[] WithIrr(this VirtualMachine machine, int vector)
    {
        var result = new List<int>();
        for (int i = 0; i < machine.VcpuCount; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            if (cpu.Mode() != ApicMode.Disabled && cpu.IrrHas(vector))
            {
                result.Add(i);
            }
        }

        return [.. result];
    }

    /// <summary>
    /// Hands a SIPI with <paramref name="vector"/> to vCPU <paramref name="index"/> from outside (shorthand self
    /// on its behalf, so no APIC ID is involved) and lets it take it: the AP runs afterwards.
    /// </summary>
    public static void StartAp(this VirtualMachine machine, int index, byte vector = 0x08)
    {
        var sipi = new InterruptMessage(vector, DeliveryMode.StartUp, DestinationMode.Physical, 0, DestinationShorthand.Self,
            LevelTriggered: false, Assert: true, RedirectionHint: false, InterruptSource.External, SourceVcpu: index);
        machine.Deliver(in sipi);
        Assert.Equal(new CpuEvent(CpuEventKind.StartUp, vector), machine.GetVcpu(index).Accept());
        Assert.Equal(VcpuRunState.Running, machine.GetVcpu(index).RunState);
    }

    /// <summary>Starts every AP so that every CPU of <paramref name="machine"/> runs.</summary>
    public static void StartAllAps(this VirtualMachine machine)
    {
        for (int i = 1; i < machine.VcpuCount; i++)
        {
            machine.StartAp(i);
        }
    }

    /// <summary>IOAPIC indirect write through IOREGSEL/IOWIN from <paramref name="cpu"/>.</summary>
    public static void IoApicWrite(this Vcpu cpu, byte index, uint value)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(IoApicBase, index));
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(IoApicBase + 0x10, value));
    }

    /// <summary>IOAPIC indirect read through IOREGSEL/IOWIN from <paramref name="cpu"/>.</summary>
    public static uint IoApicRead(this Vcpu cpu, byte index)
    {
        Assert.Equal(ApicAccessResult.Ok, cpu.WriteMmio(IoApicBase, index));
        Assert.Equal(ApicAccessResult.Ok, cpu.ReadMmio(IoApicBase + 0x10, out uint value));
        return value;
    }

    /// <summary>The x2APIC logical ID derived from an x2APIC ID (SDM "Logical Destination Mode in x2APIC Mode").</summary>
    public static uint X2ApicLogicalId(uint id) => ((id >> 4) << 16) | (1u << (int)(id & 0xF));

    public static CpuEvent Fixed(int vector) => new(CpuEventKind.Fixed, (byte)vector);

    public static readonly CpuEvent None = CpuEvent.None;
    public static readonly CpuEvent Nmi = new(CpuEventKind.Nmi);
    public static readonly CpuEvent Smi = new(CpuEventKind.Smi);
    public static readonly CpuEvent Init = new(CpuEventKind.Init);
    public static readonly CpuEvent ExtInt = new(CpuEventKind.ExtInt);

    public static CpuEvent Sipi(int vector) => new(CpuEventKind.StartUp, (byte)vector);
}
