namespace Vapic.Virtualization.Nested;

/// <summary>
/// The VM-execution, pin-based and VM-exit controls of a vmcs12 that matter to nested APIC
/// virtualization (virtualization-reference §2.1 and §5.1). The model keeps them as one flag set;
/// each member names the VMCS control and bit it stands for.
/// </summary>
[Flags]
public enum Vmcs12Controls : ushort
{
    /// <summary>No control set.</summary>
    None = 0,

    /// <summary>Use TPR shadow: primary processor-based control bit 21 (the virtual-APIC page and VTPR).</summary>
    UseTprShadow = 1 << 0,

    /// <summary>Virtualize APIC accesses: secondary control bit 0 (uses the APIC-access address).</summary>
    VirtualizeApicAccesses = 1 << 1,

    /// <summary>Virtualize x2APIC mode: secondary control bit 4 (RDMSR/WRMSR 800H-8FFH).</summary>
    VirtualizeX2ApicMode = 1 << 2,

    /// <summary>APIC-register virtualization: secondary control bit 8.</summary>
    ApicRegisterVirtualization = 1 << 3,

    /// <summary>Virtual-interrupt delivery: secondary control bit 9.</summary>
    VirtualInterruptDelivery = 1 << 4,

    /// <summary>Process posted interrupts: pin-based control bit 7.</summary>
    ProcessPostedInterrupts = 1 << 5,

    /// <summary>Enable EPT: secondary control bit 1. Clear, L1 runs L2 on page tables that L0 shadows.</summary>
    EnableEpt = 1 << 6,

    /// <summary>External-interrupt exiting: pin-based control bit 0.</summary>
    ExternalInterruptExiting = 1 << 7,

    /// <summary>Acknowledge interrupt on exit: VM-exit control bit 15.</summary>
    AcknowledgeInterruptOnExit = 1 << 8,

    /// <summary>CR8-load exiting: primary processor-based control bit 19.</summary>
    Cr8LoadExiting = 1 << 9,

    /// <summary>CR8-store exiting: primary processor-based control bit 20.</summary>
    Cr8StoreExiting = 1 << 10,
}

/// <summary>The trace and CLI names of <see cref="Vmcs12Controls"/> (lower-case, hyphenated SDM names).</summary>
public static class Vmcs12ControlNames
{
    private static readonly (Vmcs12Controls Control, string Name)[] s_names =
    [
        (Vmcs12Controls.UseTprShadow, "tpr-shadow"),
        (Vmcs12Controls.VirtualizeApicAccesses, "virtualize-apic-accesses"),
        (Vmcs12Controls.VirtualizeX2ApicMode, "virtualize-x2apic-mode"),
        (Vmcs12Controls.ApicRegisterVirtualization, "apic-register-virtualization"),
        (Vmcs12Controls.VirtualInterruptDelivery, "virtual-interrupt-delivery"),
        (Vmcs12Controls.ProcessPostedInterrupts, "posted-interrupts"),
        (Vmcs12Controls.EnableEpt, "ept"),
        (Vmcs12Controls.ExternalInterruptExiting, "external-interrupt-exiting"),
        (Vmcs12Controls.AcknowledgeInterruptOnExit, "ack-interrupt-on-exit"),
        (Vmcs12Controls.Cr8LoadExiting, "cr8-load-exiting"),
        (Vmcs12Controls.Cr8StoreExiting, "cr8-store-exiting"),
    ];

    /// <summary>Every control name, in declaration order.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. s_names.Select(n => n.Name)];

    /// <summary>The name of the single control <paramref name="control"/>.</summary>
    public static string Name(Vmcs12Controls control)
    {
        foreach ((Vmcs12Controls c, string name) in s_names)
        {
            if (c == control)
            {
                return name;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(control), control, "not a single control");
    }

    /// <summary>Looks up the control called <paramref name="name"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> name, out Vmcs12Controls control)
    {
        foreach ((Vmcs12Controls c, string n) in s_names)
        {
            if (name.SequenceEqual(n))
            {
                control = c;
                return true;
            }
        }

        control = Vmcs12Controls.None;
        return false;
    }

    /// <summary>The names of the controls set in <paramref name="controls"/>, in declaration order.</summary>
    public static IEnumerable<string> Enumerate(Vmcs12Controls controls)
    {
        foreach ((Vmcs12Controls c, string name) in s_names)
        {
            if ((controls & c) != 0)
            {
                yield return name;
            }
        }
    }
}
