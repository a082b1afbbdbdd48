using System.CommandLine;
using System.CommandLine.Parsing;

namespace Vapic.Cli;

/// <summary>The exit statuses every <c>vapic</c> command uses.</summary>
public static class CliExitCode
{
    /// <summary>The command did what was asked (for replay: every expectation held).</summary>
    public const int Success = 0;

    /// <summary>The command ran and found a failure (for replay: an expectation failed or modes disagreed).</summary>
    public const int Failure = 1;

    /// <summary>Bad input: an unknown command or option, an invalid option value, a malformed file.</summary>
    public const int Usage = 2;

    /// <summary>A bug in vapic: an exception escaped a command.</summary>
    public const int InternalError = 3;
}

/// <summary>
/// Runs the command tree so that nothing reaches the user as a stack trace: parse errors become
/// one line on stderr with status <see cref="CliExitCode.Usage"/> (System.CommandLine's own
/// default is 1 plus the full help text), and an exception escaping a command becomes one line
/// with status <see cref="CliExitCode.InternalError"/>.
/// </summary>
public static class CliErrors
{
    /// <summary>Parses <paramref name="args"/> against <paramref name="root"/> and runs the chosen command.</summary>
    public static int Invoke(RootCommand root, string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(args);
        output ??= Console.Out;
        error ??= Console.Error;
        try
        {
            ParseResult parseResult = root.Parse(args);
            // --help and --version run even when the rest of the line has errors.
            if (parseResult.Errors.Count > 0 && parseResult.Action is not { ClearsParseErrors: true })
            {
                ReportUsageError(parseResult, error);
                return CliExitCode.Usage;
            }

            var configuration = new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                Output = output,
                Error = error,
            };
            return parseResult.Invoke(configuration);
        }
        catch (Exception ex)
        {
            error.WriteLine($"vapic: internal error: {ex.GetType().Name}: {OneLine(ex.Message)}");
            return CliExitCode.InternalError;
        }
    }

    /// <summary>Writes "vapic: message" and returns <see cref="CliExitCode.Usage"/>, for invalid input found by a command.</summary>
    public static int Usage(TextWriter error, string command, string message)
    {
        error.WriteLine($"{command}: {OneLine(message)}");
        return CliExitCode.Usage;
    }

    private static void ReportUsageError(ParseResult parseResult, TextWriter error)
    {
        string command = CommandPath(parseResult.CommandResult);

        // The first error is the one to fix; later ones are often consequences of it.
        string message = OneLine(parseResult.Errors[0].Message).TrimEnd('.');
        error.WriteLine($"{command}: {message} (see '{command} --help')");
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is not null; r = r.Parent)
        {
            if (r is CommandResult c)
            {
                names.Add(c.Command is RootCommand ? "vapic" : c.Command.Name);
            }
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    private static string OneLine(string message) =>
        message.ReplaceLineEndings(" ").Trim();
}
