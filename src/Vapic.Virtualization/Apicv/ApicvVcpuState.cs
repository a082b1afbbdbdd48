using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Apicv;

/// <summary>
/// One exit the APICv model classified for a vCPU's own access, with its exit qualification
/// (virtualization-reference §2.9): the page offset and access type for APIC access, the page
/// offset for APIC write, the vector for EOI-induced, 0 otherwise.
/// </summary>
/// <param name="Reason">The exit reason.</param>
/// <param name="Qualification">The exit qualification.</param>
public readonly record struct ApicvExit(ExitReason Reason, uint Qualification)
{
    /// <summary>APIC-access exit qualification bits 15:12 for a linear read.</summary>
    public const uint LinearRead = 0x0000;

    /// <summary>APIC-access exit qualification bits 15:12 for a linear write.</summary>
    public const uint LinearWrite = 0x1000;

    /// <summary>
    /// True when the exit is trap-like (the instruction retired first): APIC write, EOI-induced
    /// and TPR below threshold; APIC-access and intercepted MSR/CR8/MMIO exits are fault-like.
    /// </summary>
    public bool IsTrapLike => Reason is ExitReason.ApicWrite or ExitReason.EoiInduced or ExitReason.TprBelowThreshold;
}

/// <summary>
/// The APICv hardware state of one vCPU beside its virtual-APIC page (which is the LAPIC's own
/// register state): the posted-interrupt descriptor, the guest-interrupt status (RVI/SVI, read
/// from the LAPIC's IRR/ISR as VM entry would load them), the EOI-exit bitmap and the TPR
/// threshold KVM programs.
/// </summary>
public sealed class ApicvVcpuState
{
    private readonly Vcpu _vcpu;
    private readonly bool _virtualInterruptDelivery;
    private byte _tprThreshold;
    private bool _tprThresholdStale = true;

    internal ApicvVcpuState(Vcpu vcpu, PostedInterruptDescriptor descriptor, bool virtualInterruptDelivery)
    {
        _vcpu = vcpu;
        Descriptor = descriptor;
        _virtualInterruptDelivery = virtualInterruptDelivery;
        HostApicId = descriptor.NotificationDestination;
    }

    /// <summary>The vCPU index.</summary>
    public int Index => _vcpu.Index;

    /// <summary>This vCPU's posted-interrupt descriptor.</summary>
    public PostedInterruptDescriptor Descriptor { get; }

    /// <summary>The host APIC ID of the pCPU this vCPU is placed on (NDST while it is loaded).</summary>
    public uint HostApicId { get; internal set; }

    /// <summary>RVI, guest-interrupt status bits 7:0: the highest vector in VIRR, or 0.</summary>
    public byte Rvi => (byte)Math.Max(_vcpu.Apic.Irr.Highest(), 0);

    /// <summary>SVI, guest-interrupt status bits 15:8: the highest vector in VISR, or 0.</summary>
    public byte Svi => (byte)Math.Max(_vcpu.Apic.Isr.Highest(), 0);

    /// <summary>The guest-interrupt status field (VMCS 0x0810): SVI &lt;&lt; 8 | RVI.</summary>
    public ushort GuestInterruptStatus => (ushort)((Svi << 8) | Rvi);

    /// <summary>
    /// The EOI-exit bitmap: vectors whose EOI must reach the hypervisor. KVM sets the vectors of
    /// level-triggered routes (<c>load_eoi_exitmap</c>); the model takes the LAPIC's TMR, so a
    /// level EOI exits and an edge EOI does not.
    /// </summary>
    public InterruptBitmap EoiExitBitmap => _vcpu.Apic.Tmr;

    /// <summary>
    /// TPR threshold (VMCS 0x401C), as KVM last programmed it at a VM entry
    /// (<c>vmx_update_cr8_intercept</c>): 0 while virtual-interrupt delivery is on; otherwise 0
    /// when IRR is empty or the TPR class is below the highest IRR class, else that IRR class.
    /// </summary>
    public byte TprThreshold
    {
        get
        {
            if (_virtualInterruptDelivery)
            {
                return 0;
            }

            if (_tprThresholdStale)
            {
                // KVM recomputes the threshold at every entry that follows an event or an exit;
                // nothing the guest does without an exit changes IRR, so computing it at first use
                // gives the value of that entry.
                LocalApic apic = _vcpu.Apic;
                int maxIrrClass = apic.Irr.Highest() >> 4;
                int tprClass = apic.TaskPriority >> 4;
                _tprThreshold = maxIrrClass < 0 || tprClass < maxIrrClass ? (byte)0 : (byte)maxIrrClass;
                _tprThresholdStale = false;
            }

            return _tprThreshold;
        }
    }

    /// <summary>The last exit classified for this vCPU's own access, or null.</summary>
    public ApicvExit? LastExit { get; internal set; }

    /// <summary>The vCPU will enter the guest again after an exit or an event: the threshold is reprogrammed.</summary>
    internal void MarkReentry() => _tprThresholdStale = true;
}
