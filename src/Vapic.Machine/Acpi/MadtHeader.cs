namespace Vapic.Machine.Acpi;

/// <summary>
/// The fixed 44-byte part of an MADT as found in the bytes: the standard ACPI table header, the
/// local APIC address and the flags. Text fields show non-printable bytes as '.'.
/// </summary>
/// <param name="Signature">Bytes 0–3; "APIC" for an MADT.</param>
/// <param name="Length">Bytes 4–7: the table's length in bytes, header included.</param>
/// <param name="Revision">Byte 8.</param>
/// <param name="Checksum">Byte 9.</param>
/// <param name="OemId">Bytes 10–15.</param>
/// <param name="OemTableId">Bytes 16–23.</param>
/// <param name="OemRevision">Bytes 24–27.</param>
/// <param name="CreatorId">Bytes 28–31.</param>
/// <param name="CreatorRevision">Bytes 32–35.</param>
/// <param name="LocalApicAddress">Bytes 36–39: the Local Interrupt Controller Address.</param>
/// <param name="Flags">Bytes 40–43.</param>
public sealed record MadtHeader(
    string Signature,
    uint Length,
    byte Revision,
    byte Checksum,
    string OemId,
    string OemTableId,
    uint OemRevision,
    string CreatorId,
    uint CreatorRevision,
    uint LocalApicAddress,
    MadtFlags Flags);
