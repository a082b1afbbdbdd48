namespace Vapic.Virtualization.Avic;

/// <summary>
/// What the AMD AVIC hardware and KVM's configuration offer (virtualization-reference §3):
/// x2AVIC, the size of the physical APIC ID table, and whether KVM exposes IsRunning to the
/// hardware (module parameter <c>enable_ipiv</c>).
/// </summary>
public sealed record AvicFeatures
{
    /// <summary>The highest physical APIC ID table index of xAVIC (AMD APM "Physical APIC ID Table").</summary>
    public const int XAvicMaxPhysicalIdIndex = 0xFE;

    /// <summary>The highest physical APIC ID table index of x2AVIC.</summary>
    public const int X2AvicMaxPhysicalIdIndex = 0x1FF;

    /// <summary>The highest index with the x2AVIC extension (table pointer bits 11:0 hold the max index).</summary>
    public const int X2AvicExtendedMaxPhysicalIdIndex = 0xFFF;

    private readonly int? _maxPhysicalIdIndex;

    /// <summary>The defaults: x2AVIC with a 512-entry physical table, IsRunning exposed.</summary>
    public static AvicFeatures Default { get; } = new();

    /// <summary>
    /// x2AVIC: a guest in x2APIC mode gets its APIC MSRs accelerated. Without it KVM runs
    /// "hybrid AVIC": every x2APIC MSR access exits, only doorbell delivery stays accelerated.
    /// </summary>
    public bool X2Avic { get; init; } = true;

    /// <summary>
    /// The highest guest physical APIC ID the physical table can index: by default 0x1FF with
    /// x2AVIC and 0xFE without; up to 0xFFF with the x2AVIC extension. A vCPU whose APIC ID is
    /// above it sets PHYSICAL_ID_TOO_BIG (virtualization-reference TV39).
    /// </summary>
    public int MaxPhysicalIdIndex
    {
        get => _maxPhysicalIdIndex ?? (X2Avic ? X2AvicMaxPhysicalIdIndex : XAvicMaxPhysicalIdIndex);
        init => _maxPhysicalIdIndex = value;
    }

    /// <summary>
    /// KVM <c>enable_ipiv</c>: KVM writes IsRunning = 1 into a vCPU's physical table entry while
    /// it is loaded. When false IsRunning is never set, so every guest IPI that needs the table
    /// takes an AVIC_INCOMPLETE_IPI exit (cause TARGET_NOT_RUNNING) and KVM delivers it.
    /// </summary>
    public bool ExposeIsRunning { get; init; } = true;

    /// <summary>Returns null when the features are consistent, else a message saying what is wrong.</summary>
    public string? Validate()
    {
        int limit = X2Avic ? X2AvicExtendedMaxPhysicalIdIndex : XAvicMaxPhysicalIdIndex;
        if (MaxPhysicalIdIndex < 0 || MaxPhysicalIdIndex > limit)
        {
            return X2Avic
                ? $"the x2AVIC physical APIC ID table index must be between 0 and 0x{limit:x}, not 0x{MaxPhysicalIdIndex:x}"
                : $"without x2AVIC the physical APIC ID table index must be between 0 and 0x{limit:x}, not 0x{MaxPhysicalIdIndex:x}";
        }

        return null;
    }
}
