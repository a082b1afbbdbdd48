namespace Vapic.Machine.Acpi;

/// <summary>
/// The Type byte of an MADT interrupt controller structure (ACPI 6.5, "Multiple APIC Description
/// Table (MADT)", table "Interrupt Controller Structure Types"; lapic-reference.md §13).
/// </summary>
/// <remarks>
/// Vapic builds and fully checks the x86 APIC structures (0–5, 9, 0xA). The other types ACPI
/// defines (SAPIC, GIC, wakeup mailbox, LoongArch and RISC-V controllers) are recognised by name
/// and carried through undecoded; 0x1C–0x7F are reserved and 0x80–0xFF belong to the OEM.
/// </remarks>
public enum MadtEntryType : byte
{
    /// <summary>Processor Local APIC: one xAPIC processor (8 bytes).</summary>
    LocalApic = 0x00,

    /// <summary>I/O APIC (12 bytes).</summary>
    IoApic = 0x01,

    /// <summary>Interrupt Source Override: an ISA IRQ wired to another GSI or with other flags (10 bytes).</summary>
    InterruptSourceOverride = 0x02,

    /// <summary>Non-Maskable Interrupt (NMI) Source: a GSI that delivers NMI (8 bytes).</summary>
    NmiSource = 0x03,

    /// <summary>Local APIC NMI: which LINT pin of which processors is wired to NMI (6 bytes).</summary>
    LocalApicNmi = 0x04,

    /// <summary>Local APIC Address Override: a 64-bit local APIC address (12 bytes).</summary>
    LocalApicAddressOverride = 0x05,

    /// <summary>I/O SAPIC (Itanium).</summary>
    IoSapic = 0x06,

    /// <summary>Local SAPIC (Itanium).</summary>
    LocalSapic = 0x07,

    /// <summary>Platform Interrupt Sources (Itanium).</summary>
    PlatformInterruptSources = 0x08,

    /// <summary>Processor Local x2APIC: one processor with a 32-bit APIC ID (16 bytes).</summary>
    LocalX2Apic = 0x09,

    /// <summary>Local x2APIC NMI: the LINT pin wired to NMI, for processors named by 32-bit UID (12 bytes).</summary>
    LocalX2ApicNmi = 0x0A,

    /// <summary>GIC CPU Interface (GICC, Arm).</summary>
    GicCpuInterface = 0x0B,

    /// <summary>GIC Distributor (GICD, Arm).</summary>
    GicDistributor = 0x0C,

    /// <summary>GIC MSI Frame (Arm).</summary>
    GicMsiFrame = 0x0D,

    /// <summary>GIC Redistributor (GICR, Arm).</summary>
    GicRedistributor = 0x0E,

    /// <summary>GIC Interrupt Translation Service (ITS, Arm).</summary>
    GicIts = 0x0F,

    /// <summary>Multiprocessor Wakeup (mailbox-based AP start-up).</summary>
    MultiprocessorWakeup = 0x10,

    /// <summary>Core Programmable Interrupt Controller (LoongArch).</summary>
    CorePic = 0x11,

    /// <summary>Legacy I/O Programmable Interrupt Controller (LoongArch).</summary>
    LioPic = 0x12,

    /// <summary>HyperTransport Programmable Interrupt Controller (LoongArch).</summary>
    HtPic = 0x13,

    /// <summary>Extend I/O Programmable Interrupt Controller (LoongArch).</summary>
    EioPic = 0x14,

    /// <summary>MSI Programmable Interrupt Controller (LoongArch).</summary>
    MsiPic = 0x15,

    /// <summary>Bridge I/O Programmable Interrupt Controller (LoongArch).</summary>
    BioPic = 0x16,

    /// <summary>Low Pin Count Programmable Interrupt Controller (LoongArch).</summary>
    LpcPic = 0x17,

    /// <summary>RISC-V Interrupt Controller (RINTC, ACPI 6.6).</summary>
    RiscVIntc = 0x18,

    /// <summary>RISC-V Incoming MSI Controller (IMSIC, ACPI 6.6).</summary>
    RiscVImsic = 0x19,

    /// <summary>RISC-V Advanced Platform-Level Interrupt Controller (APLIC, ACPI 6.6).</summary>
    RiscVAplic = 0x1A,

    /// <summary>RISC-V Platform-Level Interrupt Controller (PLIC, ACPI 6.6).</summary>
    RiscVPlic = 0x1B,
}
