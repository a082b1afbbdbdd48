namespace Vapic.Virtualization.Nested;

/// <summary>
/// Old L0 behaviours kept for comparison. Neither is the default: each reproduces a known KVM
/// problem so that its effect can be shown next to the fixed behaviour.
/// </summary>
[Flags]
public enum NestedQuirks : byte
{
    /// <summary>Today's behaviour.</summary>
    None = 0,

    /// <summary>
    /// <c>nested-apic-access-clear</c>: when the vmcs12 APIC-access address is not backed by L1 RAM,
    /// clear "virtualize APIC accesses" in vmcs02 and enter L2 anyway (KVM before commit "KVM: nVMX:
    /// Don't leak L1 MMIO regions to L2", 2019). L2's APIC accesses then reach whatever L1 has at
    /// that address: nothing (a hole), an L1 device, or L1's own APIC.
    /// </summary>
    NestedApicAccessClear = 1 << 0,

    /// <summary>
    /// <c>l2-passthrough-no-inhibit</c>: when L2 touches L1's APIC page directly while APIC
    /// virtualization is active for L1, emulate the access behind its back without setting
    /// L2_PASSTHROUGH_ACCESS (KVM before the RFC of August 2023). Interrupts are lost.
    /// </summary>
    L2PassthroughNoInhibit = 1 << 1,
}

/// <summary>The names of <see cref="NestedQuirks"/> as <c>--quirk</c> and <c>nested quirk</c> take them.</summary>
public static class NestedQuirkNames
{
    private static readonly (NestedQuirks Quirk, string Name)[] s_names =
    [
        (NestedQuirks.NestedApicAccessClear, "nested-apic-access-clear"),
        (NestedQuirks.L2PassthroughNoInhibit, "l2-passthrough-no-inhibit"),
    ];

    /// <summary>Every quirk name.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. s_names.Select(n => n.Name)];

    /// <summary>Looks up the quirk called <paramref name="name"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> name, out NestedQuirks quirk)
    {
        foreach ((NestedQuirks q, string n) in s_names)
        {
            if (name.SequenceEqual(n))
            {
                quirk = q;
                return true;
            }
        }

        quirk = NestedQuirks.None;
        return false;
    }

    /// <summary>The name of the single quirk <paramref name="quirk"/>.</summary>
    public static string Name(NestedQuirks quirk)
    {
        foreach ((NestedQuirks q, string name) in s_names)
        {
            if (q == quirk)
            {
                return name;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(quirk), quirk, "not a single quirk");
    }

    /// <summary>The names of the quirks in <paramref name="quirks"/>, in declaration order.</summary>
    public static IReadOnlyList<string> Enumerate(NestedQuirks quirks) =>
        [.. s_names.Where(n => (quirks & n.Quirk) != 0).Select(n => n.Name)];
}
