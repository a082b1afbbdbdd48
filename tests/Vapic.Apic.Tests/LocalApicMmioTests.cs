using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>The xAPIC MMIO register map (lapic-reference.md §1, §4 reset values; §15 vectors #1-#18).</summary>
public sealed class LocalApicMmioTests
{
    [Fact]
    public void IdRegister_ThirdCpu_ReadsInitialIdInBits31To24() // §15 #1
    {
        TestApicHost host = TestApicHost.Create(id: 2, bsp: false);
        Assert.Equal(0x0200_0000u, host.Read(0x020));
        Assert.Equal(2u, host.Apic.Id);
    }

    [Fact]
    public void Version_WithEoiBroadcastSuppression_Is01050014() // §15 #2
    {
        Assert.Equal(0x0105_0014u, TestApicHost.Create().Read(0x030));
    }

    [Fact]
    public void Version_WithoutEoiBroadcastSuppression_Is00050014() // §15 #3 (IOAPIC version 0x11)
    {
        Assert.Equal(0x0005_0014u, TestApicHost.Create(eoiSuppression: false).Read(0x030));
    }

    [Theory] // §15 #4
    [InlineData(0x320)]
    [InlineData(0x330)]
    [InlineData(0x340)]
    [InlineData(0x350)]
    [InlineData(0x360)]
    [InlineData(0x370)]
    public void Lvt_AtPowerOn_IsMasked(int offset)
    {
        Assert.Equal(0x0001_0000u, TestApicHost.Create().Read(offset));
    }

    [Fact]
    public void PowerOn_SvrDfrTprLdrPprEsr_HaveResetValues() // §15 #5
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(0xFFu, host.Read(0x0F0));
        Assert.Equal(0xFFFF_FFFFu, host.Read(0x0E0));
        Assert.Equal(0u, host.Read(0x080));
        Assert.Equal(0u, host.Read(0x0D0));
        Assert.Equal(0u, host.Read(0x0A0));
        Assert.Equal(0u, host.Read(0x280));
        Assert.False(host.Apic.SoftwareEnabled);
    }

    [Fact]
    public void PowerOn_TimerIcrAndBanks_AreZero()
    {
        TestApicHost host = TestApicHost.Create();
        foreach (int offset in new[] { 0x300, 0x310, 0x380, 0x390, 0x3E0 })
        {
            Assert.Equal(0u, host.Read(offset));
        }

        for (int offset = 0x100; offset < 0x280; offset += 0x10)
        {
            Assert.Equal(0u, host.Read(offset));
        }
    }

    [Fact]
    public void Dfr_WriteZero_ReadsModelZeroWithLowBitsSet() // §15 #7
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x0E0, 0);
        Assert.Equal(0x0FFF_FFFFu, host.Read(0x0E0));
        Assert.Equal(0x0FFF_FFFFu, host.Apic.DestinationFormat);
    }

    [Fact]
    public void Ldr_Write_KeepsOnlyBits31To24() // §15 #8
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x0D0, 0x1234_5678);
        Assert.Equal(0x1200_0000u, host.Read(0x0D0));
        Assert.Equal(0x1200_0000u, host.Apic.LogicalDestination);
    }

    [Fact]
    public void Tpr_Write1FF_Keeps8BitsAndCr8ReadsClass() // §15 #9
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x080, 0x1FF);
        Assert.Equal(0xFFu, host.Read(0x080));
        Assert.Equal(0xFUL, host.Apic.ReadCr8());
    }

    [Fact]
    public void IcrHigh_Write_KeepsDestinationAndSendsNothing() // §15 #10
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x310, 0x1234_5678);
        Assert.Equal(0x1200_0000u, host.Read(0x310));
        Assert.Empty(host.SentIpis);
    }

    [Fact]
    public void Dcr_WriteF_KeepsBits3To0Except2() // §15 #14
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x3E0, 0xF);
        Assert.Equal(0xBu, host.Read(0x3E0));
    }

    [Fact]
    public void Svr_WriteAllOnes_WithSuppression_Reads13FF() // §15 #15
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x0F0, 0xFFFF_FFFF);
        Assert.Equal(0x0000_13FFu, host.Read(0x0F0));
        Assert.True(host.Apic.SoftwareEnabled);
        Assert.True(host.Apic.SuppressEoiBroadcast);
    }

    [Fact]
    public void Svr_WriteAllOnes_WithoutSuppression_Reads3FF() // §15 #16
    {
        TestApicHost host = TestApicHost.Create(eoiSuppression: false);
        host.Write(0x0F0, 0xFFFF_FFFF);
        Assert.Equal(0x0000_03FFu, host.Read(0x0F0));
        Assert.False(host.Apic.SuppressEoiBroadcast);
    }

    [Fact]
    public void ReservedOffset_Read_ReturnsZeroAndLatchesEsrBit7() // §15 #17
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(0u, host.Read(0x3A0));
        host.Write(0x280, 0);
        Assert.Equal(0x80u, host.Read(0x280));
    }

    [Theory] // Every reserved xAPIC slot (A7), including 0x2F0 (no CMCI) and 0x3F0 (SELF IPI is x2APIC only).
    [InlineData(0x000)]
    [InlineData(0x010)]
    [InlineData(0x040)]
    [InlineData(0x050)]
    [InlineData(0x060)]
    [InlineData(0x070)]
    [InlineData(0x290)]
    [InlineData(0x2A0)]
    [InlineData(0x2E0)]
    [InlineData(0x2F0)]
    [InlineData(0x3A0)]
    [InlineData(0x3B0)]
    [InlineData(0x3D0)]
    [InlineData(0x3F0)]
    [InlineData(0x400)]
    [InlineData(0x800)]
    [InlineData(0xFF0)]
    public void ReservedOffset_Write_IsIgnoredAndLatchesEsrBit7(int offset)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(offset, 0xFFFF_FFFF);
        Assert.Equal(0u, host.Read(offset));
        Assert.Equal(0x80u, host.Apic.PendingErrors);
        host.Write(0x280, 0);
        Assert.Equal(0x80u, host.Read(0x280));
        Assert.Empty(host.SentIpis);
    }

    [Theory] // APR, RRD and EOI are listed registers: they read 0 and raise no ESR bit.
    [InlineData(0x090)]
    [InlineData(0x0C0)]
    [InlineData(0x0B0)]
    public void ListedRegisterWithoutState_ReadsZeroWithoutError(int offset)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        Assert.Equal(0u, host.Read(offset));
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Theory]
    [InlineData(0x024)]
    [InlineData(0x028)]
    [InlineData(0x02C)]
    [InlineData(0x3A4)]
    public void SlotBytes4To15_ReadZeroAndWritesIgnoredWithoutError(int offset)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(offset, 0xFFFF_FFFF);
        Assert.Equal(0u, host.Read(offset));
        Assert.Equal(0x0000_0000u, host.Read(0x020));
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Fact]
    public void Eoi_WithEmptyIsr_ChangesNothing() // §15 #18
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x40, levelTriggered: true);
        host.Write(0x0B0, 0x1234);
        Assert.Equal(0u, host.Read(0x0B0));
        Assert.True(host.Apic.Irr.Get(0x40));
        Assert.True(host.Apic.Isr.IsEmpty);
        Assert.Empty(host.EoiBroadcasts);
    }

    [Theory] // Writes to read-only registers are silently ignored.
    [InlineData(0x030)]
    [InlineData(0x090)]
    [InlineData(0x0A0)]
    [InlineData(0x0C0)]
    [InlineData(0x100)]
    [InlineData(0x180)]
    [InlineData(0x200)]
    [InlineData(0x270)]
    [InlineData(0x390)]
    public void ReadOnlyRegister_Write_IsIgnoredWithoutError(int offset)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        uint before = host.Read(offset);
        host.Write(offset, 0xFFFF_FFFF);
        Assert.Equal(before, host.Read(offset));
        Assert.Equal(0u, host.Apic.PendingErrors);
    }

    [Fact]
    public void IdRegister_Write_StoresBits31To24AndNotifiesRouting() // A1
    {
        TestApicHost host = TestApicHost.Create(id: 1, bsp: false);
        int before = host.RoutingChangedCount;
        host.Write(0x020, 0x0712_3456);
        Assert.Equal(0x0700_0000u, host.Read(0x020));
        Assert.Equal(7u, host.Apic.Id);
        Assert.Equal(before + 1, host.RoutingChangedCount);
    }

    [Fact]
    public void LdrAndDfrWrites_NotifyRoutingOnlyOnChange()
    {
        TestApicHost host = TestApicHost.Create();
        int before = host.RoutingChangedCount;
        host.Write(0x0D0, 0x0100_0000);
        host.Write(0x0D0, 0x01FF_FFFF);
        host.Write(0x0E0, 0x0FFF_FFFF);
        host.Write(0x0E0, 0);
        Assert.Equal(before + 2, host.RoutingChangedCount);
    }

    [Fact]
    public void IrrIsrTmrBanks_MapVectorsToChunks()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x21, levelTriggered: true);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0xFF, levelTriggered: false);
        host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x10, levelTriggered: true);
        Assert.Equal(0x0001_0000u, host.Read(0x200)); // vector 0x10
        Assert.Equal(0x0000_0002u, host.Read(0x210)); // vector 0x21
        Assert.Equal(0x8000_0000u, host.Read(0x270)); // vector 0xFF
        Assert.Equal(0x0001_0000u, host.Read(0x180));
        Assert.Equal(0x0000_0002u, host.Read(0x190));
        Assert.Equal(0u, host.Read(0x1F0));
        Assert.Equal(0xFF, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(0x8000_0000u, host.Read(0x170));
        Assert.Equal(0u, host.Read(0x270));
    }

    [Fact]
    public void Mmio_OutsideWindow_IsUnmapped()
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEE0_1000, out uint value));
        Assert.Equal(0u, value);
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEDF_FFFC, out _));
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.WriteMmio(0xFEE0_1080, 0x50));
        Assert.Equal(0u, host.Read(0x080));
    }

    [Fact]
    public void Mmio_InX2ApicMode_IsUnmapped()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEE0_0030, out _));
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.WriteMmio(0xFEE0_0080, 0x50));
        Assert.Equal(0UL, host.Rdmsr(0x808));
    }

    [Fact]
    public void Mmio_WhenGloballyDisabled_IsUnmapped()
    {
        TestApicHost host = TestApicHost.Create();
        host.Wrmsr(0x1B, 0xFEE0_0100);
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.ReadMmio(0xFEE0_0030, out _));
        Assert.Equal(ApicAccessResult.Unmapped, host.Apic.WriteMmio(0xFEE0_0080, 0x50));
        Assert.Equal(0, host.Apic.TaskPriority);
    }

    [Fact]
    public void IcrLow_Write_StoresReservedBitsButNotDeliveryStatus()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Loopback = false;
        host.Write(0x310, 0x0500_0000);
        host.Write(0x300, 0xFFF3_3040);
        Assert.Equal(0xFFF3_2040u, host.Read(0x300));
        Assert.Single(host.SentIpis);
    }
}
