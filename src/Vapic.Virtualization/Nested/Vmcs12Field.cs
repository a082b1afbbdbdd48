namespace Vapic.Virtualization.Nested;

/// <summary>
/// The vmcs12 address fields L0 must map to build vmcs02 (virtualization-reference §2.1, §5.2).
/// The values are the 64-bit VMCS field encodings.
/// </summary>
public enum Vmcs12Field : ushort
{
    /// <summary>Virtual-APIC address (64-bit field 0x2012), 4 KiB aligned.</summary>
    VirtualApicAddress = 0x2012,

    /// <summary>APIC-access address (64-bit field 0x2014), 4 KiB aligned.</summary>
    ApicAccessAddress = 0x2014,

    /// <summary>Posted-interrupt descriptor address (64-bit field 0x2016), 64-byte aligned.</summary>
    PostedInterruptDescriptorAddress = 0x2016,
}

/// <summary>Names of <see cref="Vmcs12Field"/>: the SDM's and the trace keyword.</summary>
public static class Vmcs12FieldNames
{
    /// <summary>The trace keywords, in the order of <see cref="All"/>.</summary>
    public static IReadOnlyList<string> Keywords { get; } = ["apic-access", "virtual-apic", "pi-desc"];

    /// <summary>Every address field.</summary>
    public static IReadOnlyList<Vmcs12Field> All { get; } =
        [Vmcs12Field.ApicAccessAddress, Vmcs12Field.VirtualApicAddress, Vmcs12Field.PostedInterruptDescriptorAddress];

    /// <summary>The SDM name, e.g. "APIC-access address".</summary>
    public static string Describe(Vmcs12Field field) => field switch
    {
        Vmcs12Field.VirtualApicAddress => "virtual-APIC address",
        Vmcs12Field.ApicAccessAddress => "APIC-access address",
        Vmcs12Field.PostedInterruptDescriptorAddress => "posted-interrupt descriptor address",
        _ => $"field 0x{(ushort)field:x4}",
    };

    /// <summary>The trace keyword: <c>apic-access</c>, <c>virtual-apic</c> or <c>pi-desc</c>.</summary>
    public static string Keyword(Vmcs12Field field) => field switch
    {
        Vmcs12Field.VirtualApicAddress => "virtual-apic",
        Vmcs12Field.ApicAccessAddress => "apic-access",
        Vmcs12Field.PostedInterruptDescriptorAddress => "pi-desc",
        _ => $"field-0x{(ushort)field:x4}",
    };

    /// <summary>Looks up the field whose trace keyword is <paramref name="keyword"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> keyword, out Vmcs12Field field)
    {
        for (int i = 0; i < Keywords.Count; i++)
        {
            if (keyword.SequenceEqual(Keywords[i]))
            {
                field = All[i];
                return true;
            }
        }

        field = default;
        return false;
    }
}
