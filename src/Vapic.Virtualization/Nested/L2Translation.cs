namespace Vapic.Virtualization.Nested;

/// <summary>
/// How L2 addresses reach L1 guest-physical memory: L1's EPT when "enable EPT" is set in vmcs12
/// (L2 guest-physical → L1 guest-physical), otherwise the page tables L1 built for L2, which L0
/// shadows (L2 linear → L1 guest-physical). The model keeps one page table for both; which one it
/// stands for decides only what an unmapped access does (an EPT violation or a page fault, both
/// handled by L1). Pages that were never mapped translate to the same L1 address (L1 maps L2
/// one-to-one, as simple L1 hypervisors such as BitVisor do).
/// </summary>
public sealed class L2Translation
{
    private const ulong PageMask = L1GuestMemory.PageSize - 1;
    private const ulong NotPresent = ulong.MaxValue;

    private readonly Dictionary<ulong, ulong> _pages = [];

    /// <summary>Maps the L2 page at <paramref name="l2Page"/> to the L1 page at <paramref name="l1Page"/>.</summary>
    /// <exception cref="ArgumentException">An address is not page aligned.</exception>
    public void Map(ulong l2Page, ulong l1Page)
    {
        if (((l2Page | l1Page) & PageMask) != 0)
        {
            throw new ArgumentException($"L2 page 0x{l2Page:x} and L1 page 0x{l1Page:x} must be 4 KiB aligned");
        }

        _pages[l2Page] = l1Page;
    }

    /// <summary>Marks the L2 page at <paramref name="l2Page"/> not present.</summary>
    public void Unmap(ulong l2Page)
    {
        if ((l2Page & PageMask) != 0)
        {
            throw new ArgumentException($"L2 page 0x{l2Page:x} must be 4 KiB aligned", nameof(l2Page));
        }

        _pages[l2Page] = NotPresent;
    }

    /// <summary>Translates <paramref name="l2Address"/>; false when its page is not present.</summary>
    public bool TryTranslate(ulong l2Address, out ulong l1Address)
    {
        if (!_pages.TryGetValue(l2Address & ~PageMask, out ulong l1Page))
        {
            l1Address = l2Address;
            return true;
        }

        if (l1Page == NotPresent)
        {
            l1Address = 0;
            return false;
        }

        l1Address = l1Page | (l2Address & PageMask);
        return true;
    }
}
