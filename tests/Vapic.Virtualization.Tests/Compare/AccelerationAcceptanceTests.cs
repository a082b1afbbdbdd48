using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Xunit;

namespace Vapic.Virtualization.Tests.Compare;

/// <summary>
/// The acceptance checks of the accelerated modes, run for every mode <see cref="ModeRegistry"/>
/// makes available besides emulation (virtualization-reference §1.3). A mode is checked as soon
/// as it is registered; the checks hold vacuously for a mode that is not.
/// </summary>
public class AccelerationAcceptanceTests
{
    /// <summary>Every available mode other than plain emulation.</summary>
    public static IReadOnlyList<string> AcceleratedModes => [.. ModeRegistry.Available.Where(m => m != "emulated")];

    /// <summary>The available hardware-assisted modes of the two vendors (§1.3 columns VID/IPIV and AVIC/X2AVIC).</summary>
    public static IReadOnlyList<string> ApicvAndAvic => [.. ModeRegistry.Available.Where(m => m is "apicv" or "avic")];

    // §1.3: with running targets every accelerated column removes exits from these three paths
    // (the edge EOI at least; the kick or the sender's ICR exit with posting, doorbells or passthrough).
    [Theory]
    [InlineData("ipi-storm", true)]
    [InlineData("timer", true)]
    [InlineData("device", true)]
    [InlineData("ipi-storm", false)]
    [InlineData("timer", false)]
    [InlineData("device", false)]
    public void AcceleratedModesTakeFewerExitsPerInterruptThanEmulation(string workload, bool x2Apic)
    {
        Assert.True(CompareWorkloads.TryParse(workload, out CompareWorkloadKind kind));
        var options = new CompareWorkloadOptions { Workload = kind, VcpuCount = 8, UseX2Apic = x2Apic, Rounds = 20 };
        // An x2APIC-only mode (savic, passthrough after its switch) cannot accelerate an xAPIC guest.
        ComparisonResult result = ComparisonRunner.Run(options, modes: ["emulated", .. x2Apic ? AcceleratedModes : ApicvAndAvic]);
        Assert.Empty(result.Failures);
        double emulated = result.Modes[0].ExitsPerInterrupt!.Value;
        foreach (ModeComparison mode in result.Modes.Skip(1))
        {
            Assert.True(mode.ExitsPerInterrupt < emulated, $"{mode.Mode}: {mode.ExitsPerInterrupt} exits per interrupt, emulated {emulated}");
        }
    }

    // §1.3 column IPIV, row "unicast fixed physical IPI" (running target): 0 exits + posted; the
    // target takes it by virtual-interrupt delivery and its edge EOI is virtualized, so a whole
    // ipi-storm with running targets takes no exit at all (SDM "IPI Virtualization", "EOI Virtualization").
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ApicvWithIpiVirtualizationTakesNoExitsForUnicastIpisToRunningVcpus(bool x2Apic)
    {
        foreach (string mode in ModeRegistry.Available.Where(m => m == "apicv"))
        {
            var options = new CompareWorkloadOptions { Workload = CompareWorkloadKind.IpiStorm, UseX2Apic = x2Apic, Rounds = 10 };
            ComparisonResult result = ComparisonRunner.Run(options, modes: [mode]);
            Assert.Empty(result.Failures);
            ModeComparison apicv = Assert.Single(result.Modes);
            Assert.Equal(80, apicv.InterruptsDelivered);
            Assert.Equal(0, apicv.ExitsTotal);
        }
    }

    // §1.3 row "EOI, edge vector": 0 exits in every accelerated column (APICv EOI virtualization
    // with the EOI-exit bitmap bit clear; AVIC accelerates EOIs of vectors whose TMR bit is clear).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EdgeTriggeredEoiTakesNoExit(bool x2Apic)
    {
        foreach (string name in x2Apic ? AcceleratedModes : ApicvAndAvic)
        {
            AssertEdgeEoiTakesNoExit(ModeRegistry.Create(name), x2Apic);
        }
    }

    /// <summary>An MSI (edge, vector 0x41) to vCPU 1 is taken; its EOI must not exit.</summary>
    internal static void AssertEdgeEoiTakesNoExit(VirtualizationMode mode, bool x2Apic)
    {
        VirtualMachine machine = BootTwoVcpus(mode, x2Apic);
        Vcpu target = machine.GetVcpu(1);
        machine.SendMsi(Msi.EncodeAddress(1, DestinationMode.Physical, false), Msi.EncodeData(0x41, DeliveryMode.Fixed, levelTriggered: false));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x41), target.Accept());
        Assert.False(target.Apic.Tmr.Get(0x41));

        LedgerCounts before = LedgerCounts.Capture(mode.Ledger);
        Assert.Equal(ApicAccessResult.Ok, WriteEoi(target));
        Assert.Equal(0, LedgerCounts.Capture(mode.Ledger).Since(before).TotalExits);
        Assert.False(target.Apic.Isr.Get(0x41));
    }

    // §1.3 row "EOI, level vector": 1 exit under APICv (EOI-induced, KVM sets the EOI-exit bitmap
    // for level-triggered IOAPIC routes) and AVIC (NOACCEL trap at 0xB0), so the EOI reaches the IOAPIC.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LevelTriggeredEoiExitsOnceAndReachesTheIoApic(bool x2Apic)
    {
        foreach (string name in ApicvAndAvic)
        {
            AssertLevelEoiExitsOnce(ModeRegistry.Create(name), x2Apic);
        }
    }

    /// <summary>IOAPIC pin 10 (level, vector 0x3A) reaches vCPU 1; its EOI must exit once and be broadcast to the IOAPIC.</summary>
    internal static void AssertLevelEoiExitsOnce(VirtualizationMode mode, bool x2Apic)
    {
        VirtualMachine machine = BootTwoVcpus(mode, x2Apic);
        Vcpu bsp = machine.GetVcpu(0), target = machine.GetVcpu(1);
        ulong ioApic = machine.IoApic.BaseAddress;
        const int gsi = 10;
        ulong entry = 0x3AUL | RedirectionEntry.TriggerModeBit | (1UL << RedirectionEntry.DestinationShift);
        bsp.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(IoApicRegisters.RedirectionTableIndex + (2 * gsi) + 1));
        bsp.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)(entry >> 32));
        bsp.WriteMmio(ioApic + IoApicRegisters.RegisterSelectOffset, (uint)(IoApicRegisters.RedirectionTableIndex + (2 * gsi)));
        bsp.WriteMmio(ioApic + IoApicRegisters.WindowOffset, (uint)entry);
        machine.SetIrq(gsi, true);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x3A), target.Accept());
        Assert.True(target.Apic.Tmr.Get(0x3A));
        machine.SetIrq(gsi, false);

        long broadcasts = machine.Counters.EoiBroadcasts;
        LedgerCounts before = LedgerCounts.Capture(mode.Ledger);
        Assert.Equal(ApicAccessResult.Ok, WriteEoi(target));
        Assert.Equal(1, LedgerCounts.Capture(mode.Ledger).Since(before).TotalExits);
        Assert.Equal(broadcasts + 1, machine.Counters.EoiBroadcasts);
    }

    [Fact]
    public void TheChecksCoverEveryAvailableModeButEmulation()
    {
        Assert.DoesNotContain("emulated", AcceleratedModes);
        Assert.Equal(ModeRegistry.Available.Count - 1, AcceleratedModes.Count);
        Assert.All(ApicvAndAvic, m => Assert.Contains(m, AcceleratedModes));
    }

    // Boots a 2-vCPU guest the way the workloads do (INIT, SIPI, SVR) in the requested APIC mode.
    private static VirtualMachine BootTwoVcpus(VirtualizationMode mode, bool x2Apic)
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);
        Enable(bsp, x2Apic);
        SendIcr(bsp, 1, ((uint)DeliveryMode.Init << 8) | InterruptCommand.LevelAssert);
        Assert.Equal(CpuEventKind.Init, ap.Accept().Kind);
        SendIcr(bsp, 1, 0x08 | ((uint)DeliveryMode.StartUp << 8) | InterruptCommand.LevelAssert);
        Assert.Equal(CpuEventKind.StartUp, ap.Accept().Kind);
        Enable(ap, x2Apic);
        return machine;
    }

    private static void Enable(Vcpu vcpu, bool x2Apic)
    {
        if (x2Apic)
        {
            Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(ApicBaseMsr.Msr, vcpu.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable));
            Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMsr(0x80F, 0x1FF));
        }
        else
        {
            Assert.Equal(ApicAccessResult.Ok, vcpu.WriteMmio(0xFEE000F0, 0x1FF));
        }
    }

    private static void SendIcr(Vcpu sender, uint destination, uint low)
    {
        if (sender.Apic.Mode == ApicMode.X2Apic)
        {
            Assert.Equal(ApicAccessResult.Ok, sender.WriteMsr(0x830, ((ulong)destination << 32) | low));
        }
        else
        {
            Assert.Equal(ApicAccessResult.Ok, sender.WriteMmio(0xFEE00310, destination << 24));
            Assert.Equal(ApicAccessResult.Ok, sender.WriteMmio(0xFEE00300, low));
        }
    }

    private static ApicAccessResult WriteEoi(Vcpu vcpu) =>
        vcpu.Apic.Mode == ApicMode.X2Apic ? vcpu.WriteMsr(0x80B, 0) : vcpu.WriteMmio(0xFEE000B0, 0);
}
