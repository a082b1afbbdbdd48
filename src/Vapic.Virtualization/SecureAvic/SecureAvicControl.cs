namespace Vapic.Virtualization.SecureAvic;

/// <summary>
/// The architectural numbers of Secure AVIC (virtualization-reference §7.2, §7.3; Linux
/// <c>arch/x86/include/asm/msr-index.h</c> and <c>svm.h</c>, series "AMD: Add Secure AVIC Guest Support").
/// </summary>
public static class SecureAvicControl
{
    /// <summary>MSR_AMD64_SAVIC_CONTROL (0xC0010138): enable bits and the backing page's GPA.</summary>
    public const uint ControlMsr = 0xC001_0138;

    /// <summary>Control MSR bit 0, EN: Secure AVIC is enabled for this vCPU.</summary>
    public const ulong Enable = 1UL << 0;

    /// <summary>Control MSR bit 1, ALLOWEDNMI: the hypervisor may inject an NMI.</summary>
    public const ulong AllowedNmi = 1UL << 1;

    /// <summary>Control MSR bits 63:12: the guest physical address of the backing page.</summary>
    public const ulong GpaMask = ~0xFFFUL;

    /// <summary>SEV_STATUS (0xC0010131): the guest reads which SEV features are active.</summary>
    public const uint SevStatusMsr = 0xC001_0131;

    /// <summary>SEV_STATUS bit 18, SecureAVIC.</summary>
    public const ulong SevStatusSecureAvic = 1UL << 18;

    /// <summary>SVM_VMGEXIT_SAVIC (0x8000001A): the guest registers or unregisters its backing page.</summary>
    public const uint VmgexitSecureAvic = 0x8000_001A;

    /// <summary>EXITINFO1 of <see cref="VmgexitSecureAvic"/>: register the GPA in RBX.</summary>
    public const uint RegisterGpa = 0;

    /// <summary>EXITINFO1 of <see cref="VmgexitSecureAvic"/>: unregister the backing page.</summary>
    public const uint UnregisterGpa = 1;

    /// <summary>SVM_EXIT_MSR (0x7C): the exit code of the GHCB MSR protocol the driver forwards registers with.</summary>
    public const uint VmgexitMsr = 0x7C;

    /// <summary>#VC error code of a non-self ICR write (VMEXIT_AVIC_INCOMPLETE_IPI).</summary>
    public const uint VcIncompleteIpi = 0x401;

    /// <summary>#VC error code of every other x2APIC access the hardware does not accelerate (VMEXIT_AVIC_NOACCEL).</summary>
    public const uint VcNoAccel = 0x402;

    /// <summary>The page-aligned GPA in a control MSR value.</summary>
    public static ulong GpaOf(ulong control) => control & GpaMask;
}
