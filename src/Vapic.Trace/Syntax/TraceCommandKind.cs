namespace Vapic.Trace.Syntax;

/// <summary>
/// What a trace command does. The meaning of <see cref="TraceCommand.A"/> and
/// <see cref="TraceCommand.B"/> is given per member; unused operands are 0.
/// </summary>
public enum TraceCommandKind : byte
{
    /// <summary><c>&lt;cpu&gt; read ADDR</c>: 32-bit MMIO read. A = physical address.</summary>
    MmioRead,

    /// <summary><c>&lt;cpu&gt; write ADDR VALUE</c>: 32-bit MMIO write. A = physical address, B = value.</summary>
    MmioWrite,

    /// <summary><c>&lt;cpu&gt; rdmsr MSR</c>. A = MSR number.</summary>
    MsrRead,

    /// <summary><c>&lt;cpu&gt; wrmsr MSR VALUE</c>. A = MSR number, B = value.</summary>
    MsrWrite,

    /// <summary><c>&lt;cpu&gt; rdcr8</c>: read the task priority class through CR8.</summary>
    Cr8Read,

    /// <summary><c>&lt;cpu&gt; wrcr8 VALUE</c>. A = value (all 64 bits, as MOV to CR8 sees them).</summary>
    Cr8Write,

    /// <summary><c>&lt;cpu&gt; accept</c>: the CPU takes its highest-priority pending event.</summary>
    Accept,

    /// <summary><c>&lt;cpu&gt; state</c>: the CPU's run state (running or waiting for SIPI).</summary>
    State,

    /// <summary><c>ioapic write INDEX VALUE</c>. A = IOREGSEL index, B = 32-bit value written to IOWIN.</summary>
    IoApicWrite,

    /// <summary><c>ioapic read INDEX</c>. A = IOREGSEL index.</summary>
    IoApicRead,

    /// <summary><c>irq GSI high|low|pulse</c>. A = IOAPIC pin, B = <see cref="LineAction"/>.</summary>
    Irq,

    /// <summary><c>msi ADDRESS DATA</c>. A = message address (0xFEExxxxx), B = 32-bit message data.</summary>
    Msi,

    /// <summary><c>&lt;cpu&gt; lint 0|1 high|low|pulse</c>. A = LINT pin (0 or 1), B = <see cref="LineAction"/>.</summary>
    Lint,

    /// <summary><c>time +NS</c>. A = nanoseconds to advance virtual time by.</summary>
    Time,

    /// <summary>
    /// <c>hv inject &lt;cpu&gt; VECTOR</c>: the hypervisor injects a fixed edge vector on its own.
    /// <see cref="TraceCommand.Cpu"/> = the target vCPU, A = vector.
    /// </summary>
    HypervisorInject,

    /// <summary><c>hv nmi &lt;cpu&gt;</c>: the hypervisor injects an NMI on its own. <see cref="TraceCommand.Cpu"/> = the target vCPU.</summary>
    HypervisorNmi,

    /// <summary><c>nested quirk NAME</c>: turns an old L0 behaviour on. A = the <see cref="Vapic.Virtualization.Nested.NestedQuirks"/> flag.</summary>
    NestedQuirk,

    /// <summary>
    /// <c>nested l1-map BASE SIZE ram|mmio|l1-apic|hole</c>: a region of L1's guest-physical map.
    /// A = BASE (4 KiB aligned) | the <see cref="Vapic.Virtualization.Nested.L1MemoryKind"/> in bits 11:0, B = SIZE.
    /// </summary>
    NestedL1Map,

    /// <summary>
    /// <c>nested ept L2ADDR L1ADDR|none</c>: one page of L1's EPT for L2 (or of its page tables for L2).
    /// A = the L2 page, B = the L1 page or <see cref="NestedCommandOperands.EptNotPresent"/>.
    /// </summary>
    NestedEpt,

    /// <summary><c>nested l1-write ADDR VALUE</c>: L1 writes 32 bits of its RAM. A = L1 address, B = value.</summary>
    NestedL1Write,

    /// <summary><c>nested l1-read ADDR</c>: 32 bits of L1 RAM. A = L1 address.</summary>
    NestedL1Read,

    /// <summary>
    /// <c>nested vmcs12 &lt;cpu&gt; FIELD=VALUE...</c>, one command per field. <see cref="TraceCommand.Cpu"/> = the
    /// vCPU, A = the <see cref="NestedVmcs12Setting"/>, B = the value.
    /// </summary>
    NestedVmcs12,

    /// <summary><c>nested post &lt;cpu&gt; VECTOR</c>: L1 posts VECTOR to its L2. <see cref="TraceCommand.Cpu"/> = the vCPU, A = vector.</summary>
    NestedPost,

    /// <summary><c>nested inhibit REASON = set|clear</c>: checks an inhibit reason. A = the <see cref="Vapic.Virtualization.ApicvInhibit"/>.</summary>
    NestedInhibit,

    /// <summary><c>&lt;cpu&gt; vmlaunch</c>: L1 enters L2 (VMLAUNCH or VMRESUME).</summary>
    VmLaunch,

    /// <summary><c>&lt;cpu&gt; l2 read ADDR</c>: L2 reads 32 bits at its address ADDR. A = L2 address.</summary>
    L2Read,

    /// <summary><c>&lt;cpu&gt; l2 write ADDR VALUE</c>: L2 writes 32 bits. A = L2 address, B = value.</summary>
    L2Write,

    /// <summary><c>&lt;cpu&gt; l2 accept</c>: L2 takes the virtual interrupt that virtual-interrupt delivery offers.</summary>
    L2Accept,
}
