namespace Vapic.Machine;

/// <summary>The kind of event a CPU takes from its interrupt controller.</summary>
public enum CpuEventKind : byte
{
    None,
    Smi,
    Init,
    Nmi,
    ExtInt,
    StartUp,
    Fixed,
}

/// <summary>What a CPU took when it accepted an event: the kind and, for SIPI and fixed interrupts, the vector.</summary>
public readonly record struct CpuEvent(CpuEventKind Kind, byte Vector = 0)
{
    public static CpuEvent None => default;

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        CpuEventKind.None => "none",
        CpuEventKind.Smi => "smi",
        CpuEventKind.Init => "init",
        CpuEventKind.Nmi => "nmi",
        CpuEventKind.ExtInt => "extint",
        CpuEventKind.StartUp => $"sipi 0x{Vector:x2}",
        _ => $"0x{Vector:x2}",
    };
}

/// <summary>The run state of a vCPU as the MP initialization protocol sees it.</summary>
public enum VcpuRunState : byte
{
    Running,
    WaitForSipi,
}
