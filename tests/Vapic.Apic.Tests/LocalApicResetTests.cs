using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>Power-on RESET versus INIT (lapic-reference.md §4; §15 #41, #42, #45).</summary>
public sealed class LocalApicResetTests
{
    /// <summary>Dirties every register an INIT or RESET must restore.</summary>
    private static void Dirty(TestApicHost host)
    {
        host.Write(0x0F0, 0x11FF);
        host.Write(0x080, 0x20);
        host.Write(0x0D0, 0x0200_0000);
        host.Write(0x0E0, 0x0FFF_FFFF);
        host.Write(0x320, 0x0002_0030);
        host.Write(0x330, 0x31);
        host.Write(0x340, 0x32);
        host.Write(0x350, 0x0000_8033);
        host.Write(0x360, 0x34);
        host.Write(0x370, 0x35);
        host.Write(0x3E0, 0x3);
        host.Write(0x380, 1000);
        host.Write(0x310, 0x0300_0000);
        host.Apic.SetLint(0, true);
        host.Service(0x60);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x70, levelTriggered: true);
        host.Read(0x3A0);
        host.Write(0x280, 0);
        host.Read(0x3A0);
    }

    private static void AssertArchitecturalResetState(TestApicHost host)
    {
        Assert.Equal(0xFFFF_FFFFu, host.Read(0x0E0));
        Assert.Equal(0u, host.Read(0x080));
        Assert.Equal(0u, host.Read(0x0A0));
        Assert.Equal(0xFFu, host.Read(0x0F0));
        for (int offset = 0x100; offset < 0x280; offset += 0x10)
        {
            Assert.Equal(0u, host.Read(offset));
        }

        Assert.Equal(0u, host.Read(0x280));
        Assert.Equal(0u, host.Apic.PendingErrors);
        Assert.Equal(0u, host.Read(0x300));
        Assert.Equal(0u, host.Read(0x310));
        for (int offset = 0x320; offset <= 0x370; offset += 0x10)
        {
            Assert.Equal(0x0001_0000u, host.Read(offset));
        }

        Assert.Equal(0u, host.Read(0x380));
        Assert.Equal(0u, host.Read(0x390));
        Assert.Equal(0u, host.Read(0x3E0));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        Assert.Equal(0x0105_0014u, host.Read(0x030));
    }

    [Fact]
    public void Init_XApic_RestoresInitStateButKeepsIdAndBase() // §15 #41 (target side)
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        Dirty(host);
        host.Apic.Reset(init: true);
        AssertArchitecturalResetState(host);
        Assert.Equal(0x0100_0000u, host.Read(0x020));
        Assert.Equal(0xFEE0_0800UL, host.Rdmsr(0x1B));
        Assert.Equal(0u, host.Read(0x0D0));
    }

    [Fact]
    public void Init_KeepsAWrittenXApicId() // §4: ID preserved
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        host.Write(0x020, 0x0900_0000);
        host.Apic.Reset(init: true);
        Assert.Equal(0x0900_0000u, host.Read(0x020));
    }

    [Fact]
    public void Reset_RestoresInitialIdAndBase()
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        Dirty(host);
        host.Write(0x020, 0x0900_0000);
        host.Wrmsr(0x1B, 0xFED0_0800);
        host.Apic.Reset(init: false);
        AssertArchitecturalResetState(host);
        Assert.Equal(0x0100_0000u, host.Read(0x020));
        Assert.Equal(0xFEE0_0800UL, host.Rdmsr(0x1B));
    }

    [Fact]
    public void Init_X2Apic_StaysX2ApicWithDerivedLdr() // §15 #42
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        host.SwitchToX2Apic();
        host.Wrmsr(0x80F, 0x1FF);
        host.Wrmsr(0x808, 0x40);
        host.Apic.Reset(init: true);
        Assert.Equal(0xFEE0_0C00UL, host.Rdmsr(0x1B));
        Assert.Equal(1UL, host.Rdmsr(0x802));
        Assert.Equal(0x2UL, host.Rdmsr(0x80D));
        Assert.Equal(0UL, host.Rdmsr(0x808));
        Assert.Equal(0xFFUL, host.Rdmsr(0x80F));
        Assert.Equal(0x0001_0000UL, host.Rdmsr(0x832));
    }

    [Fact]
    public void Init_Disabled_StaysDisabled()
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFEE0_0100);
        host.Apic.Reset(init: true);
        Assert.Equal(ApicMode.Disabled, host.Apic.Mode);
        Assert.Equal(0xFEE0_0100UL, host.Rdmsr(0x1B));
    }

    [Fact]
    public void Reset_FromX2Apic_ReturnsToXApicUnlessConfigured()
    {
        TestApicHost host = TestApicHost.Create(id: 4);
        host.SwitchToX2Apic();
        host.Apic.Reset(init: false);
        Assert.Equal(ApicMode.XApic, host.Apic.Mode);
        Assert.Equal(0u, host.Apic.LogicalDestination);

        TestApicHost configured = TestApicHost.Create(id: 0x123, x2Apic: true);
        configured.Wrmsr(0x1B, 0xFEE0_0100);
        configured.Apic.Reset(init: false);
        Assert.Equal(0xFEE0_0D00UL, configured.Rdmsr(0x1B));
        Assert.Equal(0x0012_0008UL, configured.Rdmsr(0x80D));
    }

    [Fact]
    public void Init_DisarmsTscDeadline()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x320, 0x0004_00EF);
        host.Wrmsr(0x6E0, 5000);
        host.Apic.Reset(init: true);
        Assert.Equal(0UL, host.Apic.TscDeadline);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        host.AdvanceTo(6000);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void Init_LeavesLatchedEventsToTheCpu_ResetClearsThem() // §15 #45: NMI stays pending across wait-for-SIPI
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        host.Apic.AcceptInterrupt(DeliveryMode.Nmi, 0, levelTriggered: false);
        host.Apic.AcceptInterrupt(DeliveryMode.StartUp, 0x10, levelTriggered: false);
        host.Apic.Reset(init: true);
        Assert.Equal(ApicEvents.Nmi | ApicEvents.StartUp, host.Apic.PendingEvents);
        Assert.Equal(0x10, host.Apic.StartupVector);
        host.Apic.Reset(init: false);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
        Assert.Equal(0, host.Apic.StartupVector);
    }

    [Fact]
    public void Reset_ClearsLintRemoteIrrButKeepsPinLevel()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_8033);
        host.Apic.SetLint(0, true);
        host.Apic.Reset(init: true);
        Assert.True(host.Apic.IsLintAsserted(0));
        Assert.Equal(0x0001_0000u, host.Read(0x350));
    }

    [Fact]
    public void Reset_NotifiesTimerAndRoutingOnlyWhenChanged()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x320, 0x30);
        host.Write(0x380, 100);
        int timer = host.TimerChangedCount;
        int routing = host.RoutingChangedCount;
        host.Apic.Reset(init: true);
        Assert.Equal(timer + 1, host.TimerChangedCount);
        Assert.Equal(routing + 1, host.RoutingChangedCount); // SVR software enable went 1 → 0
        host.Apic.Reset(init: true);
        Assert.Equal(timer + 1, host.TimerChangedCount);
        Assert.Equal(routing + 1, host.RoutingChangedCount);
    }

    [Fact]
    public void Construction_DoesNotCallTheHost()
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(0, host.TimerChangedCount);
        Assert.Equal(0, host.RoutingChangedCount);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Fact]
    public void Construction_DefaultOptions_FillDefaults()
    {
        var host = new TestApicHost();
        var apic = new LocalApic(host, default);
        Assert.Equal(46, apic.Options.MaxPhysicalAddressBits);
        Assert.Equal(1, apic.Options.BusCycleNs);
        Assert.Equal(0xFEE0_0800UL, apic.BaseMsr);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LocalApic(host, new LocalApicOptions { InitialId = 0xFFFF_FFFF }));
    }
}
