namespace Vapic.Virtualization.Nested;

/// <summary>
/// The VM-entry checks on the APIC-related VMX controls (SDM "Checks on VMX Controls";
/// virtualization-reference §2.1; KVM <c>nested_vmx_check_apicv_controls</c> and
/// <c>nested_vmx_check_tpr_shadow_controls</c>). A failed check makes VMLAUNCH/VMRESUME fail with
/// VMfailValid and VM-instruction error 7 ("invalid control field").
/// </summary>
public static class VmEntryChecks
{
    private const Vmcs12Controls NeedTprShadow =
        Vmcs12Controls.VirtualizeX2ApicMode | Vmcs12Controls.ApicRegisterVirtualization | Vmcs12Controls.VirtualInterruptDelivery;

    /// <summary>
    /// Checks <paramref name="controls"/> with the addresses and values of <paramref name="vmcs"/>.
    /// Returns null when VM entry may proceed, otherwise which check failed.
    /// </summary>
    /// <param name="vmcs">The fields (addresses, notification vector, TPR threshold).</param>
    /// <param name="controls">The controls to check (vmcs12's, or vmcs02's after L0 adjusted them).</param>
    /// <param name="maxPhysicalAddressBits">MAXPHYADDR: address bits at or above it must be 0.</param>
    /// <param name="virtualTaskPriority">VTPR from the virtual-APIC page, or null when the page cannot be read.</param>
    public static string? Check(Vmcs12 vmcs, Vmcs12Controls controls, int maxPhysicalAddressBits, byte? virtualTaskPriority)
    {
        ArgumentNullException.ThrowIfNull(vmcs);
        bool Has(Vmcs12Controls c) => (controls & c) == c;

        if (Has(Vmcs12Controls.UseTprShadow))
        {
            if (!IsPageAddress(vmcs.VirtualApicAddress, 0xFFF, maxPhysicalAddressBits))
            {
                return $"virtual-APIC address 0x{vmcs.VirtualApicAddress:x} must be 4 KiB aligned and below MAXPHYADDR";
            }

            if (!Has(Vmcs12Controls.VirtualInterruptDelivery))
            {
                if ((vmcs.TprThreshold & ~0xFu) != 0)
                {
                    return $"TPR threshold 0x{vmcs.TprThreshold:x} has bits 31:4 set (use TPR shadow without virtual-interrupt delivery)";
                }

                if (!Has(Vmcs12Controls.VirtualizeApicAccesses) && virtualTaskPriority is byte vtpr && (vmcs.TprThreshold & 0xF) > (uint)(vtpr >> 4))
                {
                    return $"TPR threshold {vmcs.TprThreshold & 0xF} is above VTPR[7:4] = {vtpr >> 4}";
                }
            }
        }
        else if ((controls & NeedTprShadow) != 0)
        {
            return "virtualize x2APIC mode, APIC-register virtualization and virtual-interrupt delivery need use TPR shadow";
        }

        if (Has(Vmcs12Controls.VirtualizeX2ApicMode) && Has(Vmcs12Controls.VirtualizeApicAccesses))
        {
            return "virtualize x2APIC mode and virtualize APIC accesses are both set";
        }

        if (Has(Vmcs12Controls.VirtualInterruptDelivery) && !Has(Vmcs12Controls.ExternalInterruptExiting))
        {
            return "virtual-interrupt delivery needs external-interrupt exiting";
        }

        if (Has(Vmcs12Controls.ProcessPostedInterrupts))
        {
            if (!Has(Vmcs12Controls.VirtualInterruptDelivery))
            {
                return "process posted interrupts needs virtual-interrupt delivery";
            }

            if (!Has(Vmcs12Controls.AcknowledgeInterruptOnExit))
            {
                return "process posted interrupts needs acknowledge interrupt on exit";
            }

            if ((vmcs.PostedInterruptNotificationVector & 0xFF00) != 0)
            {
                return $"posted-interrupt notification vector 0x{vmcs.PostedInterruptNotificationVector:x} has bits 15:8 set";
            }

            if (!IsPageAddress(vmcs.PostedInterruptDescriptorAddress, 0x3F, maxPhysicalAddressBits))
            {
                return $"posted-interrupt descriptor address 0x{vmcs.PostedInterruptDescriptorAddress:x} must be 64-byte aligned and below MAXPHYADDR";
            }
        }

        if (Has(Vmcs12Controls.VirtualizeApicAccesses) && !IsPageAddress(vmcs.ApicAccessAddress, 0xFFF, maxPhysicalAddressBits))
        {
            return $"APIC-access address 0x{vmcs.ApicAccessAddress:x} must be 4 KiB aligned and below MAXPHYADDR";
        }

        return null;
    }

    private static bool IsPageAddress(ulong address, ulong alignmentMask, int maxPhysicalAddressBits) =>
        (address & alignmentMask) == 0 && (address >> maxPhysicalAddressBits) == 0;
}
