namespace Vapic.Apic;

/// <summary>
/// IOAPIC MMIO offsets and indirect register indices (82093AA datasheet "Register Description";
/// ICH datasheets for the version 0x20 EOI register).
/// </summary>
public static class IoApicRegisters
{
    /// <summary>Size of the decoded MMIO window (QEMU decodes 4 KiB).</summary>
    public const ulong WindowSize = 0x1000;

    /// <summary>IOREGSEL, base + 0x00: the 8-bit index of the indirect register.</summary>
    public const ulong RegisterSelectOffset = 0x00;

    /// <summary>IOWIN, base + 0x10: the indirect register selected by IOREGSEL.</summary>
    public const ulong WindowOffset = 0x10;

    /// <summary>EOI, base + 0x40: write-only, version 0x20 only; bits 7:0 name the vector.</summary>
    public const ulong EoiOffset = 0x40;

    /// <summary>Index 0x00: IOAPIC ID in bits 27:24.</summary>
    public const byte IdIndex = 0x00;

    /// <summary>Index 0x01: version in bits 7:0, maximum redirection entry in bits 23:16.</summary>
    public const byte VersionIndex = 0x01;

    /// <summary>Index 0x02: arbitration ID, bits 27:24 (reads the ID register value).</summary>
    public const byte ArbitrationIdIndex = 0x02;

    /// <summary>Index 0x10: the low dword of redirection entry 0; entry n uses 0x10 + 2n and 0x11 + 2n.</summary>
    public const byte RedirectionTableIndex = 0x10;

    /// <summary>The writable bits of the ID register (kvm-unit-tests <c>ioapic_reg_id</c>).</summary>
    public const uint IdMask = 0x0F00_0000;

    /// <summary>The 82093AA-style version without an EOI register (KVM in-kernel IOAPIC, Xen).</summary>
    public const byte Version11 = 0x11;

    /// <summary>The ICH-style version with the EOI register at base + 0x40 (QEMU default).</summary>
    public const byte Version20 = 0x20;

    /// <summary>
    /// The largest pin count whose redirection entries fit the 8-bit index space
    /// (0x10 + 2 × 120 − 1 = 0xFF).
    /// </summary>
    public const int MaxPinCount = 120;

    /// <summary>The value read from an index that names no register (A24, KVM: all ones).</summary>
    public const uint UnimplementedValue = 0xFFFF_FFFF;
}
