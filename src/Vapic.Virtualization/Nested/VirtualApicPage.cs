namespace Vapic.Virtualization.Nested;

/// <summary>
/// The virtual-APIC page L1 gave its L2, in L1 RAM (SDM "Virtual-APIC State";
/// virtualization-reference §2.2). Offsets equal the xAPIC MMIO offsets; bit V of VISR/VIRR is bit
/// (V &amp; 1FH) of the 32-bit word at base | ((V &amp; E0H) &gt;&gt; 1).
/// </summary>
internal readonly struct VirtualApicPage(L1GuestMemory memory, ulong address)
{
    public const uint TaskPriority = 0x080;
    public const uint ProcessorPriority = 0x0A0;
    public const uint Eoi = 0x0B0;
    public const uint InService = 0x100;
    public const uint Request = 0x200;
    public const uint InterruptCommandLow = 0x300;
    public const uint InterruptCommandHigh = 0x310;

    public uint Read(uint offset) => memory.Read32(address + offset);

    public void Write(uint offset, uint value) => memory.Write32(address + offset, value);

    public byte Vtpr => (byte)Read(TaskPriority);

    public bool Get(uint bitmap, int vector) => (Read(WordOffset(bitmap, vector)) & (1u << (vector & 31))) != 0;

    public void Assign(uint bitmap, int vector, bool value)
    {
        uint offset = WordOffset(bitmap, vector);
        uint word = Read(offset);
        Write(offset, value ? word | (1u << (vector & 31)) : word & ~(1u << (vector & 31)));
    }

    /// <summary>The highest vector set in VISR or VIRR, or 0 when none (the SDM's "or 0").</summary>
    public byte Highest(uint bitmap)
    {
        for (int slot = 7; slot >= 0; slot--)
        {
            uint word = Read(bitmap + ((uint)slot << 4));
            if (word != 0)
            {
                return (byte)((slot << 5) + 31 - System.Numerics.BitOperations.LeadingZeroCount(word));
            }
        }

        return 0;
    }

    /// <summary>
    /// PPR virtualization (SDM "PPR Virtualization"): VPPR = VTPR if VTPR[7:4] ≥ SVI[7:4], else
    /// SVI &amp; F0H.
    /// </summary>
    public void UpdateProcessorPriority(byte svi)
    {
        byte vtpr = Vtpr;
        Write(ProcessorPriority, (vtpr >> 4) >= (svi >> 4) ? vtpr : (uint)(svi & 0xF0));
    }

    private static uint WordOffset(uint bitmap, int vector) => bitmap + (((uint)vector & 0xE0) >> 1);
}
