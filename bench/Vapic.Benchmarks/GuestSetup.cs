using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization;

namespace Vapic.Benchmarks;

/// <summary>
/// What firmware and a guest kernel do before the measured operations: build the machine, start
/// the application processors and software-enable their LAPICs. Every step checks its result, so
/// a benchmark never measures a path that silently faulted or dropped its interrupt.
/// </summary>
internal static class GuestSetup
{
    public const ulong XApicBase = LocalApic.DefaultBase;
    public const ulong XApicTprAddress = XApicBase + 0x80;
    public const ulong XApicEoiAddress = XApicBase + 0xB0;
    public const ulong XApicSvrAddress = XApicBase + 0xF0;

    public const uint MsrTpr = 0x808;
    public const uint MsrEoi = 0x80B;
    public const uint MsrSvr = 0x80F;
    public const uint MsrIcr = 0x830;
    public const uint MsrLvtTimer = 0x832;
    public const uint MsrInitialCount = 0x838;
    public const uint MsrDivideConfiguration = 0x83E;
    public const uint MsrSelfIpi = 0x83F;

    /// <summary>SVR with the APIC software-enabled (bit 8) and spurious vector 0xFF.</summary>
    public const uint SvrEnabled = 0x1FF;

    /// <summary>The vector the IPI benchmarks send (any vector of a class above TPR 0 would do).</summary>
    public const byte IpiVector = 0x41;

    /// <summary>ICR low: SIPI (delivery mode 110b) with shorthand "all excluding self" (11b) and start page 0x10.</summary>
    public const uint StartupAllExcludingSelf = (3u << 18) | (6u << 8) | 0x10;

    /// <summary>The <see cref="CreateMachine"/> mode name for a bare machine: the device model without a virtualization mode.</summary>
    public const string NoMode = "none";

    /// <summary>
    /// A machine of <paramref name="vcpuCount"/> vCPUs, with x2APIC mode on every LAPIC when
    /// <paramref name="x2Apic"/>, under the virtualization mode named <paramref name="mode"/>
    /// (<see cref="ModeRegistry"/>) or bare with <see cref="NoMode"/>.
    /// </summary>
    public static VirtualMachine CreateMachine(int vcpuCount, bool x2Apic, string mode = NoMode) =>
        new(
            new MachineOptions { VcpuCount = vcpuCount, ForceX2Apic = x2Apic },
            mode == NoMode ? null : ModeRegistry.Create(mode));

    /// <summary>
    /// Brings every vCPU up as a guest kernel would: the BSP software-enables its LAPIC, broadcasts
    /// a SIPI to the others (they wait for one after RESET), each AP takes it and software-enables
    /// its own LAPIC. Without this an AP never takes a fixed interrupt and a software-disabled LAPIC
    /// drops every fixed message, which would make the benchmarks measure the drop path.
    /// </summary>
    public static void BootAllVcpus(VirtualMachine machine)
    {
        Vcpu bsp = machine.GetVcpu(0);
        bool x2Apic = bsp.Apic.Mode == ApicMode.X2Apic;
        EnableLocalApic(bsp, x2Apic);
        if (machine.VcpuCount == 1)
        {
            return;
        }

        Require(
            x2Apic ? bsp.WriteMsr(MsrIcr, StartupAllExcludingSelf) : bsp.WriteMmio(XApicBase + 0x300, StartupAllExcludingSelf),
            "SIPI broadcast");
        for (int i = 1; i < machine.VcpuCount; i++)
        {
            Vcpu ap = machine.GetVcpu(i);
            CpuEvent taken = ap.Accept();
            if (taken.Kind != CpuEventKind.StartUp || ap.RunState != VcpuRunState.Running)
            {
                throw new InvalidOperationException($"vCPU {i} did not start: took {taken}, state {ap.RunState}");
            }

            EnableLocalApic(ap, x2Apic);
        }
    }

    /// <summary>Software-enables the LAPIC of <paramref name="vcpu"/> through SVR.</summary>
    public static void EnableLocalApic(Vcpu vcpu, bool x2Apic)
    {
        Require(x2Apic ? vcpu.WriteMsr(MsrSvr, SvrEnabled) : vcpu.WriteMmio(XApicSvrAddress, SvrEnabled), "SVR write");
        if (!vcpu.Apic.SoftwareEnabled)
        {
            throw new InvalidOperationException($"the LAPIC of vCPU {vcpu.Index} is not software-enabled");
        }
    }

    /// <summary>Throws unless a setup access succeeded.</summary>
    public static void Require(ApicAccessResult result, string what)
    {
        if (result != ApicAccessResult.Ok)
        {
            throw new InvalidOperationException($"{what} failed during benchmark setup: {result}");
        }
    }

    /// <summary>Throws unless a vCPU took the fixed vector it was sent.</summary>
    public static void RequireFixed(CpuEvent taken, byte vector, string what)
    {
        if (taken.Kind != CpuEventKind.Fixed || taken.Vector != vector)
        {
            throw new InvalidOperationException($"{what}: expected fixed vector 0x{vector:x2}, took {taken}");
        }
    }
}
