using Vapic.Machine;
using Vapic.Trace.Syntax;
using Vapic.Virtualization;
using Vapic.Virtualization.Nested;

namespace Vapic.Trace.Replay;

// Replay of the nested-virtualization commands (docs/trace-format.md, "Nested virtualization").
// The nested model is created at the first such command, over the run's machine and mode.
public static partial class TraceReplayer
{
    private static Observation ExecuteNested(ref NestedVmx? nested, VirtualizationMode mode, in TraceCommand command)
    {
        nested ??= new NestedVmx(mode);
        switch (command.Kind)
        {
            case TraceCommandKind.NestedQuirk:
                nested.Quirks |= (NestedQuirks)command.A;
                return Observation.Nothing;
            case TraceCommandKind.NestedL1Map:
                nested.L1Memory.Map(command.A & ~0xFFFUL, command.B, (L1MemoryKind)(command.A & 0xFFF));
                return Observation.Nothing;
            case TraceCommandKind.NestedEpt:
                if (command.B == NestedCommandOperands.EptNotPresent)
                {
                    nested.L2Translation.Unmap(command.A);
                }
                else
                {
                    nested.L2Translation.Map(command.A, command.B);
                }

                return Observation.Nothing;
            case TraceCommandKind.NestedL1Write:
                // L1 software writing its memory; a write that is not to RAM is not L1 RAM's business
                // (L1's accesses to its devices are the ordinary '<cpu> write' commands).
                if (nested.L1Memory.IsRam(command.A))
                {
                    nested.L1Memory.Write32(command.A, (uint)command.B);
                }

                return Observation.Nothing;
            case TraceCommandKind.NestedL1Read:
                return nested.L1Memory.IsRam(command.A) ? Observation.OfValue(nested.L1Memory.Read32(command.A)) : Observation.Unmapped;
            case TraceCommandKind.NestedVmcs12:
                SetVmcs12(nested.GetVmcs12(command.Cpu), (NestedVmcs12Setting)command.A, command.B);
                return Observation.Nothing;
            case TraceCommandKind.NestedPost:
            {
                NestedPostResult result = nested.PostToL2(command.Cpu, (byte)command.A);
                return result.Outcome switch
                {
                    NestedPostOutcome.InternalError => Nested(NestedOutcome.InternalError(result.Error!.Field, result.Error.Address)),
                    NestedPostOutcome.NotInL2 => Nested(NestedOutcome.NotInL2),
                    _ => Nested(NestedOutcome.Ok),
                };
            }

            case TraceCommandKind.NestedInhibit:
            {
                var reason = (ApicvInhibit)command.A;
                if ((mode.Inhibits.VendorMask & ApicvInhibitSet.ToMask(reason)) == 0)
                {
                    // Not applicable: this mode has no APIC acceleration the reason could turn off
                    // (plain emulation, passthrough). It observes what the trace expects, so that the
                    // modes stay comparable.
                    return new Observation(ExpectationKind.Nested, command.Expectation.Nested.Pack());
                }

                return Nested(NestedOutcome.Inhibit(mode.Inhibits.Contains(reason)));
            }

            case TraceCommandKind.VmLaunch:
            {
                VmEntryResult result = nested.VmLaunch(command.Cpu);
                return result.Outcome switch
                {
                    VmEntryOutcome.EnteredL2 => Nested(NestedOutcome.Ok),
                    VmEntryOutcome.VmFailValid => Nested(NestedOutcome.VmFail(result.VmInstructionError)),
                    _ => Nested(NestedOutcome.InternalError(result.Error!.Field, result.Error.Address)),
                };
            }

            case TraceCommandKind.L2Read:
                return FromL2Access(nested.L2Read(command.Cpu, command.A), write: false);
            case TraceCommandKind.L2Write:
                return FromL2Access(nested.L2Write(command.Cpu, command.A, (uint)command.B), write: true);
            default:
                return nested.TryL2Accept(command.Cpu, out int vector)
                    ? Observation.OfEvent(vector < 0 ? CpuEvent.None : new CpuEvent(CpuEventKind.Fixed, (byte)vector))
                    : Nested(NestedOutcome.NotInL2);
        }
    }

    private static Observation FromL2Access(L2AccessResult result, bool write) => result.Outcome switch
    {
        L2AccessOutcome.Completed when !write => Observation.OfValue(result.Value),
        L2AccessOutcome.Unbacked when !write => Observation.Unmapped,
        L2AccessOutcome.Completed or L2AccessOutcome.Unbacked => Nested(NestedOutcome.Ok),
        L2AccessOutcome.L1Exit => Nested(NestedOutcome.L1Exit(result.Exit.Reason, result.Exit.Qualification & (NestedOutcome.QualificationLimit - 1))),
        _ => Nested(NestedOutcome.NotInL2),
    };

    private static Observation Nested(NestedOutcome outcome) => new(ExpectationKind.Nested, outcome.Pack());

    private static void SetVmcs12(Vmcs12 vmcs12, NestedVmcs12Setting setting, ulong value)
    {
        switch (setting)
        {
            case NestedVmcs12Setting.Controls:
                vmcs12.Controls = (Vmcs12Controls)value;
                break;
            case NestedVmcs12Setting.ApicAccessAddress:
                vmcs12.ApicAccessAddress = value;
                break;
            case NestedVmcs12Setting.VirtualApicAddress:
                vmcs12.VirtualApicAddress = value;
                break;
            case NestedVmcs12Setting.PostedInterruptDescriptorAddress:
                vmcs12.PostedInterruptDescriptorAddress = value;
                break;
            case NestedVmcs12Setting.NotificationVector:
                vmcs12.PostedInterruptNotificationVector = (ushort)value;
                break;
            case NestedVmcs12Setting.TprThreshold:
                vmcs12.TprThreshold = (uint)value;
                break;
            case NestedVmcs12Setting.EoiExit:
                vmcs12.SetEoiExit((byte)value, true);
                break;
            case NestedVmcs12Setting.RequestingVirtualInterrupt:
                vmcs12.RequestingVirtualInterrupt = (byte)value;
                break;
            default:
                vmcs12.ServicingVirtualInterrupt = (byte)value;
                break;
        }
    }
}
