using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Vapic.Virtualization.Nested;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>A machine under a mode with the nested model on top, and the vmcs12 set-ups the tests share.</summary>
internal sealed class NestedRig
{
    public const ulong ApicAccessPage = 0x0010_0000;
    public const ulong VirtualApicPage = 0x0010_1000;
    public const ulong Descriptor = 0x0010_2000;
    public const ulong Hole = 0xC000_0000;
    public const ulong L1ApicBase = 0xFEE0_0000;

    public const Vmcs12Controls FullApicVirtualization =
        Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.ApicRegisterVirtualization |
        Vmcs12Controls.VirtualInterruptDelivery | Vmcs12Controls.ProcessPostedInterrupts | Vmcs12Controls.EnableEpt |
        Vmcs12Controls.ExternalInterruptExiting | Vmcs12Controls.AcknowledgeInterruptOnExit;

    public NestedRig(VirtualizationMode mode, int vcpus = 1, NestedQuirks quirks = NestedQuirks.None)
    {
        Mode = mode;
        Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus }, mode);
        Nested = new NestedVmx(mode, quirks);
        for (int i = 0; i < vcpus; i++)
        {
            // L1 software-enables its APICs (the APs are started only as far as the tests need).
            Machine.GetVcpu(i).Apic.WriteMmio(L1ApicBase + 0xF0, 0x1FF);
        }
    }

    public VirtualizationMode Mode { get; }

    public VirtualMachine Machine { get; }

    public NestedVmx Nested { get; }

    public Vmcs12 Vmcs12 => Nested.GetVmcs12(0);

    /// <summary>Every mode the tests run the mode-independent cases in.</summary>
    public static TheoryData<string> ModeNames() => ["emulated", "apicv", "avic", "passthrough"];

    public static VirtualizationMode CreateMode(string name) => name switch
    {
        "emulated" => new EmulatedMode(),
        "apicv" => new ApicvMode(),
        "avic" => new AvicMode(),
        "passthrough" => new PassthroughMode(),
        _ => throw new ArgumentException(name, nameof(name)),
    };

    /// <summary>L1 asks for full APIC virtualization with <paramref name="apicAccess"/> as APIC-access address, mapped at L2's 0xFEE00000.</summary>
    public void VirtualizeApic(ulong apicAccess, int vcpu = 0)
    {
        Vmcs12 vmcs12 = Nested.GetVmcs12(vcpu);
        vmcs12.Controls = FullApicVirtualization;
        vmcs12.ApicAccessAddress = apicAccess;
        vmcs12.VirtualApicAddress = VirtualApicPage + ((ulong)vcpu << 16);
        vmcs12.PostedInterruptDescriptorAddress = Descriptor + ((ulong)vcpu << 16);
        vmcs12.PostedInterruptNotificationVector = 0xF2;
        Nested.L2Translation.Map(L1ApicBase, apicAccess);
    }

    /// <summary>L1 asks for no APIC virtualization and lets L2 reach its APIC page one-to-one (BitVisor).</summary>
    public void PassL1ApicThrough(int vcpu = 0) => Nested.GetVmcs12(vcpu).Controls = Vmcs12Controls.EnableEpt;
}
