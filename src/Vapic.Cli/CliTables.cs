using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Vapic.Cli;

/// <summary>Renders Spectre.Console widgets as plain text for the <c>vapic</c> commands.</summary>
internal static class CliTables
{
    /// <summary>
    /// Renders <paramref name="widget"/> at a fixed <paramref name="width"/> without colour, so the
    /// text is the same on a terminal and in a pipe, drops the padding Spectre adds at the ends of
    /// lines, and ends with a blank line.
    /// </summary>
    public static void Write(TextWriter output, IRenderable widget, int width)
    {
        var buffer = new StringWriter(CultureInfo.InvariantCulture);
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(buffer),
        });
        console.Profile.Width = width;
        console.Write(widget);
        foreach (string line in buffer.ToString().TrimEnd().Split('\n'))
        {
            output.WriteLine(line.TrimEnd());
        }

        output.WriteLine();
    }
}
