namespace Vapic.Trace.Syntax;

/// <summary>
/// Which vmcs12 field a <c>nested vmcs12 &lt;cpu&gt; KEY=VALUE</c> command sets
/// (<see cref="TraceCommandKind.NestedVmcs12"/>: A is the setting, B the value).
/// </summary>
public enum NestedVmcs12Setting : byte
{
    /// <summary><c>controls=NAME,NAME,...|none</c>: replaces the control set. B = <see cref="Vapic.Virtualization.Nested.Vmcs12Controls"/>.</summary>
    Controls,

    /// <summary><c>apic-access=ADDR</c>: the APIC-access address (field 0x2014).</summary>
    ApicAccessAddress,

    /// <summary><c>virtual-apic=ADDR</c>: the virtual-APIC address (field 0x2012).</summary>
    VirtualApicAddress,

    /// <summary><c>pi-desc=ADDR</c>: the posted-interrupt descriptor address (field 0x2016).</summary>
    PostedInterruptDescriptorAddress,

    /// <summary><c>pi-vector=V</c>: the 16-bit posted-interrupt notification vector field.</summary>
    NotificationVector,

    /// <summary><c>tpr-threshold=N</c>: the 32-bit TPR threshold field.</summary>
    TprThreshold,

    /// <summary><c>eoi-exit=VECTOR</c>: sets that vector's bit in the EOI-exit bitmap.</summary>
    EoiExit,

    /// <summary><c>rvi=VECTOR</c>: guest-interrupt status bits 7:0.</summary>
    RequestingVirtualInterrupt,

    /// <summary><c>svi=VECTOR</c>: guest-interrupt status bits 15:8.</summary>
    ServicingVirtualInterrupt,
}

/// <summary>Operand values of the nested commands that are not plain numbers.</summary>
public static class NestedCommandOperands
{
    /// <summary>B of <see cref="TraceCommandKind.NestedEpt"/> for <c>none</c>: the L2 page is not present.</summary>
    public const ulong EptNotPresent = ulong.MaxValue;

    /// <summary>L2 addresses (and the exit qualifications that can carry one) are below 2^48.</summary>
    public const ulong L2AddressLimit = 1UL << 48;
}
