using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>LVT write masks, software-disable masking, LINT pins and the perf-counter auto-mask (lapic-reference.md §6, §7; §15 #11-#13).</summary>
public sealed class LocalApicLvtTests
{
    [Fact]
    public void SoftwareDisabled_LvtWrite_ForcesMask() // §15 #11
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x320, 0xEF);
        Assert.Equal(0x0001_00EFu, host.Read(0x320));
    }

    [Theory] // §15 #12, #13 and the stored-bit masks of §7 (xAPIC writes drop the rest silently; A2).
    [InlineData(0x320, 0x0007_00FFu)]
    [InlineData(0x330, 0x0001_07FFu)]
    [InlineData(0x340, 0x0001_07FFu)]
    [InlineData(0x350, 0x0001_A7FFu)]
    [InlineData(0x360, 0x0001_A7FFu)]
    [InlineData(0x370, 0x0001_00FFu)]
    public void Lvt_WriteAllOnes_KeepsWritableBits(int offset, uint expected)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(offset, 0xFFFF_FFFF);
        Assert.Equal(expected, host.Read(offset));
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Theory]
    [InlineData(LvtEntry.Timer, 0x320)]
    [InlineData(LvtEntry.Thermal, 0x330)]
    [InlineData(LvtEntry.PerformanceCounter, 0x340)]
    [InlineData(LvtEntry.Lint0, 0x350)]
    [InlineData(LvtEntry.Lint1, 0x360)]
    [InlineData(LvtEntry.Error, 0x370)]
    public void Lvt_UnmaskedWrite_ReadsBackAndMatchesAccessor(LvtEntry entry, int offset)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(offset, 0x0000_0042);
        Assert.Equal(0x42u, host.Read(offset));
        Assert.Equal(0x42u, host.Apic.GetLvt(entry));
        Assert.Equal(offset, LocalVectorTable.Offset(entry));
    }

    [Fact]
    public void Lint0_EdgeFixed_DeliversOnRisingEdgeOnly()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_0031);
        host.Apic.SetLint(0, true);
        Assert.True(host.Apic.Irr.Get(0x31));
        Assert.False(host.Apic.Tmr.Get(0x31));
        Assert.Equal(0x31, host.Apic.AcknowledgeInterrupt());
        host.Apic.SetLint(0, true); // still high: no new edge
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Apic.SetLint(0, false);
        host.Apic.SetLint(0, true);
        Assert.True(host.Apic.Irr.Get(0x31));
        Assert.Equal(2, host.Apic.Counters.LintDeliveries);
    }

    [Fact]
    public void Lint_Masked_DiscardsTheEdge()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0001_0031);
        host.Apic.SetLint(0, true);
        host.Write(0x350, 0x0000_0031); // unmasking an edge input does not replay the edge
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void Lint0_Level_SetsRemoteIrrAndTmr_EoiClearsAndRedelivers() // §7, U5
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_8045);
        host.Apic.SetLint(0, true);
        Assert.True(host.Apic.Irr.Get(0x45));
        Assert.True(host.Apic.Tmr.Get(0x45));
        Assert.Equal(0x0000_C045u, host.Read(0x350));

        Assert.Equal(0x45, host.Apic.AcknowledgeInterrupt());
        host.Apic.SetLint(0, true); // asserted while remote IRR is set: nothing re-sent
        Assert.False(host.Apic.Irr.Get(0x45));

        host.Write(0x0B0, 0); // still asserted: remote IRR cleared, then re-delivered
        Assert.True(host.Apic.Irr.Get(0x45));
        Assert.Equal(0x0000_C045u, host.Read(0x350));
        Assert.Equal([(byte)0x45], host.EoiBroadcasts);

        Assert.Equal(0x45, host.Apic.AcknowledgeInterrupt());
        host.Apic.SetLint(0, false);
        host.Write(0x0B0, 0);
        Assert.Equal(0x0000_8045u, host.Read(0x350));
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void Lint0_Level_RemoteIrrClearedEvenWithEoiBroadcastSuppressed()
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x0F0, 0x11FF);
        host.Write(0x350, 0x0000_8045);
        host.Apic.SetLint(0, true);
        host.Apic.SetLint(0, false);
        host.Apic.AcknowledgeInterrupt();
        host.Write(0x0B0, 0);
        Assert.Equal(0x0000_8045u, host.Read(0x350));
        Assert.Empty(host.EoiBroadcasts);
    }

    [Fact]
    public void Lint0_Level_UnmaskWhileAsserted_Delivers() // U5: IOAPIC-like
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0001_8045);
        host.Apic.SetLint(0, true);
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Write(0x350, 0x0000_8045);
        Assert.True(host.Apic.Irr.Get(0x45));
        Assert.Equal(0x0000_C045u, host.Read(0x350));
    }

    [Fact]
    public void Lint0_Level_SwitchToEdge_ClearsRemoteIrr()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_8045);
        host.Apic.SetLint(0, true);
        host.Write(0x350, 0x0000_0045);
        Assert.Equal(0x0000_0045u, host.Read(0x350));
    }

    [Fact]
    public void Lint0_RemoteIrrBit_IsNotWritable() // A2
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_C045);
        Assert.Equal(0x0000_8045u, host.Read(0x350));
        host.Write(0x350, 0x0000_5045);
        Assert.Equal(0x0000_0045u, host.Read(0x350));
    }

    [Fact]
    public void Lint1_LevelBit_IsStoredButTreatedAsEdge() // SDM: LINT1 does not support level
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x360, 0x0000_8046);
        host.Apic.SetLint(1, true);
        Assert.True(host.Apic.Irr.Get(0x46));
        Assert.False(host.Apic.Tmr.Get(0x46));
        Assert.Equal(0x0000_8046u, host.Read(0x360));
    }

    [Theory]
    [InlineData(0x0000_0400u, ApicEvents.Nmi)]
    [InlineData(0x0000_0200u, ApicEvents.Smi)]
    [InlineData(0x0000_0500u, ApicEvents.Init)]
    [InlineData(0x0000_0700u, ApicEvents.ExtInt)]
    [InlineData(0x0000_8700u, ApicEvents.ExtInt)]
    public void Lint_NonFixedModes_LatchEvents(uint lvt, ApicEvents expected)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x360, lvt);
        host.Apic.SetLint(1, true);
        Assert.Equal(expected, host.Apic.PendingEvents);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Theory]
    [InlineData(0x0000_0100u)]
    [InlineData(0x0000_0300u)]
    [InlineData(0x0000_0600u)]
    public void Lint_ReservedModes_DeliverNothing(uint lvt)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, lvt | 0x40);
        host.Apic.SetLint(0, true);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void Lint_GloballyDisabled_ActsAsIntrAndNmi() // U6
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFEE0_0100);
        host.Apic.SetLint(0, true);
        Assert.Equal(ApicEvents.ExtInt, host.Apic.PendingEvents);
        host.Apic.SetLint(1, true);
        Assert.Equal(ApicEvents.ExtInt | ApicEvents.Nmi, host.Apic.PendingEvents);
    }

    [Fact]
    public void Lint_SoftwareDisabled_IsMaskedAndDiscarded()
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x360, 0x0000_0400);
        host.Apic.SetLint(1, true);
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
    }

    [Fact]
    public void Lint_FixedIllegalVector_RaisesReceiveIllegalVector()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x350, 0x0000_0005);
        host.Apic.SetLint(0, true);
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(0x40u, host.Apic.PendingErrors);
    }

    [Fact]
    public void Lint_InvalidPin_Throws()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.Throws<ArgumentOutOfRangeException>(() => host.Apic.SetLint(2, true));
    }

    [Fact]
    public void PerformanceCounter_Delivery_SetsMaskBit() // §7 auto-mask
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x340, 0x0000_00C1);
        host.Apic.RaisePerformanceCounterInterrupt();
        Assert.True(host.Apic.Irr.Get(0xC1));
        Assert.Equal(0x0001_00C1u, host.Read(0x340));
        host.Apic.AcknowledgeInterrupt();
        host.Apic.RaisePerformanceCounterInterrupt(); // masked now: nothing
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void PerformanceCounter_Nmi_DeliversAndMasks()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x340, 0x0000_0400);
        host.Apic.RaisePerformanceCounterInterrupt();
        Assert.Equal(ApicEvents.Nmi, host.Apic.PendingEvents);
        Assert.Equal(0x0001_0400u, host.Read(0x340));
    }

    [Theory]
    [InlineData(0x0000_0500u)] // INIT is not supported by thermal/perf (U4): stored, inert
    [InlineData(0x0000_0700u)] // ExtINT is not supported by thermal/perf (SDM)
    public void Thermal_UnsupportedModes_DeliverNothing(uint lvt)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x330, lvt);
        Assert.Equal(lvt, host.Read(0x330));
        host.Apic.RaiseThermalInterrupt();
        Assert.Equal(ApicEvents.None, host.Apic.PendingEvents);
    }

    [Fact]
    public void Thermal_Fixed_Delivers()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x330, 0x0000_00D0);
        host.Apic.RaiseThermalInterrupt();
        Assert.True(host.Apic.Irr.Get(0xD0));
        Assert.Equal(0xD0u, host.Read(0x330));
    }

    [Fact]
    public void Lvt_TimerAndError_IgnoreDeliveryModeBits()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x320, 0x0000_0430);
        host.Write(0x370, 0x0000_04E0);
        Assert.Equal(0x30u, host.Read(0x320));
        Assert.Equal(0xE0u, host.Read(0x370));
    }

    [Theory]
    [InlineData(LvtEntry.Timer, DeliveryMode.Fixed, true)]
    [InlineData(LvtEntry.Timer, DeliveryMode.Nmi, false)]
    [InlineData(LvtEntry.Error, DeliveryMode.Smi, false)]
    [InlineData(LvtEntry.Thermal, DeliveryMode.Smi, true)]
    [InlineData(LvtEntry.PerformanceCounter, DeliveryMode.Nmi, true)]
    [InlineData(LvtEntry.PerformanceCounter, DeliveryMode.Init, false)]
    [InlineData(LvtEntry.Lint0, DeliveryMode.ExtInt, true)]
    [InlineData(LvtEntry.Lint1, DeliveryMode.Init, true)]
    [InlineData(LvtEntry.Lint1, DeliveryMode.StartUp, false)]
    public void SupportsDeliveryMode_Table(LvtEntry entry, DeliveryMode mode, bool expected)
    {
        Assert.Equal(expected, LocalVectorTable.SupportsDeliveryMode(entry, mode));
    }
}
