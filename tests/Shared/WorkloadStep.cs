using CsCheck;

namespace Vapic.Testing;

/// <summary>What a <see cref="WorkloadStep"/> does.</summary>
internal enum WorkloadOp : byte
{
    /// <summary>An IPI through the ICR: any delivery mode, logical or physical, level bit, shorthands.</summary>
    Ipi,
    /// <summary>A write to the x2APIC SELF IPI MSR (#GP outside x2APIC).</summary>
    SelfIpi,
    /// <summary>An MSI write, with the extended destination ID in address bits 11:5.</summary>
    Msi,
    /// <summary>Raise, lower or pulse an IOAPIC input.</summary>
    Irq,
    /// <summary>Program an IOAPIC redirection entry through IOREGSEL/IOWIN.</summary>
    Rte,
    /// <summary>A write to the IOAPIC EOI register (version 0x20; ignored by 0x11).</summary>
    IoApicEoi,
    /// <summary>The vCPU takes its highest pending event.</summary>
    Accept,
    /// <summary>A write to the EOI register.</summary>
    Eoi,
    /// <summary>TPR through the register or CR8.</summary>
    Tpr,
    /// <summary>Arm the timer: divide, LVT timer (one-shot, periodic or TSC-deadline, sometimes masked), count or deadline.</summary>
    Timer,
    /// <summary>Change the divide configuration of a running timer, then read the current count.</summary>
    Dcr,
    /// <summary>Change the LVT timer mode (including the reserved one) without re-arming.</summary>
    TimerMode,
    /// <summary>Advance virtual time, through every timer deadline on the way.</summary>
    Advance,
    /// <summary>IA32_APIC_BASE: enter or leave x2APIC, disable globally, or move the xAPIC base.</summary>
    BaseMsr,
    /// <summary>The xAPIC ID, LDR or DFR.</summary>
    Identity,
    /// <summary>Software-enable or -disable, EOI-broadcast suppression.</summary>
    Svr,
    /// <summary>A write to IA32_TSC.</summary>
    TscWrite,
    /// <summary>Drive LINT0 or LINT1 (sometimes with LINT0 made a level-triggered Fixed input first).</summary>
    Lint,
    /// <summary>Read everything the guest can read of the vCPU.</summary>
    Read,

    /// <summary>A host scheduling change; interpreted by the property that generates it, not by <see cref="WorkloadDriver"/>.</summary>
    HostState,
    /// <summary>A hypervisor injection; interpreted by the property that generates it.</summary>
    Inject,
    /// <summary>A virtualization inhibit; interpreted by the property that generates it.</summary>
    Inhibit,
}

/// <summary>
/// One random operation of a saved-state workload; <see cref="Cpu"/> is taken modulo the vCPU count,
/// and <see cref="A"/>, <see cref="B"/>, <see cref="C"/> are interpreted by <see cref="WorkloadDriver"/>
/// when the step runs, so that shrinking stays simple.
/// </summary>
internal readonly record struct WorkloadStep(WorkloadOp Kind, int Cpu, uint A, uint B, uint C)
{
    /// <summary>How often each operation <see cref="WorkloadDriver"/> runs is generated.</summary>
    private static readonly (int Weight, WorkloadOp Kind)[] s_guestMix =
    [
        (10, WorkloadOp.Ipi),
        (2, WorkloadOp.SelfIpi),
        (6, WorkloadOp.Msi),
        (6, WorkloadOp.Irq),
        (4, WorkloadOp.Rte),
        (1, WorkloadOp.IoApicEoi),
        (12, WorkloadOp.Accept),
        (8, WorkloadOp.Eoi),
        (3, WorkloadOp.Tpr),
        (10, WorkloadOp.Timer),
        (2, WorkloadOp.Dcr),
        (2, WorkloadOp.TimerMode),
        (8, WorkloadOp.Advance),
        (2, WorkloadOp.BaseMsr),
        (1, WorkloadOp.Identity),
        (1, WorkloadOp.Svr),
        (1, WorkloadOp.TscWrite),
        (2, WorkloadOp.Lint),
        (3, WorkloadOp.Read),
    ];

    /// <summary>Every operation <see cref="WorkloadDriver"/> runs, plus the caller's host operations with their weights.</summary>
    public static Gen<WorkloadStep> Generator(params (int Weight, WorkloadOp Kind)[] hostOps) => Of([.. s_guestMix, .. hostOps]);

    /// <summary>Exactly the operations of <paramref name="mix"/>, each as often as its weight says.</summary>
    public static Gen<WorkloadStep> Of(params (int Weight, WorkloadOp Kind)[] mix) => Gen.Select(
        Gen.Frequency(Array.ConvertAll(mix, m => (m.Weight, (IGen<WorkloadOp>)Gen.Const(m.Kind)))),
        Gen.Int[0, 15], Gen.UInt, Gen.UInt, Gen.UInt,
        (kind, cpu, a, b, c) => new WorkloadStep(kind, cpu, a, b, c));
}
