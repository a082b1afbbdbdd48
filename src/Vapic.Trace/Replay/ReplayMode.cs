namespace Vapic.Trace.Replay;

/// <summary>
/// The virtualization modes a trace can be replayed in. Only <c>emulated</c> (every APIC access
/// handled by the device model) exists in this build; the others are named by the trace format
/// and are refused with a clear message until they are implemented.
/// </summary>
public static class ReplayMode
{
    /// <summary>Plain emulation.</summary>
    public const string Emulated = "emulated";

    /// <summary>Every mode the trace format names, in the order <c>--mode all</c> runs them.</summary>
    public static IReadOnlyList<string> Known { get; } = ["emulated", "apicv", "avic", "passthrough", "savic"];

    /// <summary>The modes this build implements.</summary>
    public static IReadOnlyList<string> Available { get; } = [Emulated];

    /// <summary>Whether <paramref name="mode"/> is implemented.</summary>
    public static bool IsAvailable(string mode) => Available.Contains(mode);
}
