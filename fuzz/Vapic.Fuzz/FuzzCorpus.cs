namespace Vapic.Fuzz;

/// <summary>A named input read from the corpus, a crash folder or the command line.</summary>
/// <param name="Name">The file name (or a description of a generated input).</param>
/// <param name="Data">The bytes.</param>
public sealed record FuzzInput(string Name, byte[] Data);

/// <summary>Where the harness keeps its files in the repository, and how it reads them.</summary>
public static class FuzzCorpus
{
    /// <summary>The solution file that marks the repository root.</summary>
    public const string SolutionFile = "Vapic.slnx";

    /// <summary>The extension of the text file that <c>--smoke</c> writes beside a saved crash: the exception.</summary>
    public const string StackExtension = ".stack";

    /// <summary>
    /// Finds the repository root: the nearest folder holding <see cref="SolutionFile"/>, looking up
    /// from the current directory and then from the program's own folder (tests run from bin/).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Neither is inside the repository.</exception>
    public static string FindRepositoryRoot()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, SolutionFile)))
                {
                    return dir.FullName;
                }
            }
        }

        throw new DirectoryNotFoundException($"no {SolutionFile} above {Directory.GetCurrentDirectory()} or {AppContext.BaseDirectory}");
    }

    /// <summary><c>fuzz/corpus/TARGET</c>: the seed inputs of a target.</summary>
    public static string CorpusDirectory(string repositoryRoot, string target) =>
        Path.Combine(repositoryRoot, "fuzz", "corpus", target);

    /// <summary><c>fuzz/crashes/TARGET</c>: inputs that broke the oracle, kept as reproducers.</summary>
    public static string CrashDirectory(string repositoryRoot, string target) =>
        Path.Combine(repositoryRoot, "fuzz", "crashes", target);

    /// <summary><c>fuzz/dictionaries/TARGET.dict</c>: the AFL dictionary of a text target.</summary>
    public static string DictionaryFile(string repositoryRoot, string target) =>
        Path.Combine(repositoryRoot, "fuzz", "dictionaries", target + ".dict");

    /// <summary>
    /// Reads <paramref name="path"/>: every regular file below a folder, sorted by ordinal path so
    /// runs are repeatable, or the one file. Hidden files and folders (AFL's <c>.state</c>), AFL's
    /// <c>README.txt</c> and the <c>*.stack</c> notes beside saved crashes are skipped.
    /// </summary>
    /// <exception cref="FileNotFoundException">The path does not exist.</exception>
    public static IReadOnlyList<FuzzInput> Load(string path)
    {
        if (File.Exists(path))
        {
            return [new FuzzInput(Path.GetFileName(path), File.ReadAllBytes(path))];
        }

        if (!Directory.Exists(path))
        {
            throw new FileNotFoundException($"no such file or folder: {path}", path);
        }

        string[] files = Directory.GetFiles(path, "*", SearchOption.AllDirectories);
        Array.Sort(files, StringComparer.Ordinal);
        var inputs = new List<FuzzInput>(files.Length);
        foreach (string file in files)
        {
            string relative = Path.GetRelativePath(path, file);
            if (IsNote(relative))
            {
                continue;
            }

            inputs.Add(new FuzzInput(relative, File.ReadAllBytes(file)));
        }

        return inputs;
    }

    private static bool IsNote(string relativePath)
    {
        string name = Path.GetFileName(relativePath);
        return name == "README.txt"
            || name.EndsWith(StackExtension, StringComparison.Ordinal)
            || relativePath.Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.'));
    }
}
