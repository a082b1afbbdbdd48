namespace Vapic.Machine.Acpi;

/// <summary>
/// What an MADT says about its producer and the board rather than the processors: the identity
/// fields of the standard ACPI table header and the PCAT_COMPAT flag.
/// </summary>
public sealed record MadtOptions
{
    /// <summary>OEMID: up to 6 printable ASCII characters, padded with spaces.</summary>
    public string OemId { get; init; } = "VAPIC ";

    /// <summary>OEM Table ID: up to 8 printable ASCII characters, padded with spaces.</summary>
    public string OemTableId { get; init; } = "VAPICMDT";

    /// <summary>OEM Revision.</summary>
    public uint OemRevision { get; init; } = 1;

    /// <summary>Creator ID: the vendor ID of the tool that made the table, up to 4 printable ASCII characters.</summary>
    public string CreatorId { get; init; } = "VAPC";

    /// <summary>Creator Revision.</summary>
    public uint CreatorRevision { get; init; } = 1;

    /// <summary>
    /// PCAT_COMPAT (Flags bit 0): the machine also has the dual 8259 PICs, so the OS masks them
    /// before it uses the APICs. True by default, as on a PC-compatible board.
    /// </summary>
    public bool PcAtCompatible { get; init; } = true;
}
