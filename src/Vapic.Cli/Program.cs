using System.CommandLine;

namespace Vapic.Cli;

/// <summary>The <c>vapic</c> command line: <c>vapic replay</c> and <c>vapic demo</c>.</summary>
public static class Program
{
    /// <summary>Runs <c>vapic</c> with <paramref name="args"/> and returns the exit status.</summary>
    public static int Main(string[] args) => CliErrors.Invoke(CreateRootCommand(), args);

    /// <summary>
    /// Builds the command tree. Every command offers --help and --version.
    /// </summary>
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand(
            "Vapic: a virtual x86 local APIC (xAPIC/x2APIC), IOAPIC and MSI for building and testing hypervisors.");
        foreach (Option option in root.Options)
        {
            if (option is VersionOption)
            {
                // Offer --version on the subcommands too ("vapic replay --version"), also next to
                // other arguments, as --help is: drop the "cannot be combined" check.
                option.Recursive = true;
                option.Validators.Clear();
            }
        }

        root.Subcommands.Add(ReplayCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(MadtCommand.Create());
        root.Subcommands.Add(CompareCommand.Create());
        root.Subcommands.Add(NestedCommand.Create());
        root.Subcommands.Add(MsrBitmapCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(StateCommand.Create());
        root.SetAction(parseResult =>
            CliErrors.Usage(
                parseResult.InvocationConfiguration.Error,
                "vapic",
                $"a command is required: {string.Join(", ", root.Subcommands.Select(c => c.Name))} (see 'vapic --help')"));
        return root;
    }
}
