namespace Vapic.Virtualization;

/// <summary>
/// Why a vCPU left the guest. One list for every mode; each mode uses the reasons its hardware
/// has (the SDM basic exit reason or the AMD exit code is given where there is one).
/// </summary>
public enum ExitReason : byte
{
    /// <summary>An access to the xAPIC MMIO page trapped (emulation: EPT violation/misconfig on the APIC page).</summary>
    ApicMmio,

    /// <summary>An access to the IOAPIC window trapped (the IOAPIC is emulated in every mode).</summary>
    IoApicMmio,

    /// <summary>An access to unbacked guest memory trapped (handled by the VMM in userspace).</summary>
    UnbackedMmio,

    /// <summary>RDMSR intercepted (VMX 31, SVM 0x7C).</summary>
    MsrRead,

    /// <summary>WRMSR intercepted (VMX 32, SVM 0x7C).</summary>
    MsrWrite,

    /// <summary>MOV from CR8 intercepted (CR8-store exiting).</summary>
    Cr8Read,

    /// <summary>MOV to CR8 intercepted (CR8-load exiting).</summary>
    Cr8Write,

    /// <summary>A host interrupt (a kick IPI, a host timer) arrived while the vCPU ran (VMX 1, SVM 0x60).</summary>
    ExternalInterrupt,

    /// <summary>The hypervisor asked to exit as soon as the guest can take an interrupt (VMX 7, SVM VINTR 0x64).</summary>
    InterruptWindow,

    /// <summary>Intel: APIC access (44), fault-like, for an access the APIC-access page does not virtualize.</summary>
    ApicAccess,

    /// <summary>Intel: APIC write (56), trap-like, after a virtualized write that needs emulation.</summary>
    ApicWrite,

    /// <summary>Intel: EOI-induced (45), trap-like, for a vector set in the EOI-exit bitmap.</summary>
    EoiInduced,

    /// <summary>Intel: TPR below threshold (43), trap-like.</summary>
    TprBelowThreshold,

    /// <summary>AMD: AVIC_INCOMPLETE_IPI (0x401).</summary>
    AvicIncompleteIpi,

    /// <summary>AMD: AVIC_NOACCEL (0x402), trap- or fault-like.</summary>
    AvicNoAccel,

    /// <summary>Secure AVIC: #VC turned into an MSR-protocol VMGEXIT.</summary>
    Vmgexit,
}

/// <summary>Work that costs cycles without being a guest exit.</summary>
public enum CostEvent : byte
{
    /// <summary>An event injected at VM entry (emulated delivery).</summary>
    Injection,

    /// <summary>A posted-interrupt notification sent by the sender (PIR/ON update plus physical IPI).</summary>
    PostedNotify,

    /// <summary>The receiver processed a posted-interrupt notification (PIR into VIRR) without exit.</summary>
    PostedReceive,

    /// <summary>A vector set in a PIR while the target did not run, merged at its next VM entry.</summary>
    PostedMergeOnEntry,

    /// <summary>An AVIC doorbell (MSR 0xC001011B) to a running target.</summary>
    AvicDoorbell,

    /// <summary>A blocked (halted) vCPU woken by the host (host IRQ, scheduler, VM entry).</summary>
    WakeupBlockedVcpu,

    /// <summary>A virtual interrupt delivered by hardware (APICv virtual-interrupt delivery, AVIC) without exit.</summary>
    VirtualInterruptDelivery,

    /// <summary>An access handled by hardware without exit (virtualized read, TPR/EOI/self-IPI write).</summary>
    AcceleratedAccess,
}
