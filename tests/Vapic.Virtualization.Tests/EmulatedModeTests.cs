using Vapic.Machine;
using Xunit;

namespace Vapic.Virtualization.Tests;

public class EmulatedModeTests
{
    private static (VirtualMachine Machine, EmulatedMode Mode) Create(int vcpus = 2)
    {
        var mode = new EmulatedMode();
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus }, mode);
        return (machine, mode);
    }

    [Fact]
    public void EveryApicMmioAccessExits()
    {
        var (machine, mode) = Create();
        machine.GetVcpu(0).WriteMmio(0xFEE000F0, 0x1FF);
        machine.GetVcpu(0).ReadMmio(0xFEE00080, out _);
        Assert.Equal(2, mode.Ledger.ExitsOf(ExitReason.ApicMmio));
        Assert.Equal(2, mode.Ledger.TotalExits);
    }

    [Fact]
    public void IoApicAndUnbackedAccessesAreTheirOwnReasons()
    {
        var (machine, mode) = Create();
        machine.GetVcpu(0).ReadMmio(0xFEC00010, out _);
        machine.GetVcpu(0).ReadMmio(0xFED00000, out _);
        Assert.Equal(1, mode.Ledger.ExitsOf(ExitReason.IoApicMmio));
        Assert.Equal(1, mode.Ledger.ExitsOf(ExitReason.UnbackedMmio));
    }

    [Fact]
    public void UnicastIpiToRunningTargetKicksItOnceUntilItReenters()
    {
        var (machine, mode) = Create();
        // The AP sends to the BSP, which runs (an AP waiting for SIPI takes no fixed interrupts).
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);
        bsp.WriteMmio(0xFEE000F0, 0x1FF);
        ap.WriteMmio(0xFEE00310, 0x0000_0000);
        long before = mode.Ledger.ExitsOf(ExitReason.ExternalInterrupt);
        ap.WriteMmio(0xFEE00300, 0x0000_0041);
        ap.WriteMmio(0xFEE00300, 0x0000_0042);
        Assert.Equal(before + 1, mode.Ledger.ExitsOf(ExitReason.ExternalInterrupt));
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x42), bsp.Accept());
        Assert.Equal(1, mode.Ledger.EventsOf(CostEvent.Injection));
    }

    [Fact]
    public void HaltedTargetIsWokenAndBecomesRunning()
    {
        var (machine, mode) = Create();
        Vcpu bsp = machine.GetVcpu(0), ap = machine.GetVcpu(1);
        ap.WriteMmio(0xFEE000F0, 0x1FF);
        ap.SetHostState(VcpuHostState.Halted);
        bsp.WriteMmio(0xFEE00310, 0x0100_0000);
        bsp.WriteMmio(0xFEE00300, 0x0000_0041);
        Assert.Equal(1, mode.Ledger.EventsOf(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(VcpuHostState.Running, ap.HostState);
    }

    [Fact]
    public void SelfIpiNeedsNoKick()
    {
        var (machine, mode) = Create(1);
        Vcpu bsp = machine.GetVcpu(0);
        bsp.WriteMmio(0xFEE000F0, 0x1FF);
        bsp.WriteMmio(0xFEE00300, 0x0004_0041);
        Assert.Equal(0, mode.Ledger.ExitsOf(ExitReason.ExternalInterrupt));
    }

    [Fact]
    public void EmulatedModeIsNeverAcceleratedAndIgnoresInhibits()
    {
        var (_, mode) = Create();
        mode.SetInhibit(ApicvInhibit.BlockIrq, true);
        Assert.False(mode.IsAccelerated);
        Assert.False(mode.Inhibits.Contains(ApicvInhibit.BlockIrq) && mode.Inhibits.Effective != ApicvInhibitMask.None);
    }
}
