using Vapic.Apic;

namespace Vapic.Virtualization.Compare;

/// <summary>How a <see cref="DeviceSource"/> signals its interrupt.</summary>
public enum DeviceSourceKind : byte
{
    /// <summary>A PCI device writing an MSI (address 0xFEExxxxx, data = vector and delivery mode).</summary>
    Msi,

    /// <summary>A device wired to an IOAPIC input pin, routed by the pin's redirection entry.</summary>
    IoApic,
}

/// <summary>
/// A periodic interrupt source of the machine (<c>[[devices.msi]]</c> / <c>[[devices.ioapic]]</c>
/// in a configuration): during the measured phase of a <see cref="CompareWorkload"/> it fires at
/// <see cref="FirstFiringNs"/>, then every <see cref="PeriodNs"/>, at most <see cref="Count"/> times,
/// each firing sending one interrupt to vCPU <see cref="Target"/> (physical destination: its APIC ID).
/// </summary>
/// <remarks>
/// An MSI is edge-triggered (PCI MSI has no level form). An IOAPIC source's pin is programmed by
/// the BSP during setup; an edge source pulses its line (assert, deassert), a level source asserts
/// it and the guest's handler quiets the device (the line goes inactive) before its EOI, so the EOI
/// broadcast clears Remote IRR and nothing is sent again. An NMI source has no vector: the target
/// takes an NMI event and writes no EOI.
/// </remarks>
public sealed record DeviceSource
{
    /// <summary>The lowest vector a source may use: 0x00-0x0F are illegal to a LAPIC, 0x10-0x1F reserved.</summary>
    public const byte MinVector = 0x20;

    /// <summary>The highest vector a source may use: 0xFF is the workload's spurious vector (SVR).</summary>
    public const byte MaxVector = 0xFE;

    /// <summary>The delivery modes a source may use.</summary>
    public static IReadOnlyList<string> DeliveryNames { get; } = ["fixed", "lowest-priority", "nmi"];

    /// <summary>The name that identifies the source in reports; unique in a workload.</summary>
    public required string Name { get; init; }

    /// <summary>MSI or IOAPIC pin.</summary>
    public DeviceSourceKind Kind { get; init; }

    /// <summary>The vector, <see cref="MinVector"/> to <see cref="MaxVector"/>; ignored (0) for NMI delivery.</summary>
    public byte Vector { get; init; }

    /// <summary>The index of the vCPU the source addresses (physical destination mode, its APIC ID).</summary>
    public int Target { get; init; }

    /// <summary>Fixed (the default), lowest priority (one destination, so one candidate) or NMI.</summary>
    public DeliveryMode Delivery { get; init; } = DeliveryMode.Fixed;

    /// <summary>Virtual time between firings, 1 to <see cref="CompareWorkloadOptions.MaxDurationNs"/> ns.</summary>
    public long PeriodNs { get; init; }

    /// <summary>The virtual time of the first firing (at least 1: setup ends at time 0); null for <see cref="PeriodNs"/>.</summary>
    public long? StartNs { get; init; }

    /// <summary>The most firings; null for no limit but the duration.</summary>
    public long? Count { get; init; }

    /// <summary>The IOAPIC input pin, 0 to <see cref="IoApic.DefaultPinCount"/> - 1 (IOAPIC sources only).</summary>
    public int Pin { get; init; }

    /// <summary>Level-triggered (IOAPIC sources only); false: edge.</summary>
    public bool LevelTriggered { get; init; }

    /// <summary>The pin is active low (RTE polarity bit 13; IOAPIC sources only); false: active high.</summary>
    public bool ActiveLow { get; init; }

    /// <summary>The virtual time of the first firing.</summary>
    public long FirstFiringNs => StartNs ?? PeriodNs;

    /// <summary>True when the source sends an NMI.</summary>
    public bool IsNmi => Delivery == DeliveryMode.Nmi;

    /// <summary>"msi" or "ioapic", as configurations name the kind.</summary>
    public string KindName => Kind == DeviceSourceKind.Msi ? "msi" : "ioapic";

    /// <summary>"fixed", "lowest-priority" or "nmi", as configurations name the delivery mode.</summary>
    public string DeliveryName => Delivery switch
    {
        DeliveryMode.Fixed => "fixed",
        DeliveryMode.LowestPriority => "lowest-priority",
        DeliveryMode.Nmi => "nmi",
        _ => Delivery.ToString(),
    };

    /// <summary>The name of source <paramref name="index"/> of <paramref name="kind"/> without an explicit one: <c>msi0</c>, <c>ioapic1</c>, ...</summary>
    public static string DefaultName(DeviceSourceKind kind, int index) =>
        (kind == DeviceSourceKind.Msi ? "msi" : "ioapic") + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Firings in the measured phase (0, <paramref name="durationNs"/>]: every one sends one interrupt.</summary>
    public long FiringsWithin(long durationNs)
    {
        long first = FirstFiringNs;
        if (PeriodNs < 1 || first < 1 || first > durationNs)
        {
            return 0;
        }

        long firings = ((durationNs - first) / PeriodNs) + 1;
        return Count is long limit && limit < firings ? limit : firings;
    }

    /// <summary>
    /// What is wrong with <paramref name="vector"/> as a device vector, or null when it may be used.
    /// Vectors 0-15 are illegal to a LAPIC (it sets "Receive Illegal Vector" in ESR and drops the
    /// interrupt) and 16-31 are reserved for architecture-defined exceptions and interrupts (SDM
    /// "Valid Interrupt Vectors"); 0xFF is the spurious vector the workload
    /// programs in SVR; the built-in workload's own vectors would merge with the device's.
    /// </summary>
    public static string? VectorError(long vector)
    {
        if (vector is < 0 or > 0xFF)
        {
            return $"vector must be between 0x{MinVector:X2} and 0x{MaxVector:X2}, not {vector}";
        }

        if (vector < 0x10)
        {
            return $"vector 0x{vector:X2} is illegal: a LAPIC refuses vectors 0x00-0x0F (ESR \"Receive Illegal Vector\"); use 0x{MinVector:X2} to 0x{MaxVector:X2}";
        }

        if (vector < MinVector)
        {
            return $"vector 0x{vector:X2} is reserved: 0x10-0x1F belong to architecture-defined exceptions; use 0x{MinVector:X2} to 0x{MaxVector:X2}";
        }

        if (vector == 0xFF)
        {
            return $"vector 0xFF is the spurious-interrupt vector (SVR); use 0x{MinVector:X2} to 0x{MaxVector:X2}";
        }

        return BuiltInUserOf((byte)vector) is string user
            ? $"vector 0x{vector:X2} is the built-in workload's {user} vector; pick another"
            : null;
    }

    /// <summary>Which of the built-in workload's interrupts uses <paramref name="vector"/>, or null.</summary>
    public static string? BuiltInUserOf(byte vector) => vector switch
    {
        CompareWorkload.TimerVector => "LAPIC timer",
        CompareWorkload.IpiVector => "unicast IPI",
        CompareWorkload.BroadcastVector => "broadcast IPI",
        CompareWorkload.MsiVector => "MSI",
        CompareWorkload.LevelVector => "level IOAPIC line",
        CompareWorkload.StartupVector => "start-up IPI",
        _ => null,
    };

    /// <summary>
    /// Checks the source on its own (the vCPU count, other sources and the workload are checked by
    /// <see cref="CompareWorkloadOptions.Validate"/>); returns null when valid, otherwise what is wrong.
    /// </summary>
    public string? Validate()
    {
        if (string.IsNullOrEmpty(Name))
        {
            return "a device needs a name";
        }

        if (!Enum.IsDefined(Kind))
        {
            return $"device '{Name}': unknown kind {(int)Kind}";
        }

        if (Delivery is not (DeliveryMode.Fixed or DeliveryMode.LowestPriority or DeliveryMode.Nmi))
        {
            return $"device '{Name}': delivery must be {string.Join(", ", DeliveryNames)}, not {Delivery}";
        }

        if (!IsNmi && VectorError(Vector) is string vectorError)
        {
            return $"device '{Name}': {vectorError}";
        }

        if (Target < 0)
        {
            return $"device '{Name}': target must be a vCPU index, not {Target}";
        }

        if (PeriodNs is < 1 or > CompareWorkloadOptions.MaxDurationNs)
        {
            return $"device '{Name}': period must be between 1 and {CompareWorkloadOptions.MaxDurationNs} ns, not {PeriodNs}";
        }

        if (StartNs is long start && start is < 1 or > CompareWorkloadOptions.MaxDurationNs)
        {
            return $"device '{Name}': start must be between 1 and {CompareWorkloadOptions.MaxDurationNs} ns (setup ends at time 0), not {start}";
        }

        if (Count is long count && count < 1)
        {
            return $"device '{Name}': count must be at least 1, not {count}";
        }

        if (Kind == DeviceSourceKind.Msi)
        {
            if (LevelTriggered)
            {
                return $"device '{Name}': level-triggered MSIs are not modeled (PCI MSI is edge-triggered only)";
            }

            if (ActiveLow || Pin != 0)
            {
                return $"device '{Name}': an MSI has no pin or polarity";
            }
        }
        else
        {
            if (Pin is < 0 or >= IoApic.DefaultPinCount)
            {
                return $"device '{Name}': pin must be between 0 and {IoApic.DefaultPinCount - 1}, not {Pin}";
            }

            if (IsNmi && LevelTriggered)
            {
                // 82093AA datasheet, delivery mode NMI: "treated as an edge triggered interrupt even
                // if it is programmed as level"; the entry must be programmed edge.
                return $"device '{Name}': an NMI redirection entry must be edge-triggered";
            }
        }

        return null;
    }
}
