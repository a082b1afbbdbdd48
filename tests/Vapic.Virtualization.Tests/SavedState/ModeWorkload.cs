using System.Text;
using CsCheck;
using Vapic.Machine;
using Vapic.Testing;

namespace Vapic.Virtualization.Tests.SavedState;

/// <summary>
/// The saved-state workload under a virtualization mode: every operation of <see cref="WorkloadDriver"/>,
/// logged with the guest's view only (modes legitimately differ in the host's: a PIR bit is not yet in
/// IRR), plus the host's part: scheduling, hypervisor injections and an inhibit, none of them logged.
/// </summary>
internal static class ModeWorkload
{
    /// <summary>The modes whose host can save and restore (savic cannot).</summary>
    public static readonly string[] SavableModes = ["emulated", "apicv", "avic", "passthrough"];

    /// <summary>One of <see cref="SavableModes"/>.</summary>
    public static readonly Gen<string> SavableMode = Gen.Int[0, SavableModes.Length - 1].Select(i => SavableModes[i]);

    /// <summary>The guest's operations, and host scheduling often enough that posted interrupts wait for preempted vCPUs.</summary>
    public static readonly Gen<WorkloadStep> Steps = WorkloadStep.Generator(
        (8, WorkloadOp.HostState),
        (2, WorkloadOp.Inject),
        (1, WorkloadOp.Inhibit));

    /// <summary>
    /// Steps that deschedule vCPUs and send them interrupts without running them (host scheduling,
    /// IPIs from one sender, MSIs, IOAPIC lines, hypervisor injections): a run ending with some
    /// leaves interrupts held for vCPUs that are not in guest mode, such as posted ones in a PIR.
    /// </summary>
    public static readonly Gen<WorkloadStep> HoldingSteps = WorkloadStep.Of(
        (6, WorkloadOp.HostState),
        (5, WorkloadOp.Ipi),
        (4, WorkloadOp.Msi),
        (2, WorkloadOp.Irq),
        (2, WorkloadOp.Inject));

    /// <summary>A machine at power-on under a new instance of mode <paramref name="mode"/>.</summary>
    public static VirtualMachine Create(this SavedStateMachineSpec spec, string mode) => spec.Create(ModeRegistry.Create(mode));

    /// <summary>A machine as a guest leaves it after boot, under a new instance of mode <paramref name="mode"/>.</summary>
    public static VirtualMachine Boot(this SavedStateMachineSpec spec, string mode) => spec.Boot(ModeRegistry.Create(mode));

    /// <summary>Every vCPU as its guest reads it, the IOAPIC and the clock.</summary>
    public static string DumpAll(VirtualMachine machine) => WorkloadDriver.GuestView.DumpAll(machine);

    /// <summary>Runs <paramref name="step"/> and logs what the guest observed; host operations log only hypervisor injections.</summary>
    public static void Run(VirtualMachine machine, WorkloadStep step, StringBuilder log)
    {
        if (WorkloadDriver.GuestView.TryRun(machine, step, log))
        {
            return;
        }

        var mode = (VirtualizationMode)machine.Virtualization!;
        int index = step.Cpu % machine.VcpuCount;
        Vcpu cpu = machine.GetVcpu(index);
        switch (step.Kind)
        {
            case WorkloadOp.HostState:
                {
                    // Host scheduling is invisible to the guest: not logged. Mostly preempted (where
                    // posted interrupts wait), sometimes every other vCPU at once.
                    VcpuHostState state = (step.A % 4) switch { 0 => VcpuHostState.Running, 3 => VcpuHostState.Halted, _ => VcpuHostState.Preempted };
                    for (int i = 0; i < machine.VcpuCount; i++)
                    {
                        if (i == index ? step.B % 4 != 0 : step.B % 4 == 0)
                        {
                            machine.GetVcpu(i).SetHostState(state);
                        }
                    }

                    break;
                }

            case WorkloadOp.Inject:
                if ((step.A & 7) == 0)
                {
                    mode.InjectNmiFromHypervisor(cpu);
                    log.AppendLine($"hv-nmi {index}");
                }
                else
                {
                    mode.InjectFromHypervisor(cpu, WorkloadDriver.Vector(step.B));
                    log.AppendLine($"hv-inject {index} {WorkloadDriver.Vector(step.B):x}");
                }

                break;
            case WorkloadOp.Inhibit:
                // A reason both vendors honor, set by the host (not guest-visible, not in the saved state).
                mode.SetInhibit(ApicvInhibit.BlockIrq, step.A % 2 == 0);
                break;
        }
    }
}
