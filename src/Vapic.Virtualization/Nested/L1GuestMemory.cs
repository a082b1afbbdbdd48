namespace Vapic.Virtualization.Nested;

/// <summary>What L1 has at a guest-physical address.</summary>
public enum L1MemoryKind : byte
{
    /// <summary>Nothing: an access exits to the VMM as unbacked MMIO (KVM_EXIT_MMIO).</summary>
    Hole,

    /// <summary>L1 RAM: backed by host memory, so L0 can hand its host-physical address to hardware.</summary>
    Ram,

    /// <summary>An L1 device's MMIO window (the IOAPIC, or a device of the VMM): not RAM.</summary>
    Mmio,

    /// <summary>
    /// L1's own local APIC window. Not RAM: L0 emulates it, or, while APIC virtualization is active
    /// for L1, backs it with its own APIC-access page (KVM's private APIC_ACCESS_PAGE memslot).
    /// </summary>
    L1Apic,
}

/// <summary>One region of L1's guest-physical memory map.</summary>
/// <param name="Base">First address (4 KiB aligned).</param>
/// <param name="Size">Size in bytes (a multiple of 4 KiB, not zero).</param>
/// <param name="Kind">What is there.</param>
public readonly record struct L1MemoryRegion(ulong Base, ulong Size, L1MemoryKind Kind)
{
    /// <summary>Whether <paramref name="address"/> lies in the region.</summary>
    public bool Contains(ulong address) => address - Base < Size;
}

/// <summary>
/// L1's guest-physical address space as L0 sees it: a memory map (RAM, MMIO, L1's APIC window,
/// holes) and the contents of L1 RAM. The machine's own devices (the LAPICs, the IOAPIC) answer at
/// the same addresses: the machine's physical addresses are L1's guest-physical addresses.
/// </summary>
/// <remarks>
/// The default map is 2 GiB of RAM at 0, the IOAPIC window at 0xFEC00000 and L1's APIC window at
/// 0xFEE00000; everything else is a hole. Later <see cref="Map"/> calls override earlier ones where
/// they overlap. L1 RAM sits at <see cref="RamHostBase"/> + GPA in host-physical memory (the model's
/// stand-in for KVM's gfn-to-pfn translation); untouched RAM reads 0.
/// </remarks>
public sealed class L1GuestMemory
{
    /// <summary>The size of a page.</summary>
    public const ulong PageSize = 0x1000;

    /// <summary>Where L0 placed L1 RAM in host-physical memory: L1 GPA G is host address RamHostBase + G.</summary>
    public const ulong RamHostBase = 0x40_0000_0000;

    /// <summary>The default size of L1 RAM (from GPA 0).</summary>
    public const ulong DefaultRamSize = 0x8000_0000;

    /// <summary>The IOAPIC window (the machine's IOAPIC at its default base).</summary>
    public const ulong IoApicWindow = 0xFEC0_0000;

    /// <summary>L1's APIC window at the architectural default base.</summary>
    public const ulong ApicWindow = 0xFEE0_0000;

    private readonly List<L1MemoryRegion> _regions = [];
    private readonly Dictionary<ulong, uint[]> _ramPages = [];

    /// <summary>Creates L1's memory with the default map.</summary>
    public L1GuestMemory()
    {
        _regions.Add(new L1MemoryRegion(0, DefaultRamSize, L1MemoryKind.Ram));
        _regions.Add(new L1MemoryRegion(IoApicWindow, PageSize, L1MemoryKind.Mmio));
        _regions.Add(new L1MemoryRegion(ApicWindow, PageSize, L1MemoryKind.L1Apic));
    }

    /// <summary>The regions in the order they were mapped (later ones win where they overlap).</summary>
    public IReadOnlyList<L1MemoryRegion> Regions => _regions;

    /// <summary>Maps [<paramref name="baseAddress"/>, +<paramref name="size"/>) as <paramref name="kind"/>.</summary>
    /// <exception cref="ArgumentException">The region is not page aligned, empty, or wraps.</exception>
    public void Map(ulong baseAddress, ulong size, L1MemoryKind kind)
    {
        if ((baseAddress | size) % PageSize != 0 || size == 0 || baseAddress + size < baseAddress)
        {
            throw new ArgumentException($"L1 region 0x{baseAddress:x} + 0x{size:x} must be whole 4 KiB pages and must not wrap");
        }

        _regions.Add(new L1MemoryRegion(baseAddress, size, kind));
    }

    /// <summary>What L1 has at <paramref name="address"/>.</summary>
    public L1MemoryKind KindOf(ulong address)
    {
        for (int i = _regions.Count - 1; i >= 0; i--)
        {
            if (_regions[i].Contains(address))
            {
                return _regions[i].Kind;
            }
        }

        return L1MemoryKind.Hole;
    }

    /// <summary>Whether <paramref name="address"/> is L1 RAM.</summary>
    public bool IsRam(ulong address) => KindOf(address) == L1MemoryKind.Ram;

    /// <summary>The host-physical address of L1 RAM address <paramref name="address"/>, or null when it is not RAM.</summary>
    public ulong? HostAddressOf(ulong address) => IsRam(address) ? RamHostBase + address : null;

    /// <summary>Reads 32 bits of L1 RAM (<paramref name="address"/> 4-byte aligned and RAM).</summary>
    public uint Read32(ulong address)
    {
        CheckRam(address);
        return _ramPages.TryGetValue(address & ~(PageSize - 1), out uint[]? page) ? page[(address & (PageSize - 1)) >> 2] : 0;
    }

    /// <summary>Writes 32 bits of L1 RAM (<paramref name="address"/> 4-byte aligned and RAM).</summary>
    public void Write32(ulong address, uint value)
    {
        CheckRam(address);
        ulong page = address & ~(PageSize - 1);
        if (!_ramPages.TryGetValue(page, out uint[]? words))
        {
            if (value == 0)
            {
                return;
            }

            words = new uint[PageSize / 4];
            _ramPages.Add(page, words);
        }

        words[(address & (PageSize - 1)) >> 2] = value;
    }

    private void CheckRam(ulong address)
    {
        if ((address & 3) != 0 || !IsRam(address))
        {
            throw new ArgumentOutOfRangeException(nameof(address), $"0x{address:x} is not an aligned L1 RAM address");
        }
    }
}
