namespace Vapic.Fuzz.Targets;

/// <summary>
/// The operations of a <c>guest</c> program: one opcode byte (taken modulo the number of
/// operations) followed by the operand bytes listed for each. A byte past the end of the input
/// reads as 0; the program ends at the end of the input.
/// </summary>
public enum GuestOperation : byte
{
    /// <summary>cpu, offset u16: 32-bit MMIO read in the APIC page (bit 15: at 0xFEE00000 rather than the current base; bit 12: the page after it).</summary>
    MmioRead,

    /// <summary>cpu, offset u16, value u32: MMIO write, addressed as <see cref="MmioRead"/>.</summary>
    MmioWrite,

    /// <summary>cpu, register u8 (mod 64): read through the interface the APIC's mode uses (MSR 0x800 + n in x2APIC mode, MMIO otherwise).</summary>
    RegisterRead,

    /// <summary>cpu, register u8 (mod 64), value u32: write through the interface the APIC's mode uses.</summary>
    RegisterWrite,

    /// <summary>window u8: IOAPIC MMIO read (bit 7 clear: IOREGSEL, IOWIN, EOI or 0x20 by the low two bits; set: offset bits 6:0).</summary>
    IoApicRead,

    /// <summary>window u8, value u32: IOAPIC MMIO write, addressed as <see cref="IoApicRead"/>.</summary>
    IoApicWrite,

    /// <summary>index u8, value u32: IOREGSEL = index, then IOWIN = value (as the trace's <c>ioapic write</c>).</summary>
    IoApicRegisterWrite,

    /// <summary>cpu, msr u16: RDMSR of 0x800 + n for n below 256, else one of the other MSRs of <see cref="GuestTarget.OtherMsrs"/>.</summary>
    Rdmsr,

    /// <summary>cpu, msr u16, value u64: WRMSR, numbered as <see cref="Rdmsr"/>.</summary>
    Wrmsr,

    /// <summary>cpu: MOV from CR8.</summary>
    Cr8Read,

    /// <summary>cpu, value u8: MOV to CR8 (values above 15 set reserved bits: #GP).</summary>
    Cr8Write,

    /// <summary>cpu, vector u8, control u8 (delivery mode 2:0, logical 3, assert 4, level 5, shorthand 7:6), destination u16: an IPI through the ICR.</summary>
    Ipi,

    /// <summary>address u24 (bit 23 set: outside 0xFEExxxxx), data u16: a device's MSI write.</summary>
    Msi,

    /// <summary>pin u8 (mod the IOAPIC's pins), action u8 (mod 3: high, low, pulse): an IOAPIC input line.</summary>
    IrqLine,

    /// <summary>cpu, control u8 (bit 0: LINT1; bits 2:1 mod 3: high, low, pulse): a LAPIC LINT pin.</summary>
    Lint,

    /// <summary>cpu: the CPU takes the highest-priority pending event.</summary>
    Accept,

    /// <summary>cpu: write 0 to EOI through the interface the APIC's mode uses.</summary>
    Eoi,

    /// <summary>nanoseconds u16: advance virtual time (within the program's time budget).</summary>
    AdvanceTime,

    /// <summary>cpu, state u8 (mod 3: running, preempted, halted): the vCPU's thread on the host.</summary>
    HostState,

    /// <summary>cpu, vector u8: the hypervisor injects a fixed interrupt.</summary>
    HypervisorInject,

    /// <summary>cpu: the hypervisor injects an NMI.</summary>
    HypervisorNmi,

    /// <summary>cpu, source u8 (bit 0: performance counter, else thermal): a local LVT source fires.</summary>
    LocalEvent,

    /// <summary>Save the machine and restore the saved state into it: a state it saved must restore, and change nothing.</summary>
    SaveRestore,
}
