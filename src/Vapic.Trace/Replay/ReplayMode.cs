using Vapic.Virtualization;

namespace Vapic.Trace.Replay;

/// <summary>
/// The virtualization modes a trace can be replayed in (the trace format names emulated, apicv,
/// avic, passthrough and savic); a mode this build does not implement is refused with a clear
/// message.
/// </summary>
public static class ReplayMode
{
    /// <summary>Plain emulation.</summary>
    public const string Emulated = "emulated";

    /// <summary>Every mode the trace format names, in the order <c>--mode all</c> runs them.</summary>
    public static IReadOnlyList<string> Known => ModeRegistry.Known;

    /// <summary>The modes this build implements.</summary>
    public static IReadOnlyList<string> Available => ModeRegistry.Available;

    /// <summary>Whether <paramref name="mode"/> is implemented.</summary>
    public static bool IsAvailable(string mode) => ModeRegistry.IsAvailable(mode);
}
