namespace Vapic.Machine.Acpi;

/// <summary>The MADT's own Flags field at offset 40 (ACPI "Multiple APIC Flags").</summary>
[Flags]
public enum MadtFlags : uint
{
    /// <summary>No flag set: the system has no legacy 8259 PICs.</summary>
    None = 0,

    /// <summary>PCAT_COMPAT: a dual 8259 is also present, and the OS must mask it before enabling the APICs.</summary>
    PcAtCompatible = 1,
}

/// <summary>The Flags of a Processor Local APIC or Processor Local x2APIC structure (ACPI "Local APIC Flags").</summary>
[Flags]
public enum MadtProcessorFlags : uint
{
    /// <summary>Neither enabled nor online capable: the OS must not use this processor (with MADT revision 5 and later).</summary>
    None = 0,

    /// <summary>Enabled: the processor is ready for use.</summary>
    Enabled = 1,

    /// <summary>
    /// Online Capable: the processor is disabled now but can be enabled at run time; reserved
    /// (must be zero) when <see cref="Enabled"/> is set. Defined from MADT revision 5 (ACPI 6.3).
    /// </summary>
    OnlineCapable = 2,
}
