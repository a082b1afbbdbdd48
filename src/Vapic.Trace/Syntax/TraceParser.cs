using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Vapic.Machine;

namespace Vapic.Trace.Syntax;

/// <summary>
/// Parses trace text (docs/trace-format.md) into a <see cref="TraceDocument"/>. Malformed input
/// never throws: it yields a <see cref="TraceParseResult"/> whose error names the file, line, column
/// and what was wrong.
/// </summary>
/// <remarks>
/// Replay throughput depends on this loop, so it tokenizes with indices into the original string:
/// no regular expressions, no splitting, no per-token or per-line allocation. A successful parse
/// allocates the command array (sized exactly by a first pass over the text), the machine line's
/// APIC ID list and a handful of small objects; only error messages allocate strings.
/// </remarks>
public static partial class TraceParser
{
    private static readonly string[] s_cpuCommands = ["read", "write", "rdmsr", "wrmsr", "rdcr8", "wrcr8", "accept", "state", "lint", "vmlaunch", "l2"];
    private static readonly string[] s_machineCommands = ["ioapic", "irq", "msi", "time", "hv", "nested"];
    private static readonly string[] s_hypervisorOperations = ["inject", "nmi"];
    private static readonly string[] s_allCommands = [.. s_cpuCommands, .. s_machineCommands, "machine"];
    private static readonly string[] s_machineOptions = ["vcpus", "ids", "force-x2apic", "ioapic-version", "tsc-offset", "vendor"];
    private static readonly string[] s_vendors = ["intel", "amd"];
    private static readonly string[] s_lineActions = ["high", "low", "pulse"];
    private static readonly string[] s_ioApicOperations = ["write", "read"];
    private static readonly string[] s_events = ["none", "smi", "init", "nmi", "extint", "sipi"];
    private static readonly string[] s_runStates = ["running", "wait-for-sipi"];
    private static readonly string[] s_unmapped = ["unmapped"];
    private static readonly string[] s_generalProtection = ["!gp"];

    /// <summary>Parses <paramref name="text"/>, naming it <paramref name="fileName"/> in locations and errors.</summary>
    public static TraceParseResult Parse(string fileName, string text)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        ArgumentNullException.ThrowIfNull(text);
        var parser = new Parser(fileName, text);
        return parser.Run();
    }

    /// <summary>
    /// Reads and parses the trace at <paramref name="path"/>. A missing or unreadable file yields a
    /// <see cref="TraceErrorKind.FileNotFound"/> or <see cref="TraceErrorKind.FileUnreadable"/> error
    /// (at line 0), not an exception.
    /// </summary>
    public static TraceParseResult ParseFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return FileError(TraceErrorKind.FileNotFound, path, "trace file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return FileError(TraceErrorKind.FileUnreadable, path, $"cannot read trace file: {e.Message}");
        }

        return Parse(path, text);
    }

    private static TraceParseResult FileError(TraceErrorKind kind, string path, string message) =>
        TraceParseResult.Failure(new TraceParseError(kind, new SourceLocation(path, 0, 0), message));

    private enum TokenKind : byte
    {
        End,
        Word,
        EqualsSign,
        Comma,
    }

    /// <summary>What may follow a command's operands.</summary>
    [Flags]
    private enum Tail : byte
    {
        Nothing = 0,
        Value32 = 1 << 0,
        Value64 = 1 << 1,
        Unmapped = 1 << 2,
        GeneralProtection = 1 << 3,
        Event = 1 << 4,
        RunState = 1 << 5,
    }

    /// <summary>A token: a slice of the trace text. <see cref="TokenKind.End"/> sits where the line's content ends.</summary>
    private readonly struct Token(TokenKind kind, int start, int length)
    {
        public TokenKind Kind { get; } = kind;

        public int Start { get; } = start;

        public int Length { get; } = length;
    }

    /// <summary>The parse of one text; lives on the stack for the duration of <see cref="Parse"/>.</summary>
    private ref partial struct Parser
    {
        private const uint IoApicPinCount = 24;
        private const ulong MsiWindowBase = 0xFEE0_0000;
        private const ulong MsiWindowMask = 0xFFF0_0000;

        private readonly string _fileName;
        private readonly string _text;
        private readonly TraceSource _source;
        private TraceCommand[] _commands;
        private int _commandCount;
        private MachineDirective? _machine;
        private ulong _elapsedNs;
        private TraceParseError? _error;

        // The current line: [_lineStart, _lineEnd) without its terminator, and the tokenizer's position in it.
        private int _lineNumber;
        private int _lineStart;
        private int _lineEnd;
        private int _position;

        public Parser(string fileName, string text)
        {
            _fileName = fileName;
            _text = text;
            _source = new TraceSource(fileName, text);
            _commands = [];
        }

        public TraceParseResult Run()
        {
            string text = _text;
            int start = text.Length > 0 && text[0] == '\uFEFF' ? 1 : 0;

            // Sizing the array exactly up front (every counted line but the machine line) avoids a
            // trimming copy: on a multi-million-line trace, touching fresh memory costs more than
            // this extra pass over the text.
            _commands = new TraceCommand[Math.Max(0, CountCommandLines(text.AsSpan(start)) - 1)];
            while (true)
            {
                int newline = text.AsSpan(start).IndexOf('\n');
                int end = newline < 0 ? text.Length : start + newline;
                _lineNumber++;
                _lineStart = start;
                _lineEnd = end > start && text[end - 1] == '\r' ? end - 1 : end;
                _position = start;
                if (!ParseLine())
                {
                    return TraceParseResult.Failure(_error!);
                }

                if (newline < 0)
                {
                    break;
                }

                start = end + 1;
            }

            if (_machine is null)
            {
                return TraceParseResult.Failure(new TraceParseError(
                    TraceErrorKind.MissingMachine,
                    new SourceLocation(_fileName, 1, 1),
                    "the trace has no command; it must start with 'machine vcpus=N ...'"));
            }

            ImmutableArray<TraceCommand> commands = _commandCount == _commands.Length
                ? ImmutableCollectionsMarshal.AsImmutableArray(_commands)
                : ImmutableArray.Create(_commands, 0, _commandCount);
            return TraceParseResult.Success(new TraceDocument(_fileName, _machine, commands));
        }

        /// <summary>
        /// Counts the lines whose first character after blanks (space, tab, carriage return) starts
        /// a token, that is, is neither '#' nor the end of the line: an upper bound on the lines
        /// that can yield a command, and exactly the commands plus the machine line of a valid trace.
        /// </summary>
        private static int CountCommandLines(ReadOnlySpan<char> text)
        {
            int count = 0;
            int position = 0;
            while (position < text.Length)
            {
                while (position < text.Length && text[position] is ' ' or '\t' or '\r')
                {
                    position++;
                }

                if (position < text.Length && text[position] is not ('\n' or '#'))
                {
                    count++;
                }

                int newline = text[position..].IndexOf('\n');
                if (newline < 0)
                {
                    break;
                }

                position += newline + 1;
            }

            return count;
        }

        private bool ParseLine()
        {
            Token first = Next();
            if (first.Kind == TokenKind.End)
            {
                return true;
            }

            if (_machine is null)
            {
                if (first.Kind != TokenKind.Word || !TextOf(first).SequenceEqual("machine"))
                {
                    return Fail(TraceErrorKind.MissingMachine, first, $"the first command must be 'machine vcpus=N ...', not {Describe(first)}");
                }

                return ParseMachine(first);
            }

            if (first.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.UnknownCommand, first, $"expected a command, found {Describe(first)}");
            }

            ReadOnlySpan<char> word = TextOf(first);
            if (char.IsAsciiDigit(word[0]))
            {
                return ParseCpuCommand(first);
            }

            switch (word)
            {
                case "ioapic":
                    return ParseIoApic(first);
                case "irq":
                    return ParseIrq(first);
                case "msi":
                    return ParseMsi(first);
                case "time":
                    return ParseTime(first);
                case "hv":
                    return ParseHypervisor(first);
                case "nested":
                    return ParseNested(first);
                case "machine":
                    return Fail(TraceErrorKind.DuplicateMachine, first, "a trace has exactly one 'machine' line, and it comes first");
            }

            if (Array.IndexOf(s_cpuCommands, word.ToString()) >= 0)
            {
                return Fail(TraceErrorKind.MissingCpu, first, $"'{word}' runs on a vCPU: write '<cpu> {word} ...'");
            }

            return Fail(TraceErrorKind.UnknownCommand, first, KeywordSuggestion.UnknownMessage("command", word, s_allCommands));
        }

        private bool ParseMachine(Token machineToken)
        {
            Token vcpusToken = default;
            Token idsToken = default;
            bool hasVcpus = false;
            bool hasIds = false;
            bool forceX2Apic = false;
            bool hasIoApicVersion = false;
            bool hasTscOffset = false;
            bool hasVendor = false;
            int vcpuCount = 0;
            byte ioApicVersion = MachineDirective.DefaultIoApicVersion;
            long tscOffset = 0;
            CpuVendor vendor = CpuVendor.Intel;
            List<uint>? ids = null;
            while (true)
            {
                Token option = Next();
                if (option.Kind == TokenKind.End)
                {
                    break;
                }

                if (option.Kind != TokenKind.Word)
                {
                    return Fail(TraceErrorKind.UnexpectedToken, option, $"expected a machine option ({KeywordSuggestion.JoinAlternatives(s_machineOptions)}), found {Describe(option)}");
                }

                switch (TextOf(option))
                {
                    case "vcpus":
                        if (hasVcpus)
                        {
                            return DuplicateOption(option, vcpusToken);
                        }

                        hasVcpus = true;
                        vcpusToken = option;
                        if (!ExpectEqualsSign(option)
                            || !ReadNumber("vcpus", "the vCPU count N", out ulong count, out Token countToken))
                        {
                            return false;
                        }

                        if (count is < 1 or > MachineOptions.MaxVcpus)
                        {
                            return Fail(TraceErrorKind.ValueOutOfRange, countToken, $"vcpus must be 1 to {MachineOptions.MaxVcpus}, not {Describe(countToken)}");
                        }

                        vcpuCount = (int)count;
                        break;

                    case "ids":
                        if (hasIds)
                        {
                            return DuplicateOption(option, idsToken);
                        }

                        hasIds = true;
                        idsToken = option;
                        ids = [];
                        if (!ExpectEqualsSign(option) || !ParseApicIds(ids))
                        {
                            return false;
                        }

                        break;

                    case "force-x2apic":
                        if (forceX2Apic)
                        {
                            return Fail(TraceErrorKind.DuplicateOption, option, "'force-x2apic' is given twice");
                        }

                        forceX2Apic = true;
                        int afterFlag = _position;
                        if (Next().Kind == TokenKind.EqualsSign)
                        {
                            _position = afterFlag;
                            return Fail(TraceErrorKind.UnexpectedToken, Next(), "'force-x2apic' is a flag and takes no value");
                        }

                        _position = afterFlag;
                        break;

                    case "ioapic-version":
                        if (hasIoApicVersion)
                        {
                            return Fail(TraceErrorKind.DuplicateOption, option, "'ioapic-version' is given twice");
                        }

                        hasIoApicVersion = true;
                        if (!ExpectEqualsSign(option)
                            || !ReadNumber("ioapic-version", "the IOAPIC version", out ulong version, out Token versionToken))
                        {
                            return false;
                        }

                        if (version is not (0x11 or 0x20))
                        {
                            return Fail(TraceErrorKind.ValueOutOfRange, versionToken, $"ioapic-version must be 0x11 or 0x20, not {Describe(versionToken)}");
                        }

                        ioApicVersion = (byte)version;
                        break;

                    case "tsc-offset":
                        if (hasTscOffset)
                        {
                            return Fail(TraceErrorKind.DuplicateOption, option, "'tsc-offset' is given twice");
                        }

                        hasTscOffset = true;
                        if (!ExpectEqualsSign(option) || !ReadTscOffset(out tscOffset))
                        {
                            return false;
                        }

                        break;

                    case "vendor":
                        if (hasVendor)
                        {
                            return Fail(TraceErrorKind.DuplicateOption, option, "'vendor' is given twice");
                        }

                        hasVendor = true;
                        if (!ExpectEqualsSign(option) || !ReadVendor(out vendor))
                        {
                            return false;
                        }

                        break;

                    default:
                        return Fail(TraceErrorKind.UnknownKeyword, option, KeywordSuggestion.UnknownMessage("machine option", TextOf(option), s_machineOptions));
                }
            }

            if (!hasVcpus)
            {
                return Fail(TraceErrorKind.MissingOption, machineToken, $"'machine' needs 'vcpus=N' (1 to {MachineOptions.MaxVcpus})");
            }

            ImmutableArray<uint> apicIds;
            if (ids is not null)
            {
                if (ids.Count != vcpuCount)
                {
                    return Fail(TraceErrorKind.ApicIdCountMismatch, idsToken, $"ids= lists {ids.Count} APIC IDs but the machine has vcpus={vcpuCount}");
                }

                apicIds = [.. ids];
            }
            else
            {
                var defaults = new uint[vcpuCount];
                for (int i = 0; i < defaults.Length; i++)
                {
                    defaults[i] = (uint)i;
                }

                apicIds = ImmutableCollectionsMarshal.AsImmutableArray(defaults);
            }

            _machine = new MachineDirective(vcpuCount, apicIds, forceX2Apic, ioApicVersion, LocationOf(machineToken), tscOffset, vendor);
            return true;
        }

        /// <summary>
        /// Reads the value of <c>tsc-offset=</c>: a signed 64-bit offset, the one place where a number
        /// may carry a '-' (an addition to version 1, see docs/trace-format.md).
        /// </summary>
        private bool ReadTscOffset(out long offset)
        {
            offset = 0;
            Token token = Next();
            if (token.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, token, $"'tsc-offset' needs the TSC offset N (a signed 64-bit number), found {Describe(token)}");
            }

            ReadOnlySpan<char> text = TextOf(token);
            bool negative = text[0] == '-';
            ReadOnlySpan<char> digits = negative ? text[1..] : text;
            switch (TraceNumber.TryParse(digits, out ulong magnitude))
            {
                case NumberStatus.TooLarge:
                    return Fail(TraceErrorKind.NumberTooLarge, token, $"the TSC offset {Describe(token)} does not fit in 64 bits");
                case NumberStatus.Malformed:
                    return Fail(TraceErrorKind.InvalidNumber, token, $"the TSC offset must be a decimal or 0x hexadecimal number, optionally after '-', not {Describe(token)}");
            }

            ulong limit = negative ? 1UL << 63 : long.MaxValue;
            if (magnitude > limit)
            {
                return Fail(
                    TraceErrorKind.ValueOutOfRange,
                    token,
                    $"the TSC offset {Describe(token)} must be between -0x8000000000000000 and 0x7fffffffffffffff (a signed 64-bit number; write a negative offset with '-')");
            }

            offset = negative ? unchecked((long)(0 - magnitude)) : (long)magnitude;
            return true;
        }

        private bool ReadVendor(out CpuVendor vendor)
        {
            vendor = CpuVendor.Intel;
            Token token = Next();
            if (token.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, token, $"'vendor' needs 'intel' or 'amd', found {Describe(token)}");
            }

            switch (TextOf(token))
            {
                case "intel":
                    vendor = CpuVendor.Intel;
                    return true;
                case "amd":
                    vendor = CpuVendor.Amd;
                    return true;
                default:
                    return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("CPU vendor", TextOf(token), s_vendors));
            }
        }

        private bool ParseApicIds(List<uint> ids)
        {
            Dictionary<uint, int>? seen = null;
            while (true)
            {
                if (!ReadNumber("ids", "an APIC ID", out ulong id, out Token idToken))
                {
                    return false;
                }

                if (id > MachineOptions.MaxApicId)
                {
                    return Fail(TraceErrorKind.ValueOutOfRange, idToken, $"APIC ID {Describe(idToken)} is above 0xFFFFFFFE (0xFFFFFFFF is the x2APIC broadcast ID)");
                }

                seen ??= [];
                if (!seen.TryAdd((uint)id, ids.Count))
                {
                    return Fail(TraceErrorKind.DuplicateApicId, idToken, $"APIC ID 0x{id:x} is already the ID of vCPU {seen[(uint)id]}");
                }

                ids.Add((uint)id);
                int afterId = _position;
                if (Next().Kind != TokenKind.Comma)
                {
                    _position = afterId;
                    return true;
                }
            }
        }

        private bool ParseCpuCommand(Token cpuToken)
        {
            if (!ParseNumber(cpuToken, "the CPU index", out ulong cpuIndex))
            {
                return false;
            }

            int vcpuCount = _machine!.VcpuCount;
            if (cpuIndex >= (ulong)vcpuCount)
            {
                string range = vcpuCount == 1 ? "only CPU 0" : $"CPUs 0 to {vcpuCount - 1}";
                return Fail(TraceErrorKind.CpuOutOfRange, cpuToken, $"CPU {cpuIndex} does not exist: the machine has {range}");
            }

            int cpu = (int)cpuIndex;
            Token verb = Next();
            if (verb.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, verb, $"expected a command after CPU {cpu}, found {Describe(verb)}");
            }

            switch (TextOf(verb))
            {
                case "read":
                    return ParseMmioRead(cpuToken, cpu);
                case "write":
                    return ParseMmioWrite(cpuToken, cpu);
                case "rdmsr":
                    return ParseMsrRead(cpuToken, cpu);
                case "wrmsr":
                    return ParseMsrWrite(cpuToken, cpu);
                case "rdcr8":
                    return ParseNoOperand(cpuToken, cpu, TraceCommandKind.Cr8Read, "rdcr8", Tail.Value64);
                case "wrcr8":
                    return ParseCr8Write(cpuToken, cpu);
                case "accept":
                    return ParseNoOperand(cpuToken, cpu, TraceCommandKind.Accept, "accept", Tail.Event);
                case "state":
                    return ParseNoOperand(cpuToken, cpu, TraceCommandKind.State, "state", Tail.RunState);
                case "lint":
                    return ParseLint(cpuToken, cpu);
                case "vmlaunch":
                    return ParseVmLaunch(cpuToken, cpu);
                case "l2":
                    return ParseL2(cpuToken, cpu);
                case "nested":
                    return Fail(TraceErrorKind.CpuNotAllowed, verb, "'nested' is a machine-level command; the vmcs12 and post operations name their CPU after the operation: 'nested vmcs12 <cpu> ...'");
                case "hv":
                    return Fail(TraceErrorKind.CpuNotAllowed, verb, "'hv' is a hypervisor command and names its target after the operation: 'hv inject <cpu> VECTOR' or 'hv nmi <cpu>'");
                case "ioapic" or "irq" or "msi" or "time":
                    return Fail(TraceErrorKind.CpuNotAllowed, verb, $"'{TextOf(verb)}' is a machine-level command and takes no CPU index");
                case "machine":
                    return Fail(TraceErrorKind.DuplicateMachine, verb, "a trace has exactly one 'machine' line, and it comes first");
                default:
                    return Fail(TraceErrorKind.UnknownCommand, verb, KeywordSuggestion.UnknownMessage("command", TextOf(verb), s_cpuCommands));
            }
        }

        private bool ParseMmioRead(Token first, int cpu)
        {
            if (!ReadMmioAddress("read", out ulong address)
                || !ParseTail("read", Tail.Value32 | Tail.Unmapped, out Expectation expectation))
            {
                return false;
            }

            return Add(TraceCommandKind.MmioRead, first, cpu, address, 0, expectation);
        }

        private bool ParseMmioWrite(Token first, int cpu)
        {
            if (!ReadMmioAddress("write", out ulong address)
                || !ReadNumberAtMost("write", "VALUE", uint.MaxValue, "fit in 32 bits (the access is 32-bit)", out ulong value)
                || !ParseTail("write", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.MmioWrite, first, cpu, address, value, Expectation.None);
        }

        private bool ParseMsrRead(Token first, int cpu)
        {
            if (!ReadNumberAtMost("rdmsr", "MSR", uint.MaxValue, "fit in 32 bits (MSR numbers are 32-bit)", out ulong msr)
                || !ParseTail("rdmsr", Tail.Value64 | Tail.GeneralProtection, out Expectation expectation))
            {
                return false;
            }

            return Add(TraceCommandKind.MsrRead, first, cpu, msr, 0, expectation);
        }

        private bool ParseMsrWrite(Token first, int cpu)
        {
            if (!ReadNumberAtMost("wrmsr", "MSR", uint.MaxValue, "fit in 32 bits (MSR numbers are 32-bit)", out ulong msr)
                || !ReadNumber("wrmsr", "VALUE", out ulong value, out _)
                || !ParseTail("wrmsr", Tail.GeneralProtection, out Expectation expectation))
            {
                return false;
            }

            return Add(TraceCommandKind.MsrWrite, first, cpu, msr, value, expectation);
        }

        private bool ParseCr8Write(Token first, int cpu)
        {
            // Bits 63:4 set is well-formed: the guest takes #GP at run time (SDM "MOV—Move to/from
            // Control Registers"). The format's rule that "!gp after a command means the guest
            // must receive #GP" is read as applying to every command that can fault, so wrcr8
            // accepts "!gp" too (docs/trace-format.md, implementation notes).
            if (!ReadNumber("wrcr8", "VALUE", out ulong value, out _)
                || !ParseTail("wrcr8", Tail.GeneralProtection, out Expectation expectation))
            {
                return false;
            }

            return Add(TraceCommandKind.Cr8Write, first, cpu, value, 0, expectation);
        }

        private bool ParseNoOperand(Token first, int cpu, TraceCommandKind kind, string command, Tail tail)
        {
            if (!ParseTail(command, tail, out Expectation expectation))
            {
                return false;
            }

            return Add(kind, first, cpu, 0, 0, expectation);
        }

        private bool ParseLint(Token first, int cpu)
        {
            if (!ReadNumberAtMost("lint", "the LINT pin", 1, "be 0 or 1 (LINT0 or LINT1)", out ulong pin)
                || !ReadLineAction("lint", out LineAction action)
                || !ParseTail("lint", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.Lint, first, cpu, pin, (ulong)action, Expectation.None);
        }

        private bool ParseIoApic(Token first)
        {
            Token operation = Next();
            if (operation.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, operation, $"'ioapic' needs 'write' or 'read', found {Describe(operation)}");
            }

            switch (TextOf(operation))
            {
                case "write":
                    if (!ReadNumberAtMost("ioapic write", "INDEX", 0xFF, "be at most 0xFF (IOREGSEL is 8 bits)", out ulong writeIndex)
                        || !ReadNumberAtMost("ioapic write", "VALUE", uint.MaxValue, "fit in 32 bits (IOWIN is 32-bit)", out ulong value)
                        || !ParseTail("ioapic write", Tail.Nothing, out _))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.IoApicWrite, first, TraceCommand.NoCpu, writeIndex, value, Expectation.None);

                case "read":
                    if (!ReadNumberAtMost("ioapic read", "INDEX", 0xFF, "be at most 0xFF (IOREGSEL is 8 bits)", out ulong readIndex)
                        || !ParseTail("ioapic read", Tail.Value32, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.IoApicRead, first, TraceCommand.NoCpu, readIndex, 0, expectation);

                default:
                    return Fail(TraceErrorKind.UnknownKeyword, operation, KeywordSuggestion.UnknownMessage("ioapic operation", TextOf(operation), s_ioApicOperations));
            }
        }

        private bool ParseIrq(Token first)
        {
            if (!ReadNumberAtMost("irq", "GSI", IoApicPinCount - 1, "be below 24 (the IOAPIC has pins 0 to 23)", out ulong gsi)
                || !ReadLineAction("irq", out LineAction action)
                || !ParseTail("irq", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.Irq, first, TraceCommand.NoCpu, gsi, (ulong)action, Expectation.None);
        }

        private bool ParseMsi(Token first)
        {
            if (!ReadNumber("msi", "ADDRESS", out ulong address, out Token addressToken))
            {
                return false;
            }

            // SDM "Message Address Register Format": bits 31:20 are 0FEEH; any other address is an
            // ordinary memory write, not an interrupt, and this machine has no memory behind it.
            if ((address & ~0xFFFF_FFFFUL) != 0 || (address & MsiWindowMask) != MsiWindowBase)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, addressToken, $"MSI ADDRESS {Describe(addressToken)} is outside the interrupt window 0xFEE00000-0xFEEFFFFF");
            }

            if (!ReadNumberAtMost("msi", "DATA", uint.MaxValue, "fit in 32 bits (the message data is 32-bit)", out ulong data)
                || !ParseTail("msi", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.Msi, first, TraceCommand.NoCpu, address, data, Expectation.None);
        }

        /// <summary>
        /// <c>hv inject &lt;cpu&gt; VECTOR</c> and <c>hv nmi &lt;cpu&gt;</c>: an injection the hypervisor makes on
        /// its own (an addition to version 1, docs/trace-format.md "Hypervisor injections").
        /// </summary>
        private bool ParseHypervisor(Token first)
        {
            Token operation = Next();
            if (operation.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, operation, $"'hv' needs 'inject' or 'nmi', found {Describe(operation)}");
            }

            bool inject;
            switch (TextOf(operation))
            {
                case "inject":
                    inject = true;
                    break;
                case "nmi":
                    inject = false;
                    break;
                default:
                    return Fail(TraceErrorKind.UnknownKeyword, operation, KeywordSuggestion.UnknownMessage("hypervisor operation", TextOf(operation), s_hypervisorOperations));
            }

            string command = inject ? "hv inject" : "hv nmi";
            if (!ReadNumber(command, "the target CPU", out ulong cpuIndex, out Token cpuToken))
            {
                return false;
            }

            int vcpuCount = _machine!.VcpuCount;
            if (cpuIndex >= (ulong)vcpuCount)
            {
                string range = vcpuCount == 1 ? "only CPU 0" : $"CPUs 0 to {vcpuCount - 1}";
                return Fail(TraceErrorKind.CpuOutOfRange, cpuToken, $"CPU {cpuIndex} does not exist: the machine has {range}");
            }

            ulong vector = 0;
            if ((inject && !ReadNumberAtMost(command, "VECTOR", 0xFF, "be at most 0xFF", out vector))
                || !ParseTail(command, Tail.Nothing, out _))
            {
                return false;
            }

            return Add(inject ? TraceCommandKind.HypervisorInject : TraceCommandKind.HypervisorNmi, first, (int)cpuIndex, vector, 0, Expectation.None);
        }

        private bool ParseTime(Token first)
        {
            Token duration = Next();
            if (duration.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, duration, $"'time' needs '+NS' (nanoseconds to advance), found {Describe(duration)}");
            }

            ReadOnlySpan<char> text = TextOf(duration);
            if (text[0] != '+' || text.Length == 1)
            {
                return Fail(TraceErrorKind.InvalidNumber, duration, $"'time' takes a relative duration written '+NS' with no space after '+', not {Describe(duration)}");
            }

            switch (TraceNumber.TryParse(text[1..], out ulong nanoseconds))
            {
                case NumberStatus.TooLarge:
                    return Fail(TraceErrorKind.NumberTooLarge, duration, $"NS {Describe(duration)} does not fit in 64 bits");
                case NumberStatus.Malformed:
                    return Fail(TraceErrorKind.InvalidNumber, duration, $"NS must be a decimal or 0x hexadecimal number after '+', not {Describe(duration)}");
            }

            if (nanoseconds > ulong.MaxValue - _elapsedNs)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, duration, $"virtual time would pass 2^64-1 ns (it is at {_elapsedNs} ns)");
            }

            if (!ParseTail("time", Tail.Nothing, out _))
            {
                return false;
            }

            _elapsedNs += nanoseconds;
            return Add(TraceCommandKind.Time, first, TraceCommand.NoCpu, nanoseconds, 0, Expectation.None);
        }

        private bool ReadMmioAddress(string command, out ulong address)
        {
            if (!ReadNumber(command, "ADDR", out address, out Token token))
            {
                return false;
            }

            if ((address & 3) != 0)
            {
                return Fail(TraceErrorKind.MisalignedAddress, token, $"ADDR {Describe(token)} is not 4-byte aligned (MMIO accesses are 32-bit and aligned)");
            }

            return true;
        }

        private bool ReadLineAction(string command, out LineAction action)
        {
            action = default;
            Token token = Next();
            if (token.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, token, $"'{command}' needs 'high', 'low' or 'pulse', found {Describe(token)}");
            }

            switch (TextOf(token))
            {
                case "high":
                    action = LineAction.High;
                    return true;
                case "low":
                    action = LineAction.Low;
                    return true;
                case "pulse":
                    action = LineAction.Pulse;
                    return true;
                default:
                    return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("line action", TextOf(token), s_lineActions));
            }
        }

        /// <summary>Reads <c>= VALUE</c>, <c>!gp</c> or nothing, as <paramref name="allowed"/> permits, then the end of the line.</summary>
        private bool ParseTail(string command, Tail allowed, out Expectation expectation)
        {
            expectation = Expectation.None;
            Token token = Next();
            if (token.Kind == TokenKind.End)
            {
                return true;
            }

            const Tail EqualsForms = Tail.Value32 | Tail.Value64 | Tail.Unmapped | Tail.Event | Tail.RunState;
            if (token.Kind == TokenKind.EqualsSign)
            {
                if ((allowed & EqualsForms) == 0)
                {
                    return NoEqualsForm(command, allowed, token);
                }

                if (!ParseExpectedResult(command, allowed, out expectation))
                {
                    return false;
                }
            }
            else if (IsGeneralProtectionMark(token))
            {
                if ((allowed & Tail.GeneralProtection) == 0)
                {
                    return Fail(TraceErrorKind.GeneralProtectionNotAllowed, token, $"'!gp' is only allowed on rdmsr, wrmsr and wrcr8, not on '{command}'");
                }

                expectation = Expectation.GeneralProtection;
            }
            else if (token.Kind == TokenKind.Word && TextOf(token)[0] == '!')
            {
                return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("marker", TextOf(token), s_generalProtection));
            }
            else
            {
                return Fail(TraceErrorKind.UnexpectedToken, token, $"unexpected {Describe(token)} after the end of the '{command}' command");
            }

            Token extra = Next();
            if (extra.Kind == TokenKind.End)
            {
                return true;
            }

            if (extra.Kind == TokenKind.EqualsSign && (allowed & EqualsForms) == 0)
            {
                return NoEqualsForm(command, allowed, extra);
            }

            if ((extra.Kind == TokenKind.EqualsSign && expectation.Kind == ExpectationKind.GeneralProtection)
                || (IsGeneralProtectionMark(extra) && (allowed & Tail.GeneralProtection) != 0))
            {
                return Fail(TraceErrorKind.UnexpectedToken, extra, $"'{command}' expects either '= VALUE' or '!gp', not both");
            }

            return Fail(TraceErrorKind.UnexpectedToken, extra, $"unexpected {Describe(extra)} after the end of the '{command}' command");
        }

        private bool NoEqualsForm(string command, Tail allowed, Token equalsSign) =>
            Fail(
                TraceErrorKind.ExpectationNotAllowed,
                equalsSign,
                (allowed & Tail.GeneralProtection) != 0
                    ? $"'{command}' takes no '= ...' expectation, only '!gp'"
                    : $"'{command}' takes no '= ...' expectation");

        /// <summary>Reads what follows '=' in a command that permits it.</summary>
        private bool ParseExpectedResult(string command, Tail allowed, out Expectation expectation)
        {
            expectation = Expectation.None;
            Token token = Next();
            if (token.Kind != TokenKind.Word)
            {
                string wanted = (allowed & Tail.Event) != 0 ? "an EVENT"
                    : (allowed & Tail.RunState) != 0 ? "'running' or 'wait-for-sipi'"
                    : (allowed & Tail.Unmapped) != 0 ? "a VALUE or 'unmapped'"
                    : "a VALUE";
                return Fail(TraceErrorKind.MissingOperand, token, $"'{command}' needs {wanted} after '=', found {Describe(token)}");
            }

            ReadOnlySpan<char> word = TextOf(token);
            if ((allowed & Tail.Event) != 0)
            {
                return ParseEvent(token, out expectation);
            }

            if ((allowed & Tail.RunState) != 0)
            {
                switch (word)
                {
                    case "running":
                        expectation = Expectation.OfRunState(VcpuRunState.Running);
                        return true;
                    case "wait-for-sipi":
                        expectation = Expectation.OfRunState(VcpuRunState.WaitForSipi);
                        return true;
                    default:
                        return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("run state", word, s_runStates));
                }
            }

            if ((allowed & Tail.Unmapped) != 0 && !char.IsAsciiDigit(word[0]))
            {
                if (word.SequenceEqual("unmapped"))
                {
                    expectation = Expectation.Unmapped;
                    return true;
                }

                return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("expectation", word, s_unmapped, "a VALUE"));
            }

            if (!ParseNumber(token, "the expected VALUE", out ulong value))
            {
                return false;
            }

            if ((allowed & Tail.Value32) != 0 && value > uint.MaxValue)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, token, $"the expected VALUE {Describe(token)} must fit in 32 bits ('{command}' is a 32-bit access)");
            }

            expectation = Expectation.OfValue(value);
            return true;
        }

        private bool ParseEvent(Token token, out Expectation expectation)
        {
            expectation = Expectation.None;
            ReadOnlySpan<char> word = TextOf(token);
            CpuEventKind kind;
            switch (word)
            {
                case "none":
                    kind = CpuEventKind.None;
                    break;
                case "smi":
                    kind = CpuEventKind.Smi;
                    break;
                case "init":
                    kind = CpuEventKind.Init;
                    break;
                case "nmi":
                    kind = CpuEventKind.Nmi;
                    break;
                case "extint":
                    kind = CpuEventKind.ExtInt;
                    break;
                case "sipi":
                    if (!ReadNumberAtMost("sipi", "VECTOR", 0xFF, "be at most 0xFF", out ulong startupVector))
                    {
                        return false;
                    }

                    expectation = Expectation.OfEvent(new CpuEvent(CpuEventKind.StartUp, (byte)startupVector));
                    return true;
                default:
                    if (!char.IsAsciiDigit(word[0]))
                    {
                        return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("event", word, s_events, "a vector"));
                    }

                    if (!ParseNumber(token, "the vector", out ulong vector))
                    {
                        return false;
                    }

                    if (vector > 0xFF)
                    {
                        return Fail(TraceErrorKind.ValueOutOfRange, token, $"vector {Describe(token)} must be at most 0xFF");
                    }

                    expectation = Expectation.OfEvent(new CpuEvent(CpuEventKind.Fixed, (byte)vector));
                    return true;
            }

            expectation = Expectation.OfEvent(new CpuEvent(kind));
            return true;
        }

        private bool ExpectEqualsSign(Token option)
        {
            Token token = Next();
            if (token.Kind != TokenKind.EqualsSign)
            {
                return Fail(TraceErrorKind.MissingOperand, token, $"expected '=' after '{TextOf(option)}', found {Describe(token)}");
            }

            return true;
        }

        private bool DuplicateOption(Token option, Token earlier) =>
            Fail(TraceErrorKind.DuplicateOption, option, $"'{TextOf(option)}' is given twice (first at column {earlier.Start - _lineStart + 1})");

        private bool ReadNumberAtMost(string command, string operand, ulong maximum, string requirement, out ulong value)
        {
            if (!ReadNumber(command, operand, out value, out Token token))
            {
                return false;
            }

            if (value > maximum)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, token, $"{operand} {Describe(token)} must {requirement}");
            }

            return true;
        }

        private bool ReadNumber(string command, string operand, out ulong value, out Token token)
        {
            token = Next();
            if (token.Kind != TokenKind.Word)
            {
                value = 0;
                return Fail(TraceErrorKind.MissingOperand, token, $"'{command}' needs {operand}, found {Describe(token)}");
            }

            return ParseNumber(token, operand, out value);
        }

        private bool ParseNumber(Token token, string operand, out ulong value)
        {
            switch (TraceNumber.TryParse(TextOf(token), out value))
            {
                case NumberStatus.Ok:
                    return true;
                case NumberStatus.TooLarge:
                    return Fail(TraceErrorKind.NumberTooLarge, token, $"{operand} {Describe(token)} does not fit in 64 bits");
                default:
                    return Fail(TraceErrorKind.InvalidNumber, token, $"{operand} must be a decimal or 0x hexadecimal number, not {Describe(token)}");
            }
        }

        private bool Add(TraceCommandKind kind, Token first, int cpu, ulong a, ulong b, Expectation expectation)
        {
            if (_commandCount == _commands.Length)
            {
                // CountCommandLines never undercounts a line that parses; this only guards that claim.
                Array.Resize(ref _commands, Math.Max(4, _commands.Length * 2));
            }

            _commands[_commandCount++] = new TraceCommand(kind, cpu, a, b, expectation, _source, _lineNumber, _lineStart);
            return true;
        }

        /// <summary>
        /// The next token of the current line. Spaces and tabs (and stray carriage returns, which
        /// mixed line endings leave behind) separate tokens; '=' and ',' are
        /// tokens of their own; '#' ends the line. At the end, returns an End token positioned where
        /// the content stopped, so "missing operand" errors point just past the last token.
        /// </summary>
        private Token Next()
        {
            string text = _text;
            int end = _lineEnd;
            int position = _position;
            while (position < end && text[position] is ' ' or '\t' or '\r')
            {
                position++;
            }

            if (position >= end || text[position] == '#')
            {
                _position = position;
                return new Token(TokenKind.End, position, 0);
            }

            char c = text[position];
            if (c is '=' or ',')
            {
                _position = position + 1;
                return new Token(c == '=' ? TokenKind.EqualsSign : TokenKind.Comma, position, 1);
            }

            int start = position;
            do
            {
                position++;
            }
            while (position < end && text[position] is not (' ' or '\t' or '\r' or '=' or ',' or '#'));

            _position = position;
            return new Token(TokenKind.Word, start, position - start);
        }

        private readonly ReadOnlySpan<char> TextOf(Token token) => _text.AsSpan(token.Start, token.Length);

        private readonly bool IsGeneralProtectionMark(Token token) =>
            token.Kind == TokenKind.Word && TextOf(token).SequenceEqual("!gp");

        private readonly string Describe(Token token) => token.Kind switch
        {
            TokenKind.End => "the end of the line",
            _ => $"'{KeywordSuggestion.Shorten(TextOf(token))}'",
        };

        private readonly SourceLocation LocationOf(Token token) =>
            new(_fileName, _lineNumber, token.Start - _lineStart + 1);

        private bool Fail(TraceErrorKind kind, Token token, string message)
        {
            _error = new TraceParseError(kind, LocationOf(token), message);
            return false;
        }
    }
}
