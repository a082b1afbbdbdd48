namespace Vapic.Fuzz;

/// <summary>
/// One untrusted input of Vapic (a guest's accesses, a file, a network-delivered blob) and the
/// oracle that judges what the code under test did with it.
/// </summary>
/// <remarks>
/// The oracle is the same for every target: malformed input comes back as the API's typed error,
/// a refused operation changes nothing, and nothing throws. <see cref="Run"/> returns normally
/// when that held; an oracle that saw otherwise throws <see cref="FuzzInvariantException"/>, and
/// any other exception that escapes is the code under test throwing on untrusted input. Either
/// way SharpFuzz reports the input as a crash.
/// </remarks>
public abstract class FuzzTarget
{
    /// <summary>The name on the command line (<c>dotnet run --project fuzz/Vapic.Fuzz -- NAME</c>) and of the corpus folder.</summary>
    public abstract string Name { get; }

    /// <summary>One line: what the target feeds the input to and what it checks.</summary>
    public abstract string Description { get; }

    /// <summary>
    /// Whether the input is text (a trace, a TOML file). The smoke mutator then also splices in
    /// <see cref="Dictionary"/> tokens, and the AFL dictionary is written for it.
    /// </summary>
    public virtual bool IsText => false;

    /// <summary>Tokens of the input language, for the mutator and for <c>afl-fuzz -x</c>.</summary>
    public virtual IReadOnlyList<string> Dictionary => [];

    /// <summary>Feeds <paramref name="input"/> to the code under test and checks the oracle.</summary>
    /// <exception cref="FuzzInvariantException">The code under test returned, but broke the oracle.</exception>
    public abstract void Run(ReadOnlySpan<byte> input);

    /// <summary>
    /// The seed inputs of this target, made from the code (so they stay valid as formats evolve)
    /// or copied from the repository's own examples; <c>--write-seeds</c> writes them to
    /// <c>fuzz/corpus/NAME/</c>.
    /// </summary>
    /// <param name="repositoryRoot">The repository root, for seeds copied from its files.</param>
    public abstract IReadOnlyList<FuzzSeed> GenerateSeeds(string repositoryRoot);
}

/// <summary>A seed input and the file name it is stored under in the corpus.</summary>
/// <param name="FileName">The file name inside <c>fuzz/corpus/TARGET/</c>.</param>
/// <param name="Data">The input bytes.</param>
public sealed record FuzzSeed(string FileName, byte[] Data);
