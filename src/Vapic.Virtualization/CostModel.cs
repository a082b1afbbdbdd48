using System.Globalization;
using System.Reflection;

namespace Vapic.Virtualization;

/// <summary>
/// Cycles charged per exit and per notification. Defaults are the simulator defaults of
/// virtualization-reference §1.2 (sources and caveats in docs/cost-model.md); every figure can
/// be overridden, e.g. <c>ExitRoundTrip=1500</c>.
/// </summary>
public sealed record CostModel
{
    /// <summary>Hardware exit and entry with a trivial in-kernel handler.</summary>
    public long ExitRoundTrip { get; init; } = 1_200;

    /// <summary>Extra for decoding and emulating an MMIO access.</summary>
    public long MmioEmulation { get; init; } = 800;

    /// <summary>An exit handled in userspace (the VMM's own devices and unbacked memory).</summary>
    public long UserspaceExitRoundTrip { get; init; } = 5_800;

    /// <summary>L2 → L0 → L1 → L0 → L2.</summary>
    public long NestedExitRoundTrip { get; init; } = 13_500;

    /// <summary>Sender side of a posted interrupt: PIR/ON update plus the notification IPI.</summary>
    public long PostedNotify { get; init; } = 300;

    /// <summary>Receiver side of a posted interrupt: PIR merge and evaluation, no exit.</summary>
    public long PostedReceive { get; init; } = 150;

    /// <summary>An AVIC doorbell write and the target's re-evaluation.</summary>
    public long AvicDoorbell { get; init; } = 300;

    /// <summary>Waking a blocked vCPU: host IRQ, scheduler wake-up, VM entry.</summary>
    public long WakeupBlockedVcpu { get; init; } = 5_000;

    private long? _vmgexitRoundTrip;

    /// <summary>A GHCB-protocol VMGEXIT (SEV-ES/SNP): 2 × <see cref="ExitRoundTrip"/> unless set (virtualization-reference §1.2).</summary>
    public long VmgexitRoundTrip
    {
        get => _vmgexitRoundTrip ?? 2 * ExitRoundTrip;
        init => _vmgexitRoundTrip = value;
    }

    /// <summary>Injecting an event at VM entry (part of the entry; charged separately for visibility).</summary>
    public long Injection { get; init; } = 0;

    /// <summary>The default model.</summary>
    public static CostModel Default { get; } = new();

    /// <summary>The names of every figure, as <see cref="WithOverride"/> accepts them.</summary>
    public static IReadOnlyList<string> FigureNames { get; } =
        [.. typeof(CostModel).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.PropertyType == typeof(long)).Select(p => p.Name)];

    /// <summary>
    /// Returns a copy with <paramref name="name"/> set to <paramref name="cycles"/>, or null with
    /// <paramref name="error"/> saying why (unknown name, negative value).
    /// </summary>
    public CostModel? WithOverride(string name, long cycles, out string? error)
    {
        PropertyInfo? property = typeof(CostModel).GetProperty(name, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        if (property is null || property.PropertyType != typeof(long))
        {
            error = $"unknown cost figure '{name}' (figures: {string.Join(", ", FigureNames)})";
            return null;
        }

        if (cycles < 0)
        {
            error = $"cost figure '{name}' must not be negative";
            return null;
        }

        CostModel copy = this with { };
        property.SetValue(copy, cycles);
        error = null;
        return copy;
    }

    /// <summary>Parses overrides of the form <c>Name=cycles[,Name=cycles...]</c>.</summary>
    public CostModel? WithOverrides(string overrides, out string? error)
    {
        CostModel model = this;
        foreach (string part in overrides.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0 || !long.TryParse(part.AsSpan(eq + 1), NumberStyles.Integer, CultureInfo.InvariantCulture, out long cycles))
            {
                error = $"cost override '{part}' is not of the form Name=cycles";
                return null;
            }

            CostModel? next = model.WithOverride(part[..eq], cycles, out error);
            if (next is null)
            {
                return null;
            }

            model = next;
        }

        error = null;
        return model;
    }

    /// <summary>The cycles one exit of <paramref name="reason"/> costs.</summary>
    public long CostOf(ExitReason reason) => reason switch
    {
        ExitReason.ApicMmio or ExitReason.ApicAccess => ExitRoundTrip + MmioEmulation,
        ExitReason.IoApicMmio => ExitRoundTrip + MmioEmulation,
        ExitReason.UnbackedMmio => UserspaceExitRoundTrip,
        ExitReason.AvicNoAccel => ExitRoundTrip + MmioEmulation,
        ExitReason.Vmgexit => VmgexitRoundTrip,
        _ => ExitRoundTrip,
    };

    /// <summary>The cycles one <paramref name="costEvent"/> costs.</summary>
    public long CostOf(CostEvent costEvent) => costEvent switch
    {
        CostEvent.Injection => Injection,
        CostEvent.PostedNotify => PostedNotify,
        CostEvent.PostedReceive or CostEvent.PostedMergeOnEntry => PostedReceive,
        CostEvent.AvicDoorbell => AvicDoorbell,
        CostEvent.WakeupBlockedVcpu => WakeupBlockedVcpu,
        _ => 0,
    };
}
