using Vapic.Apic.SavedState;

namespace Vapic.Virtualization.SecureAvic;

// Saved state: the hypervisor of a Secure AVIC guest can neither save nor restore it.
public sealed partial class SecureAvicMode
{
    /// <summary>
    /// Refused, and nothing changes. Each vCPU's APIC state lives in its Secure AVIC backing page,
    /// together with ALLOWED_IRR and the NMI request, and that page is a guest-owned page of an
    /// SEV-SNP guest: encrypted with the guest's key, so the hypervisor reads only ciphertext (AMD
    /// APM Vol. 2, "Secure Nested Paging (SEV-SNP)" and its "Reverse Map Table"; "Secure AVIC" for
    /// the backing page the guest registers). The hypervisor therefore cannot capture the vLAPIC,
    /// as it can the virtual-APIC page of APICv or the backing page of plain AVIC. An SEV-SNP guest
    /// is moved only through the migration agent the guest was bound to at launch, which exports
    /// its state under the guest's keys (SEV Secure Nested Paging Firmware ABI Specification,
    /// "Migration Agent"; AMD's SEV-SNP white paper, "VM Migration").
    /// </summary>
    public override SavedStateResult PrepareForSave() =>
        SavedStateResult.Fail(SavedStateError.Unsupported, "Vcpus",
            $"mode '{Name}' (Secure AVIC) cannot save the machine: each vCPU's APIC backing page, with ALLOWED_IRR and the NMI request, " +
            "is SEV-SNP guest-private memory the hypervisor cannot read; only the guest's migration agent can move it");

    /// <summary>
    /// Refused, and nothing changes: the hypervisor cannot write a guest-owned backing page either
    /// (an RMP check fails the write; see <see cref="PrepareForSave"/>), and the driver's state
    /// beside it (control MSR, ALLOWED_IRR, registered page) is not in a machine-architectural
    /// saved state at all.
    /// </summary>
    public override SavedStateResult CheckRestore() =>
        SavedStateResult.Fail(SavedStateError.Unsupported, "Vcpus",
            $"mode '{Name}' (Secure AVIC) cannot restore a machine: the APIC backing pages are SEV-SNP guest-private memory the hypervisor cannot write; " +
            "only the guest's migration agent can bring its state in");
}
