using System.Globalization;
using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>One register of a saved LAPIC as the guest would read it.</summary>
/// <param name="Name">The SDM's short name ("Local APIC Register Address Map").</param>
/// <param name="Offset">The xAPIC page offset; -1 for MSR-only state.</param>
/// <param name="Value">The value, hex with 0x ("0x000000ff"); 256-bit registers as 64 hex digits.</param>
/// <param name="Decoded">What the value means.</param>
public sealed record LapicRegister(string Name, int Offset, string Value, string Decoded);

/// <summary>Every register of a saved LAPIC, decoded, for <c>vapic state show</c> and for comparing states register for register.</summary>
public static class LapicRegisterView
{
    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>The mode as <c>vapic state show --json</c> names it: "xapic", "x2apic" or "disabled".</summary>
    public static string ModeName(LocalApicState s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.Mode switch
        {
            ApicMode.X2Apic => "x2apic",
            ApicMode.XApic => "xapic",
            _ => "disabled",
        };
    }

    /// <summary>The APIC ID the guest reads: the 32-bit x2APIC ID in x2APIC mode, ID register bits 31:24 otherwise.</summary>
    public static uint ApicId(LocalApicState s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.Mode == ApicMode.X2Apic ? s.X2ApicId : s.XApicId >> 24;
    }

    /// <summary>Every register, in address order, then IA32_APIC_BASE and IA32_TSC_DEADLINE.</summary>
    public static IReadOnlyList<LapicRegister> Registers(LocalApicState s)
    {
        ArgumentNullException.ThrowIfNull(s);
        bool x2 = s.Mode == ApicMode.X2Apic;
        uint id = x2 ? s.X2ApicId : s.XApicId;
        uint ppr = LapicPage.ProcessorPriority(s);
        ulong icr = ((ulong)s.InterruptCommandHigh << 32) | s.InterruptCommandLow;
        uint lint0 = s.LvtLint0 | (s.Lint0RemoteIrr ? 1u << 14 : 0);
        uint lint1 = s.LvtLint1 | (s.Lint1RemoteIrr ? 1u << 14 : 0);
        return
        [
            new("ID", LapicPage.Id, Hex(id), x2 ? $"x2APIC ID {id}" : $"APIC ID {id >> 24}"),
            new("VER", LapicPage.Version, Hex(s.Version),
                $"version 0x{s.Version & 0xFF:x2}, max LVT entry {(s.Version >> 16) & 0xFF}, EOI-broadcast suppression {((s.Version & (1u << 24)) != 0 ? "supported" : "not supported")}"),
            new("TPR", LapicPage.Tpr, Hex(s.TaskPriority), $"class {s.TaskPriority >> 4}, subclass {s.TaskPriority & 0xF}"),
            new("PPR", LapicPage.Ppr, Hex(ppr), $"class {ppr >> 4}"),
            new("LDR", LapicPage.Ldr, Hex(s.LogicalDestination),
                x2 ? $"cluster {s.LogicalDestination >> 16}, mask 0x{s.LogicalDestination & 0xFFFF:x4}" : $"logical ID 0x{s.LogicalDestination >> 24:x2}"),
            new("DFR", LapicPage.Dfr, Hex(s.DestinationFormat), (s.DestinationFormat >> 28) == 0xF ? "flat model" : (s.DestinationFormat >> 28) == 0 ? "cluster model" : "reserved model"),
            new("SVR", LapicPage.Svr, Hex(s.SpuriousVector),
                $"spurious vector 0x{s.SpuriousVector & 0xFF:x2}, APIC software {((s.SpuriousVector & 0x100) != 0 ? "enabled" : "disabled")}, focus checking {((s.SpuriousVector & 0x200) != 0 ? "off" : "on")}, EOI-broadcast suppression {YesNo((s.SpuriousVector & 0x1000) != 0)}"),
            new("ISR", LapicPage.Isr, Bitmap(s.Isr), Vectors(s.Isr)),
            new("TMR", LapicPage.Tmr, Bitmap(s.Tmr), Vectors(s.Tmr)),
            new("IRR", LapicPage.Irr, Bitmap(s.Irr), Vectors(s.Irr)),
            new("ESR", LapicPage.Esr, Hex(s.ErrorStatus), EsrText(s.ErrorStatus)),
            new("LVT_CMCI", LapicPage.LvtCmci, Hex(s.LvtCmci), LvtText(s.LvtCmci, timer: false)),
            new("ICR", LapicPage.IcrLow, "0x" + icr.ToString("x16", s_invariant), IcrText(s.InterruptCommandLow, s.InterruptCommandHigh, x2)),
            new("LVT_TIMER", LapicPage.LvtTimer, Hex(s.LvtTimer), LvtText(s.LvtTimer, timer: true)),
            new("LVT_THERMAL", LapicPage.LvtThermal, Hex(s.LvtThermal), LvtText(s.LvtThermal, timer: false)),
            new("LVT_PMC", LapicPage.LvtPerformanceCounter, Hex(s.LvtPerformanceCounter), LvtText(s.LvtPerformanceCounter, timer: false)),
            new("LVT_LINT0", LapicPage.LvtLint0, Hex(lint0), LvtText(lint0, timer: false)),
            new("LVT_LINT1", LapicPage.LvtLint1, Hex(lint1), LvtText(lint1, timer: false)),
            new("LVT_ERROR", LapicPage.LvtError, Hex(s.LvtError), LvtText(s.LvtError, timer: false)),
            new("TMICT", LapicPage.InitialCount, Hex(s.InitialCount), s.InitialCount.ToString(s_invariant)),
            new("TMCCT", LapicPage.CurrentCount, Hex(LapicPage.CurrentCountOf(s)), LapicPage.CurrentCountOf(s).ToString(s_invariant)),
            new("DCR", LapicPage.Dcr, Hex(s.DivideConfiguration), $"divide by {LapicPage.Divisor(s.DivideConfiguration)}"),
            new("IA32_APIC_BASE", -1, "0x" + s.BaseMsr.ToString("x", s_invariant),
                $"base 0x{s.BaseMsr & ~0xFFFUL:x}, {ModeName(s)}{((s.BaseMsr & ApicBaseMsr.BootstrapProcessor) != 0 ? ", BSP" : "")}"),
            new("IA32_TSC_DEADLINE", -1, "0x" + s.TscDeadline.ToString("x", s_invariant), s.TscDeadline == 0 ? "disarmed" : $"TSC {s.TscDeadline}"),
        ];
    }

    private static string Hex(uint value) => "0x" + value.ToString("x8", s_invariant);

    private static string YesNo(bool value) => value ? "on" : "off";

    private static string Bitmap(InterruptBitmap bitmap)
    {
        var text = new System.Text.StringBuilder("0x", 66);
        for (int i = 7; i >= 0; i--)
        {
            text.Append(bitmap.GetChunk(i).ToString("x8", s_invariant));
        }

        return text.ToString();
    }

    private static string Vectors(InterruptBitmap bitmap)
    {
        var list = new List<string>();
        for (int v = 0; v < 256; v++)
        {
            if (bitmap.Get(v))
            {
                list.Add("0x" + v.ToString("x2", s_invariant));
            }
        }

        return list.Count == 0 ? "none" : string.Join(" ", list);
    }

    private static string EsrText(uint esr)
    {
        string[] names = ["send checksum", "receive checksum", "send accept", "receive accept", "redirectable IPI", "send illegal vector", "receive illegal vector", "illegal register address"];
        var set = new List<string>();
        for (int bit = 0; bit < names.Length; bit++)
        {
            if ((esr & (1u << bit)) != 0)
            {
                set.Add(names[bit]);
            }
        }

        return set.Count == 0 ? "no error" : string.Join(", ", set);
    }

    private static string DeliveryModeName(uint mode) => mode switch
    {
        0 => "fixed",
        1 => "lowest priority",
        2 => "SMI",
        4 => "NMI",
        5 => "INIT",
        6 => "start-up",
        7 => "ExtINT",
        _ => "reserved",
    };

    private static string LvtText(uint value, bool timer)
    {
        string text = $"vector 0x{value & 0xFF:x2}";
        if (timer)
        {
            text += ((value >> 17) & 3) switch { 0 => ", one-shot", 1 => ", periodic", 2 => ", TSC-deadline", _ => ", reserved mode" };
        }
        else
        {
            text += ", " + DeliveryModeName((value >> 8) & 7);
            if ((value & (1u << 15)) != 0)
            {
                text += ", level";
            }

            if ((value & (1u << 14)) != 0)
            {
                text += ", remote IRR";
            }
        }

        return text + ((value & (1u << 16)) != 0 ? ", masked" : "");
    }

    private static string IcrText(uint low, uint high, bool x2)
    {
        string shorthand = ((low >> 18) & 3) switch { 1 => "self", 2 => "all including self", 3 => "all excluding self", _ => "" };
        string destination = shorthand.Length != 0 ? shorthand : x2 ? $"destination 0x{high:x}" : $"destination 0x{high >> 24:x2}";
        return $"vector 0x{low & 0xFF:x2}, {DeliveryModeName((low >> 8) & 7)}, {((low & (1u << 11)) != 0 ? "logical" : "physical")}, {destination}";
    }
}
