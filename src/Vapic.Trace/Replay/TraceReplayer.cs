using Vapic.Apic;
using Vapic.Machine;
using Vapic.Trace.Syntax;
using Vapic.Virtualization;

namespace Vapic.Trace.Replay;

/// <summary>
/// Runs a parsed trace against a fresh machine in one mode, command by command, and checks every
/// expectation. Each command completes before the next runs (trace format "Ordering"). The
/// replay stops at the first failed expectation.
/// </summary>
public static partial class TraceReplayer
{
    private const ulong IoRegisterSelect = 0x00;
    private const ulong IoWindow = 0x10;

    /// <summary>Receives what the replay observed for commands that carry no expectation.</summary>
    public delegate void ObservationSink(in TraceCommand command, Observation observed);

    /// <summary>
    /// Replays <paramref name="document"/> in <paramref name="mode"/>. <paramref name="sink"/>, if
    /// given, is told what each expectation-less command observed (the replay "prints what it observed").
    /// </summary>
    /// <exception cref="ArgumentException">The mode is not available in this build.</exception>
    public static ModeRun Run(TraceDocument document, string mode, ObservationSink? sink = null)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (!ReplayMode.IsAvailable(mode))
        {
            throw new ArgumentException($"mode '{mode}' is not available", nameof(mode));
        }

        return Run(document, ModeRegistry.Create(mode), sink);
    }

    /// <summary>Replays <paramref name="document"/> under a mode instance that is not yet attached to a machine.</summary>
    public static ModeRun Run(TraceDocument document, VirtualizationMode virtualization, ObservationSink? sink = null) =>
        Run(document, virtualization, sink, stopWhenInapplicable: false, out _);

    /// <summary>
    /// Replays <paramref name="document"/> under a mode instance that is not yet attached to a machine.
    /// With <paramref name="stopWhenInapplicable"/>, the replay stops after the command at which the
    /// mode found it cannot run this guest (<see cref="VirtualizationMode.InapplicableReason"/>) and
    /// <paramref name="inapplicableAt"/> is that command's index; otherwise it is -1.
    /// </summary>
    public static ModeRun Run(TraceDocument document, VirtualizationMode virtualization, ObservationSink? sink, bool stopWhenInapplicable, out int inapplicableAt)
    {
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(virtualization);
        inapplicableAt = -1;
        string mode = virtualization.Name;
        var machine = new VirtualMachine(document.Machine.ToMachineOptions(), virtualization);
        var commands = document.Commands;
        var observations = new Observation[commands.Length];
        ReplayFailure? failure = null;
        Vapic.Virtualization.Nested.NestedVmx? nested = null;
        bool inapplicable = false;
        long expectations = 0, mmio = 0, msr = 0, gp = 0, events = 0, fixedEvents = 0;
        int executed = 0;
        for (int i = 0; i < commands.Length; i++)
        {
            TraceCommand command = commands[i];
            Observation observed = TraceFormatter.IsNested(command.Kind)
                ? ExecuteNested(ref nested, virtualization, in command)
                : Execute(machine, in command);
            observations[i] = observed;
            executed++;
            if (stopWhenInapplicable && virtualization.InapplicableReason is not null)
            {
                // The mode cannot run this guest (an x2APIC-only mode saw xAPIC MMIO, say): stop at
                // the command that showed it; the session reports the trace as skipped in this mode.
                inapplicableAt = i;
                inapplicable = true;
                break;
            }

            switch (command.Kind)
            {
                case TraceCommandKind.MmioRead:
                case TraceCommandKind.MmioWrite:
                case TraceCommandKind.IoApicRead:
                case TraceCommandKind.IoApicWrite:
                    mmio++;
                    break;
                case TraceCommandKind.MsrRead:
                case TraceCommandKind.MsrWrite:
                    msr++;
                    break;
                case TraceCommandKind.Accept:
                    if (observed.Kind == ExpectationKind.Event && (observed.Payload >> 8) != (ulong)CpuEventKind.None)
                    {
                        events++;
                        if ((observed.Payload >> 8) == (ulong)CpuEventKind.Fixed)
                        {
                            fixedEvents++;
                        }
                    }

                    break;
            }

            if (observed.Kind == ExpectationKind.GeneralProtection)
            {
                gp++;
            }

            Expectation expectation = command.Expectation;
            if (expectation.Kind == ExpectationKind.None)
            {
                // A write or other side-effecting command without "!gp" must not fault.
                if (observed.Kind == ExpectationKind.GeneralProtection && IsWrite(command.Kind))
                {
                    failure = new ReplayFailure(command, "no fault", observed);
                    break;
                }

                if (sink is not null && observed.Kind != ExpectationKind.None)
                {
                    sink(in command, observed);
                }

                continue;
            }

            expectations++;
            if (!observed.Satisfies(expectation))
            {
                failure = new ReplayFailure(command, TraceFormatter.Format(expectation), observed);
                break;
            }
        }

        if (failure is not null || inapplicable)
        {
            Array.Resize(ref observations, executed);
        }

        return new ModeRun(mode, failure, observations, CollectStats(machine, executed, expectations, mmio, msr, gp, events, fixedEvents), virtualization.Ledger)
        {
            ModeCounters = virtualization.ModeCounters,
        };
    }

    private static bool IsWrite(TraceCommandKind kind) =>
        kind is TraceCommandKind.MsrWrite or TraceCommandKind.Cr8Write or TraceCommandKind.MmioWrite;

    private static Observation Execute(VirtualMachine machine, in TraceCommand command)
    {
        switch (command.Kind)
        {
            case TraceCommandKind.MmioRead:
            {
                ApicAccessResult r = machine.GetVcpu(command.Cpu).ReadMmio(command.A, out uint value);
                return FromAccess(r, value);
            }

            case TraceCommandKind.MmioWrite:
                return FromAccess(machine.GetVcpu(command.Cpu).WriteMmio(command.A, (uint)command.B), 0, write: true);
            case TraceCommandKind.MsrRead:
            {
                ApicAccessResult r = machine.GetVcpu(command.Cpu).ReadMsr((uint)command.A, out ulong value);
                return FromAccess(r, value);
            }

            case TraceCommandKind.MsrWrite:
                return FromAccess(machine.GetVcpu(command.Cpu).WriteMsr((uint)command.A, command.B), 0, write: true);
            case TraceCommandKind.Cr8Read:
                return Observation.OfValue(machine.GetVcpu(command.Cpu).ReadCr8());
            case TraceCommandKind.Cr8Write:
                return FromAccess(machine.GetVcpu(command.Cpu).WriteCr8(command.A), 0, write: true);
            case TraceCommandKind.Accept:
                return Observation.OfEvent(machine.GetVcpu(command.Cpu).Accept());
            case TraceCommandKind.State:
                return Observation.OfRunState(machine.GetVcpu(command.Cpu).RunState);
            case TraceCommandKind.IoApicWrite:
            {
                // IOREGSEL = INDEX, then IOWIN = VALUE, as a guest does it.
                ulong b = machine.IoApic.BaseAddress;
                machine.IoApic.WriteMmio(b + IoRegisterSelect, (uint)command.A);
                machine.IoApic.WriteMmio(b + IoWindow, (uint)command.B);
                return Observation.Nothing;
            }

            case TraceCommandKind.IoApicRead:
            {
                ulong b = machine.IoApic.BaseAddress;
                machine.IoApic.WriteMmio(b + IoRegisterSelect, (uint)command.A);
                machine.IoApic.ReadMmio(b + IoWindow, out uint value);
                return Observation.OfValue(value);
            }

            case TraceCommandKind.Irq:
            {
                int gsi = (int)command.A;
                LineAction action = command.LineAction;
                if (action != LineAction.Low)
                {
                    machine.SetIrq(gsi, true);
                }

                if (action != LineAction.High)
                {
                    machine.SetIrq(gsi, false);
                }

                return Observation.Nothing;
            }

            case TraceCommandKind.Lint:
            {
                LocalApic apic = machine.GetVcpu(command.Cpu).Apic;
                int pin = (int)command.A;
                LineAction action = command.LineAction;
                if (action != LineAction.Low)
                {
                    apic.SetLint(pin, true);
                }

                if (action != LineAction.High)
                {
                    apic.SetLint(pin, false);
                }

                return Observation.Nothing;
            }

            case TraceCommandKind.Msi:
                machine.SendMsi(command.A, (uint)command.B);
                return Observation.Nothing;
            case TraceCommandKind.HypervisorInject:
                // Trace format "Hypervisor injections": a device-like fixed edge interrupt to that
                // vCPU, unless the mode's hardware filters what the hypervisor injects.
                ((VirtualizationMode)machine.Virtualization!).InjectFromHypervisor(machine.GetVcpu(command.Cpu), (byte)command.A);
                return Observation.Nothing;
            case TraceCommandKind.HypervisorNmi:
                ((VirtualizationMode)machine.Virtualization!).InjectNmiFromHypervisor(machine.GetVcpu(command.Cpu));
                return Observation.Nothing;
            case TraceCommandKind.Time:
            {
                // Saturate rather than wrap: 2^63 ns is beyond any deadline a guest can program.
                long room = long.MaxValue - machine.Now;
                machine.AdvanceTo(command.A > (ulong)room ? long.MaxValue : machine.Now + (long)command.A);
                return Observation.Nothing;
            }
            default:
                return Observation.Nothing;
        }
    }

    private static Observation FromAccess(ApicAccessResult result, ulong value, bool write = false) => result switch
    {
        ApicAccessResult.Ok => write ? Observation.Nothing : Observation.OfValue(value),
        ApicAccessResult.GeneralProtection => Observation.GeneralProtection,
        _ => Observation.Unmapped,
    };

    private static ReplayStats CollectStats(VirtualMachine machine, long commands, long expectations, long mmio, long msr, long gp, long events, long fixedEvents)
    {
        long merged = 0, dropped = 0;
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            LocalApicCounters c = vcpu.Apic.Counters;
            merged += c.Merged;
            dropped += c.DroppedSoftwareDisabled + c.DroppedIllegalVector + c.DroppedReservedMode + c.DroppedGloballyDisabled;
        }

        MachineCounters m = machine.Counters;
        return new ReplayStats
        {
            Commands = commands,
            Expectations = expectations,
            MmioAccesses = mmio,
            MsrAccesses = msr,
            GeneralProtections = gp,
            EventsAccepted = events,
            FixedAccepted = fixedEvents,
            IpisSent = m.IpisRouted,
            IoApicMessages = m.IoApicMessagesRouted,
            Msis = m.MsisRouted,
            TimerExpiries = m.TimerExpiries,
            EoiBroadcasts = m.EoiBroadcasts,
            InterruptsMerged = merged,
            InterruptsDropped = dropped,
            VirtualNanoseconds = machine.Now,
        };
    }
}
