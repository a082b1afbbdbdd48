using System.Collections.Immutable;

namespace Vapic.Trace.Syntax;

/// <summary>A parsed trace: the machine it runs on and its commands in file order.</summary>
/// <param name="FileName">The name the trace was parsed under (used in every <see cref="SourceLocation"/>).</param>
/// <param name="Machine">The <c>machine</c> line.</param>
/// <param name="Commands">The commands after the machine line, in file order.</param>
public sealed record TraceDocument(string FileName, MachineDirective Machine, ImmutableArray<TraceCommand> Commands);
