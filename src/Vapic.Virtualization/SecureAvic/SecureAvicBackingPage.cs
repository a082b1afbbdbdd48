using Vapic.Apic;

namespace Vapic.Virtualization.SecureAvic;

/// <summary>
/// One vCPU's guest-owned Secure AVIC backing page (virtualization-reference §7.1, §7.4): 4 KiB of
/// guest memory holding the x2APIC registers at their xAPIC MMIO offsets, plus the two fields
/// Secure AVIC adds, ALLOWED_IRR (offsets 0x204 + 0x10·i, vectors 32i..32i+31) and the NMI
/// request (0x278 bit 0).
/// </summary>
/// <remarks>
/// The architectural registers are the machine's <see cref="LocalApic"/> (as in every mode, the
/// LAPIC register state is the backing page); this class reads them at their offsets and owns only
/// the Secure AVIC fields. The timer registers (LVT timer 0x320, initial count 0x380, current count
/// 0x390, divide 0x3E0) belong to the hypervisor, which emulates the timer: the driver never
/// stores them in the page, so they read 0 here (Linux <c>x2apic_savic.c</c>, <c>savic_read</c>).
/// </remarks>
public sealed class SecureAvicBackingPage
{
    /// <summary>The size of the page.</summary>
    public const int Size = 4096;

    /// <summary>ALLOWED_IRR word 0 (vectors 0-31); word i is at this offset + 0x10·i.</summary>
    public const int AllowedIrrOffset = 0x204;

    /// <summary>The NMI request (bit 0), set by a sender vCPU in its target's page.</summary>
    public const int NmiRequestOffset = 0x278;

    private readonly LocalApic _apic;
    private InterruptBitmap _allowedIrr;

    internal SecureAvicBackingPage(LocalApic apic, ulong guestPhysicalAddress)
    {
        _apic = apic;
        GuestPhysicalAddress = guestPhysicalAddress;
    }

    /// <summary>The guest physical address the guest allocated the page at (page aligned).</summary>
    public ulong GuestPhysicalAddress { get; }

    /// <summary>ALLOWED_IRR: the vectors the guest lets the hypervisor inject.</summary>
    public ref readonly InterruptBitmap AllowedIrr => ref _allowedIrr;

    /// <summary>The NMI request field (0x278 bit 0): a guest NMI IPI waiting to be taken.</summary>
    public bool NmiRequest { get; internal set; }

    /// <summary>Whether ALLOWED_IRR lets the hypervisor inject <paramref name="vector"/>.</summary>
    public bool IsAllowed(byte vector) => _allowedIrr.Get(vector);

    /// <summary>
    /// Reads the 32-bit word at <paramref name="offset"/> (4-byte aligned, below <see cref="Size"/>)
    /// as the guest sees its page; offsets that hold nothing read 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is misaligned or outside the page.</exception>
    public uint Read(int offset)
    {
        ValidateOffset(offset);
        if (offset is >= AllowedIrrOffset and <= AllowedIrrOffset + 0x70 && ((offset - AllowedIrrOffset) & 0xF) == 0)
        {
            return _allowedIrr.GetChunk((offset - AllowedIrrOffset) >> 4);
        }

        LocalApic apic = _apic;
        switch (offset)
        {
            case 0x020:
                return apic.Mode == ApicMode.X2Apic ? apic.Id : apic.Id << 24;
            case 0x030:
                return apic.Version;
            case 0x080:
                return apic.TaskPriority;
            case 0x0A0:
                return apic.ProcessorPriority;
            case 0x0D0:
                return apic.LogicalDestination;
            case 0x0E0:
                return apic.DestinationFormat;
            case 0x0F0:
                return apic.SpuriousVector;
            case NmiRequestOffset:
                return NmiRequest ? 1u : 0u;
            case 0x280:
                return apic.ErrorStatus;
            case 0x300:
                // The driver keeps the 64-bit x2APIC ICR at 0x300-0x307 (apic_set_reg64).
                return (uint)apic.InterruptCommandValue;
            case 0x304:
                return (uint)(apic.InterruptCommandValue >> 32);
            case 0x330:
                return apic.GetLvt(LvtEntry.Thermal);
            case 0x340:
                return apic.GetLvt(LvtEntry.PerformanceCounter);
            case 0x350:
                return apic.GetLvt(LvtEntry.Lint0);
            case 0x360:
                return apic.GetLvt(LvtEntry.Lint1);
            case 0x370:
                return apic.GetLvt(LvtEntry.Error);
        }

        if ((offset & 0xF) == 0 && offset is >= 0x100 and < 0x280)
        {
            int chunk = (offset - 0x100) >> 4;
            return chunk switch
            {
                < 8 => apic.Isr.GetChunk(chunk),
                < 16 => apic.Tmr.GetChunk(chunk - 8),
                _ => apic.Irr.GetChunk(chunk - 16),
            };
        }

        return 0;
    }

    /// <summary>
    /// The guest writes its own page at <paramref name="offset"/>. Only the Secure AVIC fields are
    /// taken here (ALLOWED_IRR words and the NMI request, which the guest owns outright, TV59);
    /// returns false for any other offset, whose registers the guest changes through its LAPIC.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The offset is misaligned or outside the page.</exception>
    public bool Write(int offset, uint value)
    {
        ValidateOffset(offset);
        if (offset is >= AllowedIrrOffset and <= AllowedIrrOffset + 0x70 && ((offset - AllowedIrrOffset) & 0xF) == 0)
        {
            _allowedIrr.SetChunk((offset - AllowedIrrOffset) >> 4, value);
            return true;
        }

        if (offset == NmiRequestOffset)
        {
            NmiRequest = (value & 1) != 0;
            return true;
        }

        return false;
    }

    /// <summary>Sets or clears <paramref name="vector"/> in ALLOWED_IRR; returns whether the bit changed.</summary>
    internal bool SetAllowed(byte vector, bool allowed) => allowed ? !_allowedIrr.Set(vector) : _allowedIrr.Clear(vector);

    /// <summary>Teardown: no vector allowed, no NMI requested.</summary>
    internal void ClearSecureAvicFields()
    {
        _allowedIrr.ClearAll();
        NmiRequest = false;
    }

    private static void ValidateOffset(int offset)
    {
        if ((uint)offset >= Size || (offset & 3) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "a 4-byte aligned offset inside the 4 KiB page");
        }
    }
}
