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
}
