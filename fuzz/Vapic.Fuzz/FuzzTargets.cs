using Vapic.Fuzz.Targets;

namespace Vapic.Fuzz;

/// <summary>Every fuzz target, by name, in the order the documentation lists them.</summary>
public static class FuzzTargets
{
    /// <summary>All targets.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new TraceTarget(),
        new SavedStateTarget(),
        new KvmTarget(),
        new XenTarget(),
        new LapicFileTarget(),
        new MadtTarget(),
        new ConfigTarget(),
        new GuestTarget(),
    ];

    /// <summary>The target names.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. All.Select(t => t.Name)];

    /// <summary>The target called <paramref name="name"/>, or null.</summary>
    public static FuzzTarget? Find(string name)
    {
        foreach (FuzzTarget target in All)
        {
            if (target.Name == name)
            {
                return target;
            }
        }

        return null;
    }
}
