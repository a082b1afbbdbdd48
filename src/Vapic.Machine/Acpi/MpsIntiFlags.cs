using System.Globalization;

namespace Vapic.Machine.Acpi;

/// <summary>The polarity field, bits 1:0 of the MPS INTI flags.</summary>
public enum MpsPolarity
{
    /// <summary>00: conforms to the specifications of the bus (ISA: active high).</summary>
    BusDefault = 0,

    /// <summary>01: active high.</summary>
    ActiveHigh = 1,

    /// <summary>10: reserved.</summary>
    Reserved = 2,

    /// <summary>11: active low.</summary>
    ActiveLow = 3,
}

/// <summary>The trigger-mode field, bits 3:2 of the MPS INTI flags.</summary>
public enum MpsTriggerMode
{
    /// <summary>00: conforms to the specifications of the bus (ISA: edge).</summary>
    BusDefault = 0,

    /// <summary>01: edge-triggered.</summary>
    Edge = 1,

    /// <summary>10: reserved.</summary>
    Reserved = 2,

    /// <summary>11: level-triggered.</summary>
    Level = 3,
}

/// <summary>
/// The 16-bit MPS INTI flags of interrupt source overrides and NMI structures (ACPI table
/// "MPS INTI Flags"; lapic-reference.md §13): polarity in bits 1:0, trigger mode in bits 3:2,
/// bits 15:4 reserved (zero).
/// </summary>
/// <param name="Value">The raw 16-bit field.</param>
public readonly record struct MpsIntiFlags(ushort Value)
{
    private const ushort ReservedMask = 0xFFF0;

    /// <summary>00 00: polarity and trigger mode conform to the bus (the IRQ0 → GSI2 override uses this).</summary>
    public static MpsIntiFlags BusDefault => new(0);

    /// <summary>Edge-triggered, active high (0x0005).</summary>
    public static MpsIntiFlags EdgeActiveHigh => Create(MpsPolarity.ActiveHigh, MpsTriggerMode.Edge);

    /// <summary>Level-triggered, active high (0x000D): the usual flags of the ACPI SCI.</summary>
    public static MpsIntiFlags LevelActiveHigh => Create(MpsPolarity.ActiveHigh, MpsTriggerMode.Level);

    /// <summary>The polarity field, bits 1:0.</summary>
    public MpsPolarity Polarity => (MpsPolarity)(Value & 0x3);

    /// <summary>The trigger-mode field, bits 3:2.</summary>
    public MpsTriggerMode TriggerMode => (MpsTriggerMode)((Value >> 2) & 0x3);

    /// <summary>True when a reserved encoding (polarity or trigger 10b) or a reserved bit (15:4) is used.</summary>
    public bool HasReservedValue =>
        (Value & ReservedMask) != 0 || Polarity == MpsPolarity.Reserved || TriggerMode == MpsTriggerMode.Reserved;

    /// <summary>Returns the flags for <paramref name="polarity"/> and <paramref name="triggerMode"/>.</summary>
    public static MpsIntiFlags Create(MpsPolarity polarity, MpsTriggerMode triggerMode) =>
        new((ushort)(((int)polarity & 0x3) | (((int)triggerMode & 0x3) << 2)));

    /// <summary>Returns "edge, active high", "bus default", and so on; reserved values are named as such.</summary>
    public override string ToString()
    {
        if (Value == 0)
        {
            return "bus default";
        }

        string trigger = TriggerMode switch
        {
            MpsTriggerMode.BusDefault => "bus-default trigger",
            MpsTriggerMode.Edge => "edge",
            MpsTriggerMode.Level => "level",
            _ => "reserved trigger",
        };
        string polarity = Polarity switch
        {
            MpsPolarity.BusDefault => "bus-default polarity",
            MpsPolarity.ActiveHigh => "active high",
            MpsPolarity.ActiveLow => "active low",
            _ => "reserved polarity",
        };
        string text = $"{trigger}, {polarity}";
        return (Value & ReservedMask) == 0
            ? text
            : text + string.Create(CultureInfo.InvariantCulture, $", reserved bits 0x{Value & ReservedMask:x4}");
    }
}
