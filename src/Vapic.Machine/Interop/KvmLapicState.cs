using Vapic.Apic;
using Vapic.Apic.SavedState;

namespace Vapic.Machine.Interop;

/// <summary>
/// KVM's <c>struct kvm_lapic_state</c> (KVM_GET_LAPIC / KVM_SET_LAPIC): the 1 KiB register page,
/// with or without the KVM_X2APIC_API_USE_32BIT_IDS ID format (lapic-reference.md §14).
/// </summary>
public static class KvmLapicState
{
    /// <summary>
    /// The page KVM_GET_LAPIC would return for <paramref name="s"/>: TMCCT holds the current
    /// count at the save instant; the x2APIC ICR is split into 0x300 (low) and 0x310 (high).
    /// ID: in x2APIC mode the raw 32-bit ID with <paramref name="x2ApicApi32BitIds"/>, else the
    /// x2APIC ID in bits 31:24 (KVM always uses the xAPIC format without the x2APIC API); in
    /// xAPIC mode the ID register as written.
    /// </summary>
    public static byte[] Export(LocalApicState s, bool x2ApicApi32BitIds)
    {
        ArgumentNullException.ThrowIfNull(s);
        byte[] page = new byte[LapicPage.Size];
        LapicPage.WriteRegisters(page, s);
        uint id = s.Mode == ApicMode.X2Apic
            ? (x2ApicApi32BitIds ? s.X2ApicId : s.X2ApicId << 24)
            : s.XApicId;
        LapicPage.Write(page, LapicPage.Id, id);
        return page;
    }

    /// <summary>
    /// Decodes a page as KVM_SET_LAPIC would, for a vCPU whose IA32_APIC_BASE is
    /// <paramref name="apicBaseMsr"/> (set before the page, since the ID format depends on the
    /// mode) and whose x2APIC ID is <paramref name="vcpuApicId"/>. In x2APIC mode the ID in the
    /// page is ignored without the x2APIC API and must equal <paramref name="vcpuApicId"/> with it;
    /// the LDR is recomputed from the ID. The timer restarts from the saved TMCCT.
    /// IA32_TSC_DEADLINE and the guest TSC live outside the page (KVM_GET_MSRS).
    /// </summary>
    public static LapicImportResult Import(
        ReadOnlySpan<byte> page, ulong apicBaseMsr, uint vcpuApicId, bool x2ApicApi32BitIds, ulong tscDeadline = 0, ulong tsc = 0)
    {
        if (page.Length != LapicPage.Size)
        {
            return LapicImportResult.Fail(InteropError.BadLength, $"a KVM LAPIC page is {LapicPage.Size} bytes, not {page.Length}");
        }

        if ((apicBaseMsr & (ApicBaseMsr.GlobalEnable | ApicBaseMsr.X2ApicEnable)) == ApicBaseMsr.X2ApicEnable)
        {
            return LapicImportResult.Fail(InteropError.InvalidApicMode, $"IA32_APIC_BASE 0x{apicBaseMsr:x} has EN = 0 and EXTD = 1");
        }

        uint pageId = LapicPage.Read(page, LapicPage.Id);
        uint xApicId;
        if (ApicBaseMsr.GetMode(apicBaseMsr) == ApicMode.X2Apic)
        {
            if (x2ApicApi32BitIds && pageId != vcpuApicId)
            {
                return LapicImportResult.Fail(InteropError.IdMismatch,
                    $"x2APIC ID 0x{pageId:x} in the page differs from the vCPU's x2APIC ID 0x{vcpuApicId:x}");
            }

            xApicId = vcpuApicId << 24;
        }
        else
        {
            xApicId = pageId & 0xFF00_0000;
        }

        return new LapicImportResult(LapicPage.ReadRegisters(page, apicBaseMsr, vcpuApicId, xApicId, tscDeadline, tsc), InteropError.None, null);
    }
}
