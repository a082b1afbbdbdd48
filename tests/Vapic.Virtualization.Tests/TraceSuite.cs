namespace Vapic.Virtualization.Tests;

/// <summary>Locates tests/traces for suite-wide equivalence tests.</summary>
public static class TraceSuite
{
    public static string Root { get; } = Find();

    public static IEnumerable<string> Files() =>
        Directory.EnumerateFiles(Root, "*.trace", SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "traces");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/traces not found above " + AppContext.BaseDirectory);
    }
}
