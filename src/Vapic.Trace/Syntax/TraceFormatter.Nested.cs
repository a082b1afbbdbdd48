using Vapic.Virtualization;
using Vapic.Virtualization.Nested;

namespace Vapic.Trace.Syntax;

// Canonical form of the nested-virtualization commands (docs/trace-format.md, "Nested
// virtualization"): one vmcs12 field per line, controls as a comma list in declaration order.
public static partial class TraceFormatter
{
    /// <summary>Returns the outcome as a trace writes it after <c>= </c>: <c>ok</c>, <c>vmfail 7</c>, <c>l1-exit apic-access 0x390</c>, ...</summary>
    public static string Format(NestedOutcome outcome)
    {
        Span<char> buffer = stackalloc char[80];
        var writer = new CharWriter(buffer);
        WriteNested(ref writer, outcome);
        return new string(buffer[..writer.Position]);
    }

    /// <summary>Returns <c>ram</c>, <c>mmio</c>, <c>l1-apic</c> or <c>hole</c>.</summary>
    public static string Format(L1MemoryKind kind) => kind switch
    {
        L1MemoryKind.Ram => "ram",
        L1MemoryKind.Mmio => "mmio",
        L1MemoryKind.L1Apic => "l1-apic",
        _ => "hole",
    };

    /// <summary>Returns the <c>nested vmcs12</c> key of <paramref name="setting"/>.</summary>
    public static string Format(NestedVmcs12Setting setting) => setting switch
    {
        NestedVmcs12Setting.Controls => "controls",
        NestedVmcs12Setting.ApicAccessAddress => "apic-access",
        NestedVmcs12Setting.VirtualApicAddress => "virtual-apic",
        NestedVmcs12Setting.PostedInterruptDescriptorAddress => "pi-desc",
        NestedVmcs12Setting.NotificationVector => "pi-vector",
        NestedVmcs12Setting.TprThreshold => "tpr-threshold",
        NestedVmcs12Setting.EoiExit => "eoi-exit",
        NestedVmcs12Setting.RequestingVirtualInterrupt => "rvi",
        _ => "svi",
    };

    /// <summary>Whether <paramref name="kind"/> is a nested-virtualization command.</summary>
    internal static bool IsNested(TraceCommandKind kind) => kind is
        TraceCommandKind.NestedQuirk or TraceCommandKind.NestedL1Map or TraceCommandKind.NestedEpt or
        TraceCommandKind.NestedL1Write or TraceCommandKind.NestedL1Read or TraceCommandKind.NestedVmcs12 or
        TraceCommandKind.NestedPost or TraceCommandKind.NestedInhibit or TraceCommandKind.VmLaunch or
        TraceCommandKind.L2Read or TraceCommandKind.L2Write or TraceCommandKind.L2Accept;

    private static bool TryFormatNested(in TraceCommand command, Span<char> destination, out int charsWritten)
    {
        var writer = new CharWriter(destination);
        switch (command.Kind)
        {
            case TraceCommandKind.NestedQuirk:
                writer.Append("nested quirk ");
                writer.Append(NestedQuirkNames.Name((NestedQuirks)command.A));
                break;
            case TraceCommandKind.NestedL1Map:
                writer.Append("nested l1-map ");
                writer.Hex(command.A & ~0xFFFUL);
                writer.Append(' ');
                writer.Hex(command.B);
                writer.Append(' ');
                writer.Append(Format((L1MemoryKind)(command.A & 0xFFF)));
                break;
            case TraceCommandKind.NestedEpt:
                writer.Append("nested ept ");
                writer.Hex(command.A);
                writer.Append(' ');
                if (command.B == NestedCommandOperands.EptNotPresent)
                {
                    writer.Append("none");
                }
                else
                {
                    writer.Hex(command.B);
                }

                break;
            case TraceCommandKind.NestedL1Write:
                writer.Append("nested l1-write ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            case TraceCommandKind.NestedL1Read:
                writer.Append("nested l1-read ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.NestedVmcs12:
                writer.Append("nested vmcs12 ");
                writer.Decimal((ulong)command.Cpu);
                writer.Append(' ');
                WriteVmcs12Setting(ref writer, (NestedVmcs12Setting)command.A, command.B);
                break;
            case TraceCommandKind.NestedPost:
                writer.Append("nested post ");
                writer.Decimal((ulong)command.Cpu);
                writer.Append(' ');
                writer.Vector((byte)command.A);
                break;
            case TraceCommandKind.NestedInhibit:
                writer.Append("nested inhibit ");
                writer.Append(NestedScenarioResult.InhibitName((ApicvInhibit)command.A));
                break;
            case TraceCommandKind.VmLaunch:
                writer.Decimal((ulong)command.Cpu);
                writer.Append(" vmlaunch");
                break;
            case TraceCommandKind.L2Read:
                writer.Decimal((ulong)command.Cpu);
                writer.Append(" l2 read ");
                writer.Hex(command.A);
                break;
            case TraceCommandKind.L2Write:
                writer.Decimal((ulong)command.Cpu);
                writer.Append(" l2 write ");
                writer.Hex(command.A);
                writer.Append(' ');
                writer.Hex(command.B);
                break;
            default:
                writer.Decimal((ulong)command.Cpu);
                writer.Append(" l2 accept");
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

    private static void WriteVmcs12Setting(ref CharWriter writer, NestedVmcs12Setting setting, ulong value)
    {
        writer.Append(Format(setting));
        writer.Append('=');
        switch (setting)
        {
            case NestedVmcs12Setting.Controls:
                var controls = (Vmcs12Controls)value;
                if (controls == Vmcs12Controls.None)
                {
                    writer.Append("none");
                    break;
                }

                bool first = true;
                foreach (string name in Vmcs12ControlNames.Enumerate(controls))
                {
                    if (!first)
                    {
                        writer.Append(',');
                    }

                    writer.Append(name);
                    first = false;
                }

                break;
            case NestedVmcs12Setting.EoiExit:
            case NestedVmcs12Setting.RequestingVirtualInterrupt:
            case NestedVmcs12Setting.ServicingVirtualInterrupt:
                writer.Vector((byte)value);
                break;
            default:
                writer.Hex(value);
                break;
        }
    }

    private static void WriteNested(ref CharWriter writer, NestedOutcome outcome)
    {
        switch (outcome.Kind)
        {
            case NestedOutcomeKind.Ok:
                writer.Append("ok");
                break;
            case NestedOutcomeKind.VmFail:
                writer.Append("vmfail ");
                writer.Decimal((ulong)outcome.VmInstructionError);
                break;
            case NestedOutcomeKind.InternalError:
                writer.Append("internal-error");
                if (outcome.Field is { } field)
                {
                    writer.Append(' ');
                    writer.Append(Vmcs12FieldNames.Keyword(field));
                    if (outcome.Address is { } address)
                    {
                        writer.Append(' ');
                        writer.Hex(address);
                    }
                }

                break;
            case NestedOutcomeKind.L1Exit:
                writer.Append("l1-exit ");
                writer.Append(L1ExitReasonNames.Keyword(outcome.ExitReason));
                if (outcome.Qualification is { } qualification)
                {
                    writer.Append(' ');
                    writer.Hex(qualification);
                }

                break;
            case NestedOutcomeKind.NotInL2:
                writer.Append("not-in-l2");
                break;
            case NestedOutcomeKind.InhibitSet:
                writer.Append("set");
                break;
            case NestedOutcomeKind.InhibitClear:
                writer.Append("clear");
                break;
        }
    }
}
