using Vapic.Apic;

namespace Vapic.Virtualization.Nested;

/// <summary>
/// The APIC-related part of the VMCS that L1 builds for its L2 on one vCPU (vmcs12), as L1's
/// VMWRITEs leave it. L0 reads it on every nested VM entry to build vmcs02
/// (virtualization-reference §5.1). The guest-interrupt status (RVI/SVI) lives here too: L0
/// keeps it in vmcs02 while L2 runs and L1 reads it back after an exit, so the model keeps one copy.
/// </summary>
public sealed class Vmcs12
{
    private InterruptBitmap _eoiExitBitmap;

    /// <summary>The controls L1 set.</summary>
    public Vmcs12Controls Controls { get; set; }

    /// <summary>APIC-access address (field 0x2014): an L1 guest-physical address.</summary>
    public ulong ApicAccessAddress { get; set; }

    /// <summary>Virtual-APIC address (field 0x2012): an L1 guest-physical address.</summary>
    public ulong VirtualApicAddress { get; set; }

    /// <summary>Posted-interrupt descriptor address (field 0x2016): an L1 guest-physical address.</summary>
    public ulong PostedInterruptDescriptorAddress { get; set; }

    /// <summary>Posted-interrupt notification vector (16-bit field 0x0002); bits 15:8 must be 0.</summary>
    public ushort PostedInterruptNotificationVector { get; set; }

    /// <summary>TPR threshold (32-bit field 0x401C); bits 3:0 are used.</summary>
    public uint TprThreshold { get; set; }

    /// <summary>RVI, guest-interrupt status bits 7:0 (field 0x0810): the highest requesting virtual interrupt.</summary>
    public byte RequestingVirtualInterrupt { get; set; }

    /// <summary>SVI, guest-interrupt status bits 15:8: the virtual interrupt in service.</summary>
    public byte ServicingVirtualInterrupt { get; set; }

    /// <summary>Whether every control in <paramref name="controls"/> is set.</summary>
    public bool Has(Vmcs12Controls controls) => (Controls & controls) == controls;

    /// <summary>Whether EOI-exit bitmap bit <paramref name="vector"/> (fields 0x201C-0x2022) is set.</summary>
    public bool IsEoiExit(byte vector) => _eoiExitBitmap.Get(vector);

    /// <summary>Sets or clears EOI-exit bitmap bit <paramref name="vector"/>.</summary>
    public void SetEoiExit(byte vector, bool exit) => _eoiExitBitmap.Assign(vector, exit);
}
