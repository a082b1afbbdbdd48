using System.Diagnostics;
using System.Globalization;
using System.Text;
using Vapic.Machine;

namespace Vapic.Trace.Syntax;

/// <summary>
/// Prints trace commands in canonical form: single spaces, lower-case keywords, addresses, values,
/// MSRs and IOAPIC indices in lower-case hexadecimal without leading zeros (vectors as two hex
/// digits), CPU indices, GSIs, LINT pins, vCPU counts and nanoseconds in decimal. Parsing the output
/// gives back the same commands.
/// </summary>
public static partial class TraceFormatter
{
    /// <summary>
    /// An upper bound on the length of one formatted command (the longest is a <c>nested vmcs12</c>
    /// line naming every control, about 250 characters; other commands stay under 80).
    /// </summary>
    public const int MaxCommandLength = 256;

    /// <summary>Returns <paramref name="command"/> in canonical trace syntax.</summary>
    public static string Format(in TraceCommand command)
    {
        Span<char> buffer = stackalloc char[MaxCommandLength];
        bool formatted = TryFormat(command, buffer, out int written);
        Debug.Assert(formatted, "MaxCommandLength bounds every command");
        return new string(buffer[..written]);
    }

    /// <summary>
    /// Writes <paramref name="command"/> in canonical trace syntax without allocating; false when
    /// <paramref name="destination"/> is too short (<see cref="MaxCommandLength"/> always suffices).
    /// </summary>
    public static bool TryFormat(in TraceCommand command, Span<char> destination, out int charsWritten)
    {
        if (IsNested(command.Kind))
        {
            return TryFormatNested(command, destination, out charsWritten);
        }

        var writer = new CharWriter(destination);
        if (command.Cpu >= 0 && command.Kind is not (TraceCommandKind.HypervisorInject or TraceCommandKind.HypervisorNmi))
        {
            writer.Decimal((ulong)command.Cpu);
            writer.Append(' ');
        }

        switch (command.Kind)
        {
            case TraceCommandKind.MmioRead:
                writer.Append("read ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.MmioWrite:
                writer.Append("write ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            case TraceCommandKind.MsrRead:
                writer.Append("rdmsr ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.MsrWrite:
                writer.Append("wrmsr ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            case TraceCommandKind.Cr8Read:
                writer.Append("rdcr8");
                break;
            case TraceCommandKind.Cr8Write:
                writer.Append("wrcr8 ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.Accept:
                writer.Append("accept");
                break;
            case TraceCommandKind.State:
                writer.Append("state");
                break;
            case TraceCommandKind.IoApicWrite:
                writer.Append("ioapic write ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            case TraceCommandKind.IoApicRead:
                writer.Append("ioapic read ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.Irq:
                writer.Append("irq ");
                writer.Decimal(command.A);
                writer.Append(' ');
                writer.Append(Format(command.LineAction));
                break;
            case TraceCommandKind.Msi:
                writer.Append("msi ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            case TraceCommandKind.Lint:
                writer.Append("lint ");
                writer.Decimal(command.A);
                writer.Append(' ');
                writer.Append(Format(command.LineAction));
                break;
            case TraceCommandKind.Time:
                writer.Append("time +");
                writer.Decimal(command.A);
                break;
            case TraceCommandKind.HypervisorInject:
                writer.Append("hv inject ");
                writer.Decimal((ulong)command.Cpu);
                writer.Append(' ');
                writer.Vector((byte)command.A);
                break;
            case TraceCommandKind.HypervisorNmi:
                writer.Append("hv nmi ");
                writer.Decimal((ulong)command.Cpu);
                break;
            default:
                writer.Append("# unknown command kind ");
                writer.Decimal((ulong)command.Kind);
                break;
        }

        if (command.Expectation.Kind != ExpectationKind.None)
        {
            writer.Append(' ');
            WriteExpectation(ref writer, command.Expectation);
        }

        charsWritten = writer.Overflowed ? 0 : writer.Position;
        return !writer.Overflowed;
    }

    /// <summary>
    /// Returns the expectation as a trace writes it: <c>= 0x10</c>, <c>= unmapped</c>, <c>!gp</c>,
    /// <c>= sipi 0x10</c>, <c>= wait-for-sipi</c>; an empty string for <see cref="Expectation.None"/>.
    /// </summary>
    public static string Format(Expectation expectation)
    {
        Span<char> buffer = stackalloc char[80];
        var writer = new CharWriter(buffer);
        WriteExpectation(ref writer, expectation);
        return new string(buffer[..writer.Position]);
    }

    /// <summary>Returns the event as <c>accept = EVENT</c> writes it: <c>none</c>, <c>nmi</c>, <c>sipi 0x10</c>, <c>0x31</c>, ...</summary>
    public static string Format(CpuEvent cpuEvent)
    {
        Span<char> buffer = stackalloc char[16];
        var writer = new CharWriter(buffer);
        WriteEvent(ref writer, cpuEvent);
        return new string(buffer[..writer.Position]);
    }

    /// <summary>Returns <c>running</c> or <c>wait-for-sipi</c>.</summary>
    public static string Format(VcpuRunState runState) => runState switch
    {
        VcpuRunState.Running => "running",
        VcpuRunState.WaitForSipi => "wait-for-sipi",
        _ => $"run-state-{(int)runState}",
    };

    /// <summary>Returns <c>high</c>, <c>low</c> or <c>pulse</c>.</summary>
    public static string Format(LineAction action) => action switch
    {
        LineAction.High => "high",
        LineAction.Low => "low",
        LineAction.Pulse => "pulse",
        _ => $"line-action-{(int)action}",
    };

    /// <summary>
    /// Returns the machine line. <c>ids=</c> is printed only when the IDs are not 0..N-1 and
    /// <c>ioapic-version=</c> only when it is not the default 0x20.
    /// </summary>
    public static string Format(MachineDirective machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        var builder = new StringBuilder();
        AppendMachine(builder, machine);
        return builder.ToString();
    }

    /// <summary>Returns the whole trace in canonical form: the machine line, then one command per line, each ending in '\n'.</summary>
    public static string Format(TraceDocument document)
    {
        ArgumentNullException.ThrowIfNull(document);
        var builder = new StringBuilder(32 * (document.Commands.Length + 1));
        AppendMachine(builder, document.Machine);
        builder.Append('\n');
        Span<char> buffer = stackalloc char[MaxCommandLength];
        foreach (TraceCommand command in document.Commands)
        {
            TryFormat(command, buffer, out int written);
            builder.Append(buffer[..written]).Append('\n');
        }

        return builder.ToString();
    }

    private static void AppendMachine(StringBuilder builder, MachineDirective machine)
    {
        builder.Append(CultureInfo.InvariantCulture, $"machine vcpus={machine.VcpuCount}");
        if (!machine.HasDefaultApicIds)
        {
            builder.Append(" ids=");
            for (int i = 0; i < machine.ApicIds.Length; i++)
            {
                if (i > 0)
                {
                    builder.Append(',');
                }

                builder.Append(CultureInfo.InvariantCulture, $"0x{machine.ApicIds[i]:x}");
            }
        }

        if (machine.ForceX2Apic)
        {
            builder.Append(" force-x2apic");
        }

        if (machine.IoApicVersion != MachineDirective.DefaultIoApicVersion)
        {
            builder.Append(CultureInfo.InvariantCulture, $" ioapic-version=0x{machine.IoApicVersion:x2}");
        }

        if (machine.TscOffset != 0)
        {
            builder.Append(CultureInfo.InvariantCulture, $" tsc-offset={machine.TscOffset}");
        }

        if (machine.Vendor != Vapic.Machine.CpuVendor.Intel)
        {
            builder.Append(" vendor=amd");
        }
    }

    private static void WriteExpectation(ref CharWriter writer, Expectation expectation)
    {
        switch (expectation.Kind)
        {
            case ExpectationKind.Value:
                writer.Append("= ");
                writer.Hex(expectation.Value);
                break;
            case ExpectationKind.Unmapped:
                writer.Append("= unmapped");
                break;
            case ExpectationKind.GeneralProtection:
                writer.Append("!gp");
                break;
            case ExpectationKind.Event:
                writer.Append("= ");
                WriteEvent(ref writer, expectation.Event);
                break;
            case ExpectationKind.RunState:
                writer.Append("= ");
                writer.Append(Format(expectation.RunState));
                break;
            case ExpectationKind.Nested:
                writer.Append("= ");
                WriteNested(ref writer, expectation.Nested);
                break;
        }
    }

    private static void WriteEvent(ref CharWriter writer, CpuEvent cpuEvent)
    {
        switch (cpuEvent.Kind)
        {
            case CpuEventKind.None:
                writer.Append("none");
                break;
            case CpuEventKind.Smi:
                writer.Append("smi");
                break;
            case CpuEventKind.Init:
                writer.Append("init");
                break;
            case CpuEventKind.Nmi:
                writer.Append("nmi");
                break;
            case CpuEventKind.ExtInt:
                writer.Append("extint");
                break;
            case CpuEventKind.StartUp:
                writer.Append("sipi ");
                writer.Vector(cpuEvent.Vector);
                break;
            default:
                writer.Vector(cpuEvent.Vector);
                break;
        }
    }

    /// <summary>Appends text and numbers to a caller-owned span and remembers whether it ran out of room.</summary>
    private ref struct CharWriter(Span<char> destination)
    {
        private readonly Span<char> _destination = destination;

        public int Position { get; private set; }

        public bool Overflowed { get; private set; }

        public void Append(char c)
        {
            if (Overflowed || Position >= _destination.Length)
            {
                Overflowed = true;
                return;
            }

            _destination[Position++] = c;
        }

        public void Append(ReadOnlySpan<char> text)
        {
            if (Overflowed || !text.TryCopyTo(_destination[Position..]))
            {
                Overflowed = true;
                return;
            }

            Position += text.Length;
        }

        public void Hex(ulong value)
        {
            Append("0x");
            Number(value, "x");
        }

        public void Vector(byte vector)
        {
            Append("0x");
            Number(vector, "x2");
        }

        public void Decimal(ulong value) => Number(value, default);

        private void Number(ulong value, ReadOnlySpan<char> format)
        {
            if (Overflowed || !value.TryFormat(_destination[Position..], out int written, format, CultureInfo.InvariantCulture))
            {
                Overflowed = true;
                return;
            }

            Position += written;
        }
    }
}
