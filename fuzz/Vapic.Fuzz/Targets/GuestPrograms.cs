using Vapic.Apic;

namespace Vapic.Fuzz.Targets;

/// <summary>The seed programs of the <c>guest</c> target: short, realistic guest sequences for the mutator to start from.</summary>
internal static class GuestPrograms
{
    private const int Svr = ApicRegister.SpuriousVectorOffset;
    private const int Tpr = ApicRegister.TaskPriorityOffset;
    private const int LvtTimer = ApicRegister.LvtTimerOffset;
    private const int LvtLint0 = ApicRegister.LvtLint0Offset;
    private const int LvtLint1 = ApicRegister.LvtLint1Offset;
    private const int LvtError = ApicRegister.LvtErrorOffset;
    private const int Tmict = ApicRegister.InitialCountOffset;
    private const int Dcr = ApicRegister.DivideConfigurationOffset;
    private const int Ldr = ApicRegister.LogicalDestinationOffset;

    /// <summary>
    /// Four vCPUs in xAPIC mode: the BSP enables its APIC, boots the APs with INIT-SIPI-SIPI, then
    /// self-IPIs, a fixed IPI to an AP, a periodic timer, a level IOAPIC line with its EOI, an MSI,
    /// NMI through LINT1, TPR and CR8, reserved-register writes and an unmapped read.
    /// </summary>
    public static byte[] XApicBoot(byte mode)
    {
        var p = new GuestProgramBuilder(mode, 0x03);
        p.Register(0, Svr, 0x1FF).Register(0, LvtError, 0xFE).Register(0, Ldr, 0x0100_0000);
        for (byte ap = 1; ap < 4; ap++)
        {
            p.Ipi(0, 0, DeliveryMode.Init, ap).Ipi(0, 0x9A, DeliveryMode.StartUp, ap).Ipi(0, 0x9A, DeliveryMode.StartUp, ap)
                .Accept(ap).Accept(ap).Register(ap, Svr, 0x1FF);
        }

        p.Ipi(0, 0x41, DeliveryMode.Fixed, 0, DestinationShorthand.Self).Ipi(0, 0x52, DeliveryMode.Fixed, 0, DestinationShorthand.Self)
            .Accept(0).Accept(0).Eoi(0).Eoi(0)
            .Ipi(0, 0x63, DeliveryMode.Fixed, 2).Accept(2).Eoi(2)
            .Ipi(1, 0x74, DeliveryMode.LowestPriority, 0x0F, logical: true).Accept(0).Accept(1).Accept(2).Accept(3)
            .Register(0, Dcr, 0xB).Register(0, LvtTimer, 0x2_0030).Register(0, Tmict, 400).Time(1000).Accept(0).Eoi(0)
            .IoApicRegister(0x10 + (2 * 4), 0x8085).IoApicRegister(0x11 + (2 * 4), 0x0100_0000).Irq(4, 0).Accept(1).Eoi(1).Irq(4, 1)
            .Msi(3, 0x96).Accept(3).Eoi(3)
            .Register(0, LvtLint1, 0x400).Lint(0, 1, 2).Accept(0)
            .Register(0, LvtLint0, 0x8000 | 0x57).Lint(0, 0, 0).Accept(0).Eoi(0).Lint(0, 0, 1)
            .Register(0, Tpr, 0x50).Ipi(0, 0x45, DeliveryMode.Fixed, 0, DestinationShorthand.Self).Accept(0).Cr8(0, 3).Accept(0).Eoi(0)
            .Cr8(0, 16).MmioWrite(0, 0x020, 0x0500_0000).MmioWrite(0, 0x3F0, 0x40).MmioRead(0, 0x1000).ReadRegister(0, 0x390)
            .SaveRestore().Time(5000).Accept(0);
        return p.ToArray();
    }

    /// <summary>
    /// Two vCPUs that switch to x2APIC mode through IA32_APIC_BASE, then x2APIC IPIs and self-IPIs,
    /// the TSC-deadline timer, an edge IOAPIC line, MSIs with the extended destination ID and
    /// reserved delivery modes, host halts and hypervisor injections.
    /// </summary>
    public static byte[] X2ApicDevices(byte mode)
    {
        var p = new GuestProgramBuilder(mode, 0x01);
        p.Wrmsr(0, 0x1B, 0xFEE0_0D00).Ipi(0, 0, DeliveryMode.Init, 1).Ipi(0, 0x10, DeliveryMode.StartUp, 1).Accept(1).Accept(1)
            .Wrmsr(1, 0x1B, 0xFEE0_0C00).Wrmsr(0, 0x80F, 0x1FF).Wrmsr(1, 0x80F, 0x1FF)
            .Wrmsr(0, 0x83F, 0x31).Accept(0).Wrmsr(0, 0x80B, 0)
            .Ipi(1, 0xB2, DeliveryMode.Fixed, 0).Ipi(1, 0xB3, DeliveryMode.Fixed, 0xFFFF, DestinationShorthand.AllIncludingSelf)
            .Accept(0).Accept(1).Eoi(0).Eoi(1)
            .Wrmsr(0, 0x832, 0x4_00C1).Rdmsr(0, 0x10).Wrmsr(0, 0x6E0, 3000).Time(4000).Accept(0).Eoi(0)
            .IoApicRegister(0x10 + (2 * 9), 0x00C5).IoApicRegister(0x11 + (2 * 9), 0x0100_0000).Irq(9, 2).Accept(1).Eoi(1)
            .Msi(0, 0xD7).Msi(1, 0x20, DeliveryMode.Reserved3).Msi(0, 0, DeliveryMode.Nmi).Accept(0).Accept(0)
            .Host(1, 2).Msi(1, 0xE8).Host(1, 0).Accept(1).Eoi(1)
            .Inject(0, 0xF1).InjectNmi(1).Accept(0).Accept(1).Eoi(0)
            .Wrmsr(0, 0x838, 50).Wrmsr(0, 0x832, 0x2_00A0).Time(200).SaveRestore().Time(200).Accept(0)
            .Wrmsr(0, 0x1B, 0xFEE0_0900).Rdmsr(0, 0x802).Wrmsr(0, 0x828, 0).Rdmsr(0, 0xBD).Rdmsr(0, 0x10A);
        return p.ToArray();
    }

    /// <summary>Three locked-x2APIC vCPUs in two clusters: logical cluster IPIs, priorities, save/restore between steps.</summary>
    public static byte[] LockedSaveRestore(byte mode)
    {
        var p = new GuestProgramBuilder(mode, 0x26);
        p.Wrmsr(0, 0x80F, 0x1FF).Ipi(0, 0, DeliveryMode.Init, 0x11).Ipi(0, 0x20, DeliveryMode.StartUp, 0x11).Accept(1).Accept(1)
            .Ipi(0, 0, DeliveryMode.Init, 0x20).Ipi(0, 0x20, DeliveryMode.StartUp, 0x20).Accept(2).Accept(2)
            .Wrmsr(1, 0x80F, 0x1FF).Wrmsr(2, 0x80F, 0x1FF).Rdmsr(1, 0x80D)
            .Ipi(0, 0x61, DeliveryMode.Fixed, 0x0001, logical: true).SaveRestore().Accept(1).Eoi(1)
            .Wrmsr(2, 0x808, 0x70).Ipi(0, 0x62, DeliveryMode.Fixed, 0x0002, logical: true).Accept(2).Wrmsr(2, 0x808, 0).Accept(2)
            .SaveRestore().Eoi(2).Wrmsr(0, 0x1B, 0xFEE0_0900).Wrmsr(0, 0x828, 0).Rdmsr(0, 0x828).SaveRestore();
        return p.ToArray();
    }

    /// <summary>Two vCPUs, one halted on the host while IPIs and device interrupts arrive (posted-interrupt and doorbell paths).</summary>
    public static byte[] HaltedPosted(byte mode)
    {
        var p = new GuestProgramBuilder(mode, 0x01);
        p.Register(0, Svr, 0x1FF).Ipi(0, 0, DeliveryMode.Init, 1).Ipi(0, 0x30, DeliveryMode.StartUp, 1).Accept(1).Accept(1)
            .Register(1, Svr, 0x1FF).Host(1, 2).Ipi(0, 0x81, DeliveryMode.Fixed, 1).Msi(1, 0x82).Host(1, 1).Ipi(0, 0x83, DeliveryMode.Fixed, 1)
            .Host(1, 0).Accept(1).Accept(1).Accept(1).Eoi(1).Eoi(1).Eoi(1)
            .Register(1, Tpr, 0x90).Ipi(0, 0x84, DeliveryMode.Fixed, 1).Accept(1).Register(1, Tpr, 0).Accept(1).Eoi(1)
            .SaveRestore().Host(1, 2).Inject(1, 0x99).Host(1, 0).Accept(1).Eoi(1);
        return p.ToArray();
    }
}
