using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Fuzz.Oracles;

/// <summary>The cheap per-step invariants of every local APIC, as <see cref="LocalApic"/> exposes them.</summary>
public static class ApicInvariants
{
    /// <summary>
    /// Checks every vCPU of <paramref name="machine"/>:
    /// <list type="bullet">
    /// <item>PPR is derived from TPR and the highest in-service vector (SDM "Processor Priority
    /// Register (PPR)"): PPR = TPR when TPR[7:4] ≥ ISRV[7:4], else ISRV[7:4] &lt;&lt; 4.</item>
    /// <item>No vector 0-15 is requested or in service: they are reserved, and an APIC that receives
    /// one sets ESR "Receive Illegal Vector" instead of IRR (SDM "Error Handling").</item>
    /// <item>TPR holds only bits 7:0 (the rest reads as zero; SDM "Task Priority Register (TPR)").</item>
    /// </list>
    /// </summary>
    /// <param name="machine">The machine.</param>
    /// <param name="operation">What ran last, for the message.</param>
    /// <param name="step">Its index in a guest program, or -1.</param>
    /// <exception cref="FuzzInvariantException">An APIC broke one of them.</exception>
    public static void Check(VirtualMachine machine, string operation, int step = -1)
    {
        ArgumentNullException.ThrowIfNull(machine);
        foreach (Vcpu vcpu in machine.Vcpus)
        {
            LocalApic apic = vcpu.Apic;
            uint tpr = apic.TaskPriority;
            int isrv = apic.Isr.Highest();
            uint isrClass = isrv < 0 ? 0u : (uint)isrv & 0xF0;
            uint expected = (tpr & 0xF0) >= isrClass ? tpr : isrClass;
            if (apic.ProcessorPriority != expected)
            {
                throw new FuzzInvariantException(
                    $"PPR inconsistent: vCPU {vcpu.Index} has PPR 0x{apic.ProcessorPriority:x2} with TPR 0x{tpr:x2} and highest ISR " +
                    $"{(isrv < 0 ? "none" : $"0x{isrv:x2}")} (expected 0x{expected:x2}) after {After(operation, step)}");
            }

            if ((apic.Irr.GetWord(0) & 0xFFFF) != 0 || (apic.Isr.GetWord(0) & 0xFFFF) != 0)
            {
                throw new FuzzInvariantException(
                    $"reserved vector pending: vCPU {vcpu.Index} has IRR {apic.Irr.GetWord(0) & 0xFFFF:x4} / ISR {apic.Isr.GetWord(0) & 0xFFFF:x4} in vectors 0-15 after {After(operation, step)}");
            }
        }
    }

    private static string After(string operation, int step) => step < 0 ? operation : $"step {step} ({operation})";
}
