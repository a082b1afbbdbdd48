using Vapic.Apic;

namespace Vapic.Virtualization.SecureAvic;

/// <summary>What happens to one x2APIC register access of a Secure AVIC guest.</summary>
public enum SecureAvicAccessKind : byte
{
    /// <summary>Hardware completes it on the backing page: no #VC, no exit (TPR, edge EOI, SELF_IPI, ICR with the self shorthand).</summary>
    Accelerated,

    /// <summary>#VC; the guest's handler reads or writes its backing page (no exit).</summary>
    BackingPage,

    /// <summary>#VC; the handler forwards the access to the hypervisor with an MSR-protocol VMGEXIT (the timer registers).</summary>
    Forwarded,

    /// <summary>The driver's EOI of a level vector: ISR cleared in the page, then the EOI forwarded with a VMGEXIT.</summary>
    LevelEoi,

    /// <summary>#VC (INCOMPLETE_IPI); the handler sets the vector in each target's page (or its NMI request), then one VMGEXIT so the hypervisor kicks the targets.</summary>
    Ipi,

    /// <summary>#VC (INCOMPLETE_IPI); the handler refuses a logical destination: the driver sends physical-destination IPIs only.</summary>
    RefusedLogicalIpi,
}

/// <summary>
/// Secure AVIC's handling of the x2APIC MSRs (virtualization-reference §7.3, §7.5): which accesses
/// the hardware accelerates and, for the others, what the guest driver's #VC handler does, as
/// Linux <c>arch/x86/kernel/apic/x2apic_savic.c</c> does it (<c>savic_read</c>, <c>savic_write</c>,
/// <c>savic_icr_write</c>, <c>savic_eoi</c>).
/// </summary>
public static class SecureAvicRegisterAccess
{
    /// <summary>The first x2APIC MSR (SDM "x2APIC Register Address Space").</summary>
    public const uint FirstX2ApicMsr = 0x800;

    /// <summary>The last MSR of the x2APIC range.</summary>
    public const uint LastX2ApicMsr = 0x8FF;

    private const uint Tpr = 0x808;
    private const uint Eoi = 0x80B;
    private const uint Icr = 0x830;
    private const uint LvtTimer = 0x832;
    private const uint InitialCount = 0x838;
    private const uint CurrentCount = 0x839;
    private const uint DivideConfiguration = 0x83E;
    private const uint SelfIpi = 0x83F;

    /// <summary>Whether <paramref name="msr"/> is in the x2APIC range 0x800-0x8FF.</summary>
    public static bool IsX2ApicMsr(uint msr) => msr - FirstX2ApicMsr <= LastX2ApicMsr - FirstX2ApicMsr;

    /// <summary>
    /// The timer registers the hypervisor owns (LVT timer, initial count, current count, divide):
    /// the driver reads and writes them through the GHCB MSR protocol (<c>savic_ghcb_msr_read/write</c>).
    /// </summary>
    public static bool IsHypervisorOwned(uint msr) => msr is LvtTimer or InitialCount or CurrentCount or DivideConfiguration;

    /// <summary>
    /// Whether the Secure AVIC hardware itself completes the access (cover letter "MSR Accesses":
    /// WRMSR to ICR with the self shorthand, SELF_IPI, EOI and TPR); every other access in the
    /// x2APIC range raises #VC.
    /// </summary>
    public static bool IsAcceleratedByHardware(uint msr, bool write, ulong value) =>
        write && msr switch
        {
            Tpr or Eoi or SelfIpi => true,
            Icr => ((uint)value & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift == (uint)DestinationShorthand.Self,
            _ => false,
        };

    /// <summary>The #VC error code of an access the hardware does not accelerate: INCOMPLETE_IPI for ICR writes, NOACCEL otherwise.</summary>
    public static uint VcErrorCode(uint msr, bool write) =>
        write && msr == Icr ? SecureAvicControl.VcIncompleteIpi : SecureAvicControl.VcNoAccel;

    /// <summary>
    /// What the Secure AVIC driver's guest does with an access to x2APIC MSR <paramref name="msr"/>
    /// by a vCPU whose LAPIC is <paramref name="apic"/> (its state before the access).
    /// </summary>
    public static SecureAvicAccessKind Classify(LocalApic apic, uint msr, bool write, ulong value)
    {
        ArgumentNullException.ThrowIfNull(apic);
        if (!write)
        {
            return IsHypervisorOwned(msr) ? SecureAvicAccessKind.Forwarded : SecureAvicAccessKind.BackingPage;
        }

        switch (msr)
        {
            case Tpr:
            case SelfIpi:
                return SecureAvicAccessKind.Accelerated;
            case Eoi:
            {
                // savic_eoi: a level vector (TMR set for the highest ISR vector) is completed in
                // the page and forwarded, so that the hypervisor can send the EOI to the IOAPIC;
                // an edge one is a native EOI the hardware accelerates. A non-zero write faults in
                // the hardware either way (SDM "EOI Register": x2APIC EOI writes of non-zero #GP).
                int vector = apic.Isr.Highest();
                return value == 0 && vector >= 0 && apic.Tmr.Get(vector) ? SecureAvicAccessKind.LevelEoi : SecureAvicAccessKind.Accelerated;
            }

            case Icr:
                return ClassifyIcr((uint)value);
            case LvtTimer:
            case InitialCount:
            case DivideConfiguration:
                return SecureAvicAccessKind.Forwarded;
            default:
                return SecureAvicAccessKind.BackingPage;
        }
    }

    private static SecureAvicAccessKind ClassifyIcr(uint low)
    {
        if ((low & InterruptCommand.ReservedBits) != 0)
        {
            // The WRMSR raises #GP (SDM "ICR Operation in x2APIC Mode"): the handler sends nothing.
            return SecureAvicAccessKind.BackingPage;
        }

        var shorthand = (DestinationShorthand)((low & InterruptCommand.ShorthandMask) >> InterruptCommand.ShorthandShift);
        if (shorthand == DestinationShorthand.Self)
        {
            return SecureAvicAccessKind.Accelerated;
        }

        // The driver is physical-only (apic_x2apic_savic.dest_mode_logical = false): it writes the
        // IRR of the target named by a physical APIC ID, and has no way to resolve a logical one.
        return shorthand == DestinationShorthand.None && (low & InterruptCommand.LogicalDestination) != 0
            ? SecureAvicAccessKind.RefusedLogicalIpi
            : SecureAvicAccessKind.Ipi;
    }
}
