using System.CommandLine;
using System.Globalization;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Cli;

/// <summary>
/// The command-line options that describe the host of a passthrough VM (<c>--host-cpus</c>,
/// <c>--pinning</c>, <c>--intercept-thermal</c>, <c>--intercept-icr-read</c>), shared by
/// <c>vapic msr-bitmap</c> and <c>vapic replay</c>, and the number parsers those commands use.
/// </summary>
internal sealed class PassthroughHostOptions
{
    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Creates the options.</summary>
    public PassthroughHostOptions()
    {
        HostCpus = new Option<string?>("--host-cpus")
        {
            Description = "Passthrough: physical CPUs of the host (default: twice the vCPUs).",
            HelpName = "N",
        };
        Pinning = new Option<string?>("--pinning")
        {
            Description = "Passthrough: the pCPU of each vCPU, comma-separated (default: vCPU i on pCPU 2i+1).",
            HelpName = "A,B,...",
        };
        InterceptThermal = new Option<bool>("--intercept-thermal")
        {
            Description = "Passthrough: also intercept the LVT thermal register (0x833), as ACRN did before virtual thermal management.",
        };
        InterceptIcrRead = new Option<bool>("--intercept-icr-read")
        {
            Description = "Passthrough: also intercept ICR reads (0x830), which otherwise show the last physical destination.",
        };
    }

    /// <summary><c>--host-cpus N</c>.</summary>
    public Option<string?> HostCpus { get; }

    /// <summary><c>--pinning A,B,...</c>.</summary>
    public Option<string?> Pinning { get; }

    /// <summary><c>--intercept-thermal</c>.</summary>
    public Option<bool> InterceptThermal { get; }

    /// <summary><c>--intercept-icr-read</c>.</summary>
    public Option<bool> InterceptIcrRead { get; }

    /// <summary>Adds the four options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(HostCpus);
        command.Options.Add(Pinning);
        command.Options.Add(InterceptThermal);
        command.Options.Add(InterceptIcrRead);
    }

    /// <summary>True when any of the four options was given.</summary>
    public bool AnyGiven(ParseResult parseResult) =>
        parseResult.GetValue(HostCpus) is not null || parseResult.GetValue(Pinning) is not null ||
        parseResult.GetValue(InterceptThermal) || parseResult.GetValue(InterceptIcrRead);

    /// <summary>
    /// Reads the options into a <see cref="PassthroughOptions"/> (not yet validated against a vCPU
    /// count: <see cref="PassthroughOptions.Validate"/> does that); false with a one-line problem when
    /// a number does not parse.
    /// </summary>
    public bool TryRead(ParseResult parseResult, out PassthroughOptions options, out string? problem)
    {
        options = PassthroughOptions.Default;
        if (!TryParseCount(parseResult.GetValue(HostCpus), "--host-cpus", 1, PassthroughOptions.MaxHostCpus, -1, out int hostCpus, out problem) ||
            !TryParsePinning(parseResult.GetValue(Pinning), out int[]? pins, out problem))
        {
            return false;
        }

        options = new PassthroughOptions
        {
            HostCpuCount = hostCpus < 0 ? null : hostCpus,
            Pinning = pins,
            InterceptThermal = parseResult.GetValue(InterceptThermal),
            InterceptIcrRead = parseResult.GetValue(InterceptIcrRead),
        };
        return true;
    }

    /// <summary>Parses a decimal count from <paramref name="minimum"/> to <paramref name="maximum"/>; <paramref name="absent"/> when not given.</summary>
    public static bool TryParseCount(string? text, string option, int minimum, int maximum, int absent, out int value, out string? problem)
    {
        problem = null;
        value = absent;
        if (text is null)
        {
            return true;
        }

        if (!int.TryParse(text, NumberStyles.None, s_invariant, out value) || value < minimum || value > maximum)
        {
            problem = $"{option} must be a whole number from {minimum} to {maximum}, not '{text}'";
            return false;
        }

        return true;
    }

    /// <summary>Parses a comma-separated list of pCPU numbers; null when not given.</summary>
    public static bool TryParsePinning(string? text, out int[]? pins, out string? problem)
    {
        problem = null;
        pins = null;
        if (text is null)
        {
            return true;
        }

        string[] parts = text.Split(',');
        pins = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i].Trim(), NumberStyles.None, s_invariant, out pins[i]))
            {
                problem = $"--pinning: '{parts[i].Trim()}' is not a pCPU number";
                pins = null;
                return false;
            }
        }

        return true;
    }
}
