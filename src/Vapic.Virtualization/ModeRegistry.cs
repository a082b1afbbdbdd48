namespace Vapic.Virtualization;

/// <summary>The virtualization modes by name, as <c>--mode</c> takes them.</summary>
public static class ModeRegistry
{
    private static readonly Dictionary<string, Func<CostModel, VirtualizationMode>> s_factories = new(StringComparer.Ordinal)
    {
        ["emulated"] = cost => new EmulatedMode(cost),
        ["apicv"] = cost => new Apicv.ApicvMode(costModel: cost),
        ["avic"] = cost => new Avic.AvicMode(costModel: cost),
        ["savic"] = cost => new SecureAvic.SecureAvicMode(cost),
        ["passthrough"] = cost => new Passthrough.PassthroughMode(costModel: cost),
    };

    /// <summary>Every mode the trace format names, in the order <c>--mode all</c> runs them.</summary>
    public static IReadOnlyList<string> Known { get; } = ["emulated", "apicv", "avic", "passthrough", "savic"];

    /// <summary>The modes this build implements, in <see cref="Known"/> order.</summary>
    public static IReadOnlyList<string> Available => [.. Known.Where(s_factories.ContainsKey)];

    /// <summary>Whether <paramref name="name"/> is implemented.</summary>
    public static bool IsAvailable(string name) => s_factories.ContainsKey(name);

    /// <summary>Creates mode <paramref name="name"/> (see <see cref="IsAvailable"/>).</summary>
    public static VirtualizationMode Create(string name, CostModel? costModel = null) =>
        s_factories.TryGetValue(name, out var factory)
            ? factory(costModel ?? CostModel.Default)
            : throw new ArgumentException($"mode '{name}' is not available", nameof(name));
}
