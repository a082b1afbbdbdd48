namespace Vapic.Virtualization.SecureAvic;

/// <summary>What the Secure AVIC model saw, VM-wide: the guest driver's work, its #VC exceptions, and every injection the hypervisor attempted with its outcome.</summary>
public sealed class SecureAvicCounters
{
    /// <summary>Driver setups (APIC ID read, page registration, control MSR enable).</summary>
    public long Setups { get; internal set; }

    /// <summary>Driver teardowns (control MSR 0, page unregistered, ALLOWED_IRR and the NMI request cleared).</summary>
    public long Teardowns { get; internal set; }

    /// <summary>x2APIC accesses the hardware completed without #VC.</summary>
    public long AcceleratedAccesses { get; internal set; }

    /// <summary>#VC exceptions the hardware raised for x2APIC accesses and the driver handled.</summary>
    public long VcExceptions { get; internal set; }

    /// <summary>#VC exceptions (NOACCEL or INCOMPLETE_IPI) raised while a kernel that does not know Secure AVIC runs: such a guest terminates.</summary>
    public long UnhandledVcExceptions { get; internal set; }

    /// <summary>MSR-protocol VMGEXITs: forwarded timer registers, IPI notifications, level EOIs, and the MSRs an SEV-SNP guest always forwards.</summary>
    public long MsrProtocolVmgexits { get; internal set; }

    /// <summary>SVM_VMGEXIT_SAVIC VMGEXITs (backing page registered or unregistered).</summary>
    public long RegistrationVmgexits { get; internal set; }

    /// <summary>IPIs the driver sent by writing the targets' pages and notifying the hypervisor.</summary>
    public long IpisSent { get; internal set; }

    /// <summary>IPIs with a logical destination the driver refused (it supports physical destinations only).</summary>
    public long LogicalIpisRefused { get; internal set; }

    /// <summary>Fixed vectors the hypervisor injected on its own (<c>hv inject</c>) into a vCPU with Secure AVIC enabled.</summary>
    public long HypervisorInjections { get; internal set; }

    /// <summary>Of those, the ones ALLOWED_IRR refused (dropped).</summary>
    public long HypervisorInjectionsBlocked { get; internal set; }

    /// <summary>NMIs the hypervisor injected on its own (<c>hv nmi</c>) into a vCPU with Secure AVIC enabled.</summary>
    public long HypervisorNmis { get; internal set; }

    /// <summary>Of those, the ones refused because ALLOWEDNMI was clear.</summary>
    public long HypervisorNmisBlocked { get; internal set; }

    /// <summary>Device interrupts (IOAPIC, MSI) the hypervisor requested for a vCPU with Secure AVIC enabled.</summary>
    public long DeviceInterrupts { get; internal set; }

    /// <summary>Of those, the ones ALLOWED_IRR refused (lost).</summary>
    public long DeviceInterruptsBlocked { get; internal set; }

    /// <summary>Timer interrupts the hypervisor's emulated timer requested (an unmasked expiry) for a vCPU with Secure AVIC enabled.</summary>
    public long TimerInjections { get; internal set; }

    /// <summary>Of those, the ones whose vector ALLOWED_IRR does not hold: dropped, never in IRR (the timer itself ran on).</summary>
    public long TimerInterruptsBlocked { get; internal set; }

    /// <summary>
    /// Interrupts the hypervisor's emulation of the other LVTs (LINT0, LINT1, thermal, performance
    /// counter, error) requested for a vCPU with Secure AVIC enabled: fixed vectors and NMIs.
    /// </summary>
    public long LvtInterrupts { get; internal set; }

    /// <summary>Of those, the ones refused: a fixed vector ALLOWED_IRR does not hold, or an NMI while ALLOWEDNMI is clear.</summary>
    public long LvtInterruptsBlocked { get; internal set; }

    /// <summary>
    /// NMIs the hypervisor delivers as a virtual NMI to a vCPU with Secure AVIC enabled for its
    /// devices (IOAPIC, MSI, other external sources) or for an IPI it sends on behalf of a vCPU
    /// without Secure AVIC; not the guest's own NMI IPIs (the NMI request in the target's page).
    /// </summary>
    public long DeviceNmis { get; internal set; }

    /// <summary>Of those, the ones refused because ALLOWEDNMI was clear.</summary>
    public long DeviceNmisBlocked { get; internal set; }

    /// <summary>ALLOWED_IRR bits the driver set.</summary>
    public long AllowancesGranted { get; internal set; }

    /// <summary>ALLOWED_IRR bits the driver cleared because no source uses the vector on that vCPU any more (a vector moved or was reprogrammed).</summary>
    public long AllowancesWithdrawn { get; internal set; }

    /// <summary>Every counter as a name/value row, for <c>vapic replay --stats</c>.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Rows =>
    [
        new("setups", Setups),
        new("teardowns", Teardowns),
        new("accelerated accesses", AcceleratedAccesses),
        new("#VC handled", VcExceptions),
        new("#VC unhandled", UnhandledVcExceptions),
        new("MSR-protocol VMGEXITs", MsrProtocolVmgexits),
        new("registration VMGEXITs", RegistrationVmgexits),
        new("IPIs sent", IpisSent),
        new("logical IPIs refused", LogicalIpisRefused),
        new("hv injections", HypervisorInjections),
        new("hv injections blocked", HypervisorInjectionsBlocked),
        new("hv NMIs", HypervisorNmis),
        new("hv NMIs blocked", HypervisorNmisBlocked),
        new("device interrupts", DeviceInterrupts),
        new("device interrupts blocked", DeviceInterruptsBlocked),
        new("device NMIs", DeviceNmis),
        new("device NMIs blocked", DeviceNmisBlocked),
        new("timer interrupts", TimerInjections),
        new("timer interrupts blocked", TimerInterruptsBlocked),
        new("other LVT interrupts", LvtInterrupts),
        new("other LVT interrupts blocked", LvtInterruptsBlocked),
        new("allowances granted", AllowancesGranted),
        new("allowances withdrawn", AllowancesWithdrawn),
    ];
}
