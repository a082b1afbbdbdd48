using Vapic.Trace.Syntax;
using Xunit;

namespace Vapic.Trace.Tests.Syntax;

/// <summary><see cref="TraceParser.ParseFile"/>: file problems are typed errors, never exceptions.</summary>
public sealed class TraceParserFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vapic-trace-tests-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void ExistingFile_IsParsedUnderItsPath()
    {
        string path = Path.Combine(_directory, "bring-up.trace");
        File.WriteAllText(path, "machine vcpus=2\n\n1 state = wait-for-sipi\n");

        TraceParseResult result = TraceParser.ParseFile(path);

        Assert.True(result.Succeeded);
        Assert.Equal(path, result.Document.FileName);
        Assert.Equal(new SourceLocation(path, 3, 1), result.Document.Commands[0].Location);
    }

    [Fact]
    public void MalformedFile_ErrorNamesThePath()
    {
        string path = Path.Combine(_directory, "bad.trace");
        File.WriteAllText(path, "machine vcpus=2\n2 accept\n");

        TraceParseError error = Assert.Single(TraceParser.ParseFile(path).Errors);

        Assert.Equal(TraceErrorKind.CpuOutOfRange, error.Kind);
        Assert.Equal(new SourceLocation(path, 2, 1), error.Location);
    }

    [Fact]
    public void MissingFile_IsFileNotFound()
    {
        string path = Path.Combine(_directory, "absent.trace");

        TraceParseResult result = TraceParser.ParseFile(path);

        Assert.False(result.Succeeded);
        TraceParseError error = Assert.Single(result.Errors);
        Assert.Equal(TraceErrorKind.FileNotFound, error.Kind);
        Assert.Equal(new SourceLocation(path, 0, 0), error.Location);
        Assert.Equal(path + ": trace file not found", error.ToString());
    }

    [Fact]
    public void MissingDirectory_IsFileNotFound()
    {
        string path = Path.Combine(_directory, "no-such-dir", "x.trace");

        Assert.Equal(TraceErrorKind.FileNotFound, Assert.Single(TraceParser.ParseFile(path).Errors).Kind);
    }

    [Fact]
    public void Directory_IsFileUnreadable()
    {
        Assert.Equal(TraceErrorKind.FileUnreadable, Assert.Single(TraceParser.ParseFile(_directory).Errors).Kind);
    }

    [Fact]
    public void EmptyPath_IsFileUnreadable()
    {
        Assert.Equal(TraceErrorKind.FileUnreadable, Assert.Single(TraceParser.ParseFile(string.Empty).Errors).Kind);
    }
}
