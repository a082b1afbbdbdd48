using System.Buffers.Binary;
using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>
/// Xen's <c>struct hvm_hw_lapic</c> (HVM save typecode 5, instance = vcpu_id): the LAPIC state
/// outside the register page, which travels in a separate typecode 6 record (lapic-reference.md §14).
/// </summary>
/// <param name="ApicBaseMsr">IA32_APIC_BASE.</param>
/// <param name="Disabled">Bit 0 VLAPIC_HW_DISABLED (EN = 0), bit 1 VLAPIC_SW_DISABLED (SVR bit 8 = 0).</param>
/// <param name="TimerDivisor">The decoded DCR divider, 1-128.</param>
/// <param name="TdtMsr">IA32_TSC_DEADLINE.</param>
/// <param name="PendingEsr">Errors detected but not yet latched into the ESR.</param>
public readonly record struct XenLapicRecord(ulong ApicBaseMsr, uint Disabled, uint TimerDivisor, ulong TdtMsr, uint PendingEsr)
{
    /// <summary>Typecode of <c>hvm_hw_lapic</c>.</summary>
    public const ushort LapicTypecode = 5;

    /// <summary>Typecode of <c>hvm_hw_lapic_regs</c>.</summary>
    public const ushort LapicRegsTypecode = 6;

    /// <summary>Typecode of the END record that closes a Xen HVM context.</summary>
    public const ushort EndTypecode = 0;

    /// <summary>The size of <c>hvm_hw_lapic</c> on 64-bit toolstacks: 28 bytes of fields, padded to 8.</summary>
    public const int Size = 32;

    /// <summary>The size of <c>struct hvm_save_descriptor</c>: typecode u16, instance u16, length u32.</summary>
    public const int DescriptorSize = 8;

    /// <summary>VLAPIC_HW_DISABLED.</summary>
    public const uint HardwareDisabled = 1;

    /// <summary>VLAPIC_SW_DISABLED.</summary>
    public const uint SoftwareDisabled = 2;

    /// <summary>The record Xen would save for <paramref name="s"/>.</summary>
    public static XenLapicRecord From(LocalApicState s)
    {
        ArgumentNullException.ThrowIfNull(s);
        uint disabled = ((s.BaseMsr & Apic.ApicBaseMsr.GlobalEnable) == 0 ? HardwareDisabled : 0) |
            ((s.SpuriousVector & 0x100) == 0 ? SoftwareDisabled : 0);
        return new XenLapicRecord(s.BaseMsr, disabled, (uint)LapicPage.Divisor(s.DivideConfiguration), s.TscDeadline, s.PendingErrors);
    }

    /// <summary>Writes the record's <see cref="Size"/> bytes, little-endian, tail padding zero.</summary>
    public void WriteTo(Span<byte> destination)
    {
        destination[..Size].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination, ApicBaseMsr);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Disabled);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], TimerDivisor);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], TdtMsr);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[24..], PendingEsr);
    }

    /// <summary>
    /// Reads a record of at most <see cref="Size"/> bytes, zero-extended as Xen loads shorter
    /// records from older versions.
    /// </summary>
    public static XenLapicRecord Read(ReadOnlySpan<byte> source)
    {
        Span<byte> full = stackalloc byte[Size];
        full.Clear();
        source[..Math.Min(source.Length, Size)].CopyTo(full);
        return new XenLapicRecord(
            BinaryPrimitives.ReadUInt64LittleEndian(full),
            BinaryPrimitives.ReadUInt32LittleEndian(full[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(full[12..]),
            BinaryPrimitives.ReadUInt64LittleEndian(full[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(full[24..]));
    }

    /// <summary>The <c>hvm_hw_lapic_regs</c> page Xen would save for <paramref name="s"/>: the x2APIC ID raw in x2APIC mode.</summary>
    public static byte[] ExportRegisters(LocalApicState s)
    {
        ArgumentNullException.ThrowIfNull(s);
        byte[] page = new byte[LapicPage.Size];
        LapicPage.WriteRegisters(page, s);
        LapicPage.Write(page, LapicPage.Id, s.Mode == ApicMode.X2Apic ? s.X2ApicId : s.XApicId);
        return page;
    }

    /// <summary>
    /// Rebuilds a state from this record and its register page. The x2APIC ID is the page's ID in
    /// x2APIC mode and its bits 31:24 otherwise (Xen's own IDs are 2 × vcpu_id; a file carries no
    /// other). The LDR of an x2APIC-mode APIC is recomputed, as Xen's load repairs it.
    /// </summary>
    public LapicImportResult Import(ReadOnlySpan<byte> registers)
    {
        if (registers.Length != LapicPage.Size)
        {
            return LapicImportResult.Fail(InteropError.BadLength, $"a Xen LAPIC_REGS record is {LapicPage.Size} bytes, not {registers.Length}");
        }

        if ((ApicBaseMsr & (Apic.ApicBaseMsr.GlobalEnable | Apic.ApicBaseMsr.X2ApicEnable)) == Apic.ApicBaseMsr.X2ApicEnable)
        {
            return LapicImportResult.Fail(InteropError.InvalidApicMode, $"apic_base_msr 0x{ApicBaseMsr:x} has EN = 0 and EXTD = 1");
        }

        uint pageId = LapicPage.Read(registers, LapicPage.Id);
        bool x2Apic = Apic.ApicBaseMsr.GetMode(ApicBaseMsr) == ApicMode.X2Apic;
        uint x2ApicId = x2Apic ? pageId : pageId >> 24;
        uint xApicId = x2Apic ? (x2ApicId << 24) : pageId & 0xFF00_0000;
        LocalApicState state = LapicPage.ReadRegisters(registers, ApicBaseMsr, x2ApicId, xApicId, TdtMsr, 0) with { PendingErrors = PendingEsr };
        return new LapicImportResult(state, InteropError.None, null);
    }
}
