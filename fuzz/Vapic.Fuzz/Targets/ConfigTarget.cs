using System.Text;
using Vapic.Machine;
using Vapic.Virtualization;
using Vapic.Virtualization.Configuration;

namespace Vapic.Fuzz.Targets;

/// <summary>
/// <c>config</c>: arbitrary text through <see cref="MachineConfigurationLoader.Parse"/> (the
/// workload is not run). A refusal is one error with a 1-based position; an accepted configuration
/// is one that <c>vapic run</c> can start: machine, workload and passthrough options valid, the mode
/// created and attached to a machine of those options.
/// </summary>
public sealed class ConfigTarget : FuzzTarget
{
    /// <summary>Accepted configurations for bigger machines are checked but not built.</summary>
    public const int MaxBuiltVcpus = 256;

    // Built on first use, not with the target: under AFL the instrumented Vapic assemblies must not
    // run before SharpFuzz has mapped the coverage memory, and FuzzTargets creates every target first.
    private static readonly Lazy<IReadOnlyList<string>> s_dictionary = new(() =>
    [
        .. MachineConfigurationLoader.TopLevelKeys,
        .. MachineConfigurationLoader.Tables.Select(t => $"[{t}]\n"),
        .. MachineConfigurationLoader.DeviceTables.Select(t => $"[[{t}]]\n"),
        .. MachineConfigurationLoader.MachineKeys,
        .. MachineConfigurationLoader.MsiDeviceKeys,
        .. MachineConfigurationLoader.IoApicDeviceKeys,
        .. MachineConfigurationLoader.PassthroughKeys,
        .. MachineConfigurationLoader.WorkloadKeys,
        .. ModeRegistry.Known.Select(m => $"\"{m}\""),
        "\"intel\"", "\"amd\"", "\"ipi-storm\"", "\"broadcast\"", "\"timer\"", "\"device\"", "\"mixed\"",
        "ExitRoundTrip", "MmioEmulation", "PostedNotify", "AvicDoorbell", "Injection",
        " = ", "true", "false", "[]", "[0, 1]", "{ }", "'''", "\"\"\"", "1e3", "inf", "nan", "0o17", "0b101", "1979-05-27T07:32:00Z",
    ]);

    /// <inheritdoc/>
    public override string Name => "config";

    /// <inheritdoc/>
    public override string Description => "MachineConfigurationLoader.Parse of arbitrary TOML: typed error with position, or options that build a machine and mode";

    /// <inheritdoc/>
    public override bool IsText => true;

    /// <inheritdoc/>
    public override IReadOnlyList<string> Dictionary => s_dictionary.Value;

    /// <inheritdoc/>
    public override void Run(ReadOnlySpan<byte> input)
    {
        string text = Encoding.UTF8.GetString(input);
        ConfigurationLoadResult loaded = MachineConfigurationLoader.Parse(text, "fuzz.toml");
        if (!loaded.Succeeded)
        {
            ConfigurationError? error = loaded.Error;
            if (error is null || error.Line < 1 || error.Column < 1 || string.IsNullOrEmpty(error.Message))
            {
                throw new FuzzInvariantException($"malformed refusal: {error?.ToString() ?? "no error"}");
            }

            return;
        }

        MachineConfiguration configuration = loaded.Configuration!;
        MachineOptions machine = configuration.Machine;
        if (machine.Validate() is string machineError)
        {
            throw new FuzzInvariantException($"accepted machine options that a machine refuses: {machineError}");
        }

        if ((configuration.Workload with { Machine = machine }).Validate() is string workloadError)
        {
            throw new FuzzInvariantException($"accepted a workload that vapic run refuses: {workloadError}");
        }

        if (configuration.Passthrough?.Validate(machine.VcpuCount) is string passthroughError)
        {
            throw new FuzzInvariantException($"accepted passthrough options that the mode refuses: {passthroughError}");
        }

        VirtualizationMode mode = configuration.CreateMode();
        if (mode.Name != configuration.Mode)
        {
            throw new FuzzInvariantException($"mode '{configuration.Mode}' creates '{mode.Name}'");
        }

        if (machine.VcpuCount <= MaxBuiltVcpus)
        {
            _ = new VirtualMachine(machine, mode);
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot)
    {
        string[] files = Directory.GetFiles(Path.Combine(repositoryRoot, "examples"), "*.toml");
        Array.Sort(files, StringComparer.Ordinal);
        var seeds = new List<FuzzSeed>(files.Length);
        foreach (string file in files)
        {
            seeds.Add(new FuzzSeed(Path.GetFileName(file), File.ReadAllBytes(file)));
        }

        return seeds;
    }
}
