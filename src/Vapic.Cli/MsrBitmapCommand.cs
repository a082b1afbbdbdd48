using System.CommandLine;
using System.Globalization;
using Vapic.Machine;
using Vapic.Virtualization;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Cli;

/// <summary>
/// <c>vapic msr-bitmap [--mode passthrough] [--before-x2apic] [--json] [--vcpus N] [--vcpu I]
/// [--tsc-offset N] [--host-cpus N] [--pinning A,B,...] [--intercept-thermal] [--intercept-icr-read]</c>:
/// builds a machine under the passthrough mode, boots it, switches every guest LAPIC to x2APIC
/// (unless <c>--before-x2apic</c>) and prints which MSRs of 0x800-0x8FF one vCPU's VMX MSR bitmap
/// intercepts for read and for write, and which TSC-related MSRs (0x3B, 0x6E0). Exit status: 0
/// printed, 2 bad options (one line on stderr saying why).
/// </summary>
public static class MsrBitmapCommand
{
    private const string Name = "vapic msr-bitmap";
    private const string PassthroughModeName = "passthrough";
    private static readonly CultureInfo s_invariant = CultureInfo.InvariantCulture;

    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var mode = new Option<string>("--mode")
        {
            Description = "The virtualization mode whose MSR bitmap to show; only 'passthrough' keeps one.",
            DefaultValueFactory = _ => PassthroughModeName,
        };
        var beforeX2Apic = new Option<bool>("--before-x2apic")
        {
            Description = "Show the bitmap while the guest is still in xAPIC mode (before it writes EXTD to IA32_APIC_BASE).",
        };
        var json = new Option<bool>("--json")
        {
            Description = "Print {\"read\": [...], \"write\": [...], \"tsc\": {\"read\": [...], \"write\": [...]}} instead of text.",
        };
        var vcpus = new Option<string?>("--vcpus") { Description = $"Number of vCPUs, 1 to {MachineOptions.MaxVcpus} (default 1).", HelpName = "N" };
        var vcpu = new Option<string?>("--vcpu") { Description = "The vCPU whose bitmap to show (default 0).", HelpName = "I" };
        var tscOffset = new Option<string?>("--tsc-offset")
        {
            Description = "The vCPUs' TSC offset, a signed 64-bit number (default 0); when not 0 the TSC MSRs stay intercepted.",
            HelpName = "N",
        };
        var host = new PassthroughHostOptions();
        var command = new Command("msr-bitmap", "Show which MSRs a vCPU's VMX MSR bitmap intercepts under the passthrough mode.")
        {
            mode,
            beforeX2Apic,
            json,
            vcpus,
            vcpu,
            tscOffset,
        };
        host.AddTo(command);
        command.SetAction(parseResult => Run(
            new Request(
                parseResult.GetValue(mode) ?? PassthroughModeName,
                parseResult.GetValue(beforeX2Apic),
                parseResult.GetValue(json),
                parseResult.GetValue(vcpus),
                parseResult.GetValue(vcpu),
                parseResult.GetValue(tscOffset),
                host.TryRead(parseResult, out PassthroughOptions passthrough, out string? hostProblem) ? passthrough : null,
                hostProblem),
            parseResult.InvocationConfiguration.Output,
            parseResult.InvocationConfiguration.Error));
        return command;
    }

    private sealed record Request(
        string Mode,
        bool BeforeX2Apic,
        bool Json,
        string? Vcpus,
        string? Vcpu,
        string? TscOffset,
        PassthroughOptions? Host,
        string? HostProblem);

    private static int Run(Request request, TextWriter output, TextWriter error)
    {
        if (request.Mode != PassthroughModeName)
        {
            string why = ModeRegistry.Known.Contains(request.Mode)
                ? $"mode '{request.Mode}' keeps no MSR bitmap of its own here; only '{PassthroughModeName}' does"
                : $"unknown mode '{request.Mode}' (modes: {string.Join(", ", ModeRegistry.Known)})";
            return CliErrors.Usage(error, Name, why);
        }

        if (!PassthroughHostOptions.TryParseCount(request.Vcpus, "--vcpus", 1, MachineOptions.MaxVcpus, 1, out int vcpuCount, out string? problem) ||
            !PassthroughHostOptions.TryParseCount(request.Vcpu, "--vcpu", 0, vcpuCount - 1, 0, out int shown, out problem) ||
            !TryParseTscOffset(request.TscOffset, out long offset, out problem))
        {
            return CliErrors.Usage(error, Name, problem!);
        }

        if (request.Host is not PassthroughOptions options)
        {
            return CliErrors.Usage(error, Name, request.HostProblem!);
        }

        if (options.Validate(vcpuCount) is string invalid)
        {
            return CliErrors.Usage(error, Name, invalid);
        }

        var machine = new MachineOptions { VcpuCount = vcpuCount, TscOffset = offset };
        PassthroughMsrReport report = PassthroughMsrReport.Build(machine, options, switchToX2Apic: !request.BeforeX2Apic, shown);
        if (request.Json)
        {
            output.WriteLine(report.ToJson());
            return CliExitCode.Success;
        }

        string phase = report.GuestInX2Apic
            ? "the guest has switched to x2APIC: the x2APIC MSRs are passed through"
            : "the guest is still in xAPIC mode: its LAPIC is emulated";
        output.WriteLine($"MSR bitmap of vCPU {shown} under passthrough ({phase})");
        output.WriteLine($"  x2APIC range 0x800-0x8ff, read-intercepted:  {PassthroughMsrReport.DescribeRanges(report.Read)}");
        output.WriteLine($"  x2APIC range 0x800-0x8ff, write-intercepted: {PassthroughMsrReport.DescribeRanges(report.Write)}");
        output.WriteLine($"  TSC MSRs 0x3b, 0x6e0 (TSC offset {report.TscOffset.ToString(s_invariant)}), read-intercepted:  {PassthroughMsrReport.DescribeRanges(report.TscRead)}");
        output.WriteLine($"  TSC MSRs 0x3b, 0x6e0 (TSC offset {report.TscOffset.ToString(s_invariant)}), write-intercepted: {PassthroughMsrReport.DescribeRanges(report.TscWrite)}");
        return CliExitCode.Success;
    }

    private static bool TryParseTscOffset(string? text, out long value, out string? problem)
    {
        problem = null;
        value = 0;
        if (text is null)
        {
            return true;
        }

        bool negative = text.StartsWith('-');
        string digits = negative ? text[1..] : text;
        bool parsed = digits.StartsWith("0x", StringComparison.Ordinal)
            ? ulong.TryParse(digits.AsSpan(2), NumberStyles.AllowHexSpecifier, s_invariant, out ulong magnitude)
            : ulong.TryParse(digits, NumberStyles.None, s_invariant, out magnitude);
        if (!parsed || magnitude > (negative ? 1UL << 63 : long.MaxValue))
        {
            problem = $"--tsc-offset must be a signed 64-bit number (decimal or 0x hex, optionally after '-'), not '{text}'";
            return false;
        }

        value = negative ? unchecked((long)(0 - magnitude)) : (long)magnitude;
        return true;
    }
}
