using Vapic.Apic;
using Vapic.Machine;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// virtualization-reference §1.3, column SAVIC (the guest driver's view), one test per row. Running
/// targets unless the row says otherwise; only the operation itself is measured.
/// </summary>
public class SecureAvicExitTableTests
{
    // Row "Read TPR/ISR/IRR/ID": 0 (page read) — the #VC handler reads the backing page.
    [Theory]
    [InlineData(0x808u)] // TPR
    [InlineData(0x810u)] // ISR 0-31
    [InlineData(0x820u)] // IRR 0-31
    [InlineData(0x802u)] // ID
    public void RegisterReadsComeFromThePageWithoutExit(uint msr)
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        long vc = m.Mode.Counters.VcExceptions;
        SecureAvicLedgerDelta d = m.Measure();

        m.Read(0, msr);

        Assert.Equal(0, d.TotalExits);
        Assert.Equal(vc + 1, m.Mode.Counters.VcExceptions);
    }

    // Row "Read timer current count": 1 VMGEXIT.
    [Fact]
    public void TimerCurrentCountReadIsOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        SecureAvicLedgerDelta d = m.Measure();
        m.Read(0, SecureAvicTestMachine.CurrentCount);
        d.AssertVmgexits(1);
    }

    // Row "Write TPR": 0 (accelerated).
    [Fact]
    public void TprWriteIsAccelerated()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        SecureAvicLedgerDelta d = m.Measure();
        m.Write(0, SecureAvicTestMachine.Tpr, 0x30);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AcceleratedAccess));
        Assert.Equal(0x30, m[0].Apic.TaskPriority);
    }

    // Row "EOI, edge vector": 0.
    [Fact]
    public void EdgeEoiIsAccelerated()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.SelfIpi, 0x55);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x55), m[0].Accept());
        SecureAvicLedgerDelta d = m.Measure();

        m.Write(0, SecureAvicTestMachine.Eoi, 0);

        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.AcceleratedAccess));
        Assert.False(m[0].Apic.Isr.Get(0x55));
    }

    // Row "EOI, level vector": 1 VMGEXIT.
    [Fact]
    public void LevelEoiIsOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.ProgramIoApic(pin: 3, vector: 0x44, level: true, destination: 0);
        m.Machine.SetIrq(3, true);
        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x44), m[0].Accept());
        m.Machine.SetIrq(3, false);
        SecureAvicLedgerDelta d = m.Measure();

        m.Write(0, SecureAvicTestMachine.Eoi, 0);

        d.AssertVmgexits(1);
    }

    // Row "Self-IPI": 0 (SELF_IPI and the ICR self shorthand are accelerated).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SelfIpiIsAccelerated(bool selfIpiMsr)
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        SecureAvicLedgerDelta d = m.Measure();
        if (selfIpiMsr)
        {
            m.Write(0, SecureAvicTestMachine.SelfIpi, 0x66);
        }
        else
        {
            m.SendIpi(0, 0x0004_0066, destination: 0);
        }

        Assert.Equal(0, d.TotalExits);
        Assert.True(m[0].Apic.Irr.Get(0x66));
    }

    // Row "Unicast fixed physical IPI": 1 VMGEXIT (and the hypervisor's kick of the running target).
    [Fact]
    public void UnicastIpiIsOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicLedgerDelta d = m.Measure();
        m.SendIpi(0, 0x70, destination: 1);
        d.AssertVmgexits(1);
        Assert.Equal(1, d.Events(CostEvent.AvicDoorbell));
        Assert.True(m[1].Apic.Irr.Get(0x70));
    }

    // Row "Same, target not running": 1 + wake (halted); a preempted target finds IRR at its next VMRUN.
    [Theory]
    [InlineData(VcpuHostState.Halted, 1)]
    [InlineData(VcpuHostState.Preempted, 0)]
    public void UnicastIpiToATargetNotRunningIsOneVmgexitPlusWake(VcpuHostState state, long wakes)
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m[1].SetHostState(state);
        SecureAvicLedgerDelta d = m.Measure();
        m.SendIpi(0, 0x71, destination: 1);
        d.AssertVmgexits(1);
        Assert.Equal(wakes, d.Events(CostEvent.WakeupBlockedVcpu));
        Assert.Equal(0, d.Events(CostEvent.AvicDoorbell));
        m.TakeAndEoi(1, 0x71);
    }

    // Row "Logical/broadcast fixed IPI": 1 for broadcasts (every target's page, one VMGEXIT); a
    // logical destination is refused by the physical-only driver: nothing sent, no exit.
    [Theory]
    [InlineData(0x000C_0072u, 0u)]          // all excluding self
    [InlineData(0x0008_0072u, 0u)]          // all including self
    [InlineData(0x0000_0072u, 0xFFFF_FFFFu)] // physical broadcast
    public void BroadcastIpiIsOneVmgexit(uint low, uint destination)
    {
        var m = new SecureAvicTestMachine(vcpus: 3);
        SecureAvicLedgerDelta d = m.Measure();
        m.SendIpi(0, low, destination);
        d.AssertVmgexits(1);
        Assert.True(m[1].Apic.Irr.Get(0x72));
        Assert.True(m[2].Apic.Irr.Get(0x72));
    }

    [Fact]
    public void LogicalIpiIsRefusedWithoutExit()
    {
        var m = new SecureAvicTestMachine(vcpus: 3);
        SecureAvicLedgerDelta d = m.Measure();
        m.SendIpi(0, 0x0873, destination: 0x6);
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, m.Mode.Counters.LogicalIpisRefused);
        Assert.False(m[1].Apic.Irr.Get(0x73));
    }

    // Row "NMI/INIT/SIPI IPI": 1 for the sender (the NMI request goes into the target's page; INIT
    // and SIPI are the hypervisor's, which kicks a running target out to reset it).
    [Theory]
    [InlineData(0x0400u, 0L)]
    [InlineData(0x4500u, 1L)]
    [InlineData(0x4608u, 0L)]
    public void NmiInitSipiIpiIsOneVmgexit(uint low, long targetKicks)
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        SecureAvicLedgerDelta d = m.Measure();
        m.SendIpi(0, low, destination: 1);
        Assert.Equal(1, d.Exits(ExitReason.Vmgexit));
        Assert.Equal(targetKicks, d.Exits(ExitReason.ExternalInterrupt));
        Assert.Equal(1 + targetKicks, d.TotalExits);
    }

    // Row "Timer initial-count write": 1 VMGEXIT.
    [Fact]
    public void InitialCountWriteIsOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        SecureAvicLedgerDelta d = m.Measure();
        m.Write(0, SecureAvicTestMachine.InitialCount, 5000);
        d.AssertVmgexits(1);
    }

    // Row "TSC-deadline MSR write": 1 (UNVERIFIED in the reference; the MSR is the hypervisor's).
    [Fact]
    public void TscDeadlineWriteIsOneVmgexit()
    {
        var m = new SecureAvicTestMachine(vcpus: 1);
        m.Write(0, SecureAvicTestMachine.LvtTimer, 0x0004_00EC);
        SecureAvicLedgerDelta d = m.Measure();
        m.Write(0, LocalApic.TscDeadlineMsr, 1_000_000);
        d.AssertVmgexits(1);
    }

    // Row "Device interrupt": the hypervisor sets REQUESTED_IRR; 0 guest exits (hardware delivers from the page).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DeviceInterruptTakesNoGuestExit(bool msi)
    {
        var m = new SecureAvicTestMachine(vcpus: 2);
        m.ProgramIoApic(pin: 6, vector: 0x48, level: false, destination: 1);
        SecureAvicLedgerDelta d = m.Measure();
        if (msi)
        {
            m.SendMsi(destination: 1, vector: 0x48);
        }
        else
        {
            m.Pulse(6);
        }

        Assert.Equal(new CpuEvent(CpuEventKind.Fixed, 0x48), m[1].Accept());
        Assert.Equal(0, d.TotalExits);
        Assert.Equal(1, d.Events(CostEvent.VirtualInterruptDelivery));
        Assert.Equal(1, m.Mode.Counters.DeviceInterrupts);
        Assert.Equal(0, m.Mode.Counters.DeviceInterruptsBlocked);
    }
}
