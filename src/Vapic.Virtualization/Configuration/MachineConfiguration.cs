using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Virtualization.Configuration;

/// <summary>
/// A machine description loaded from TOML (see docs/configuration.md): the machine, the
/// virtualization mode, the cost model, the passthrough host and the workload to run.
/// </summary>
/// <param name="SourceName">The file the configuration came from, as errors name it.</param>
/// <param name="Machine">The machine: vCPUs, APIC IDs, lock, IOAPIC version, vendor, TSC offset, TSC and APIC timer frequencies.</param>
/// <param name="Mode">The virtualization mode, one of <see cref="ModeRegistry.Available"/>.</param>
/// <param name="CostModel">The default cost model with the <c>[cost]</c> overrides applied.</param>
/// <param name="Passthrough">The host of a passthrough VM; null for the other modes.</param>
/// <param name="Workload">The built-in workload, how long it runs and the device sources.</param>
public sealed record MachineConfiguration(
    string SourceName,
    MachineOptions Machine,
    string Mode,
    CostModel CostModel,
    PassthroughOptions? Passthrough,
    CompareWorkloadOptions Workload)
{
    /// <summary>Creates the configured mode, not attached to a machine yet.</summary>
    public VirtualizationMode CreateMode() => CreateMode(Mode, CostModel);

    /// <summary>
    /// Creates mode <paramref name="name"/> with <paramref name="costModel"/>; passthrough gets the
    /// configured host (<see cref="Passthrough"/>). Usable as a <see cref="ModeFactory"/>.
    /// </summary>
    public VirtualizationMode CreateMode(string name, CostModel costModel) =>
        name == "passthrough"
            ? new PassthroughMode(Passthrough ?? PassthroughOptions.Default, costModel)
            : ModeRegistry.Create(name, costModel);

    /// <summary>
    /// Runs the workload once under the configured mode on a fresh machine (through
    /// <see cref="ComparisonRunner"/>), after checking that the configured machine itself builds
    /// under the mode.
    /// </summary>
    public ComparisonResult Run() => Run(out _);

    /// <summary>
    /// Runs the workload as <see cref="Run()"/> does and reports what each device source of
    /// <see cref="CompareWorkloadOptions.Devices"/> did (its firings and the interrupts its target took).
    /// </summary>
    public ComparisonResult Run(out IReadOnlyList<DeviceSourceRun> devices)
    {
        // The workload runs on the configured machine: its APIC IDs, lock, vendor, TSC offset and
        // frequencies.
        IReadOnlyList<DeviceSourceRun> seen = [];
        ComparisonResult result = ComparisonRunner.Run(
            Workload with { Machine = Machine }, CostModel, [Mode], CreateMode, (_, run) => seen = run.Devices);
        devices = seen;
        return result;
    }
}

/// <summary>A configuration error at a position of the source: <c>file:line:column: message</c>.</summary>
/// <param name="SourceName">The file.</param>
/// <param name="Line">The line, 1-based.</param>
/// <param name="Column">The column, 1-based.</param>
/// <param name="Message">What is wrong, with a suggestion where one exists.</param>
public sealed record ConfigurationError(string SourceName, int Line, int Column, string Message)
{
    /// <summary>The error as one line: <c>file:line:column: message</c>.</summary>
    public override string ToString() => $"{SourceName}:{Line}:{Column}: {Message}";
}

/// <summary>What loading a configuration produced: the configuration or the first error.</summary>
public sealed class ConfigurationLoadResult
{
    private ConfigurationLoadResult(MachineConfiguration? configuration, ConfigurationError? error)
    {
        Configuration = configuration;
        Error = error;
    }

    /// <summary>The configuration; null when <see cref="Error"/> is set.</summary>
    public MachineConfiguration? Configuration { get; }

    /// <summary>The first error; null when the configuration loaded.</summary>
    public ConfigurationError? Error { get; }

    /// <summary>True when the configuration loaded.</summary>
    public bool Succeeded => Configuration is not null;

    /// <summary>A successful load.</summary>
    public static ConfigurationLoadResult Success(MachineConfiguration configuration) =>
        new(configuration ?? throw new ArgumentNullException(nameof(configuration)), null);

    /// <summary>A failed load.</summary>
    public static ConfigurationLoadResult Failure(ConfigurationError error) =>
        new(null, error ?? throw new ArgumentNullException(nameof(error)));
}
