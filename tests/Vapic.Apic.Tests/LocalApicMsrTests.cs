using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>The x2APIC MSR map and its #GP rules (lapic-reference.md §2, A3/A4/A5; §15 #24-#38).</summary>
public sealed class LocalApicMsrTests
{
    [Theory]
    [InlineData(0x1Bu, true)]
    [InlineData(0x6E0u, true)]
    [InlineData(0x800u, true)]
    [InlineData(0x83Fu, true)]
    [InlineData(0x8FFu, true)]
    [InlineData(0xBFFu, true)]
    [InlineData(0x7FFu, false)]
    [InlineData(0xC00u, false)]
    [InlineData(0x10u, false)]
    [InlineData(0xBDu, false)]
    [InlineData(0x10Au, false)]
    public void IsApicMsr_CoversBaseDeadlineAndX2ApicRange(uint msr, bool expected)
    {
        Assert.Equal(expected, LocalApic.IsApicMsr(msr));
    }

    [Fact]
    public void X2ApicMsr_InXApicMode_Faults() // §15 #24
    {
        TestApicHost host = TestApicHost.Create();
        host.RdmsrFaults(0x802);
        host.RdmsrFaults(0x808);
        host.WrmsrFaults(0x808, 0x20);
        host.WrmsrFaults(0x80B, 0);
        Assert.Equal(0, host.Apic.TaskPriority);
    }

    [Fact]
    public void X2ApicMsr_WhenDisabled_Faults()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.Wrmsr(0x1B, 0xFEE0_0100);
        host.RdmsrFaults(0x802);
        host.WrmsrFaults(0x808, 0x20);
    }

    [Theory] // §15 #25, #26, #27 and the formula's other examples (§2).
    [InlineData(0x0u, 0x0000_0001u)]
    [InlineData(0x1Fu, 0x0001_8000u)]
    [InlineData(0x123u, 0x0012_0008u)]
    [InlineData(0x1u, 0x0000_0002u)]
    [InlineData(0xFFFF_FFFEu, 0xFFFF_4000u)]
    public void X2ApicIdAndLdr_ReadBackIdAndDerivedLogicalId(uint id, uint ldr)
    {
        TestApicHost host = TestApicHost.Create(id: id, x2Apic: true);
        Assert.Equal(id, host.Rdmsr(0x802));
        Assert.Equal(ldr, host.Rdmsr(0x80D));
        Assert.Equal(id, host.Apic.Id);
        Assert.Equal(ldr, host.Apic.LogicalDestination);
    }

    [Fact]
    public void SelfIpiMsr_Read_Faults() // §15 #28
    {
        TestApicHost.Create(x2Apic: true).RdmsrFaults(0x83F);
    }

    [Fact]
    public void SelfIpi_ReservedBitsFault_ThenVectorLandsInIrr() // §15 #29
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.WrmsrFaults(0x83F, 0x100);
        Assert.Empty(host.SentIpis);
        host.Wrmsr(0x83F, 0x31);
        Assert.Equal(0x0002_0000UL, host.Rdmsr(0x821));
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(DestinationShorthand.Self, message.Shorthand);
        Assert.Equal(DeliveryMode.Fixed, message.DeliveryMode);
        Assert.False(message.LevelTriggered);
    }

    [Fact]
    public void Eoi_NonZero_FaultsAndKeepsVectorInService() // §15 #30 (A4)
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Service(0x41);
        host.WrmsrFaults(0x80B, 1);
        Assert.Equal(0x0000_0002UL, host.Rdmsr(0x812));
    }

    [Fact]
    public void Eoi_Zero_RetiresVector() // §15 #31
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Service(0x41);
        host.Wrmsr(0x80B, 0);
        Assert.Equal(0UL, host.Rdmsr(0x812));
    }

    [Fact]
    public void Esr_NonZeroWriteFaults_ZeroWriteLatches() // §15 #32
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.WrmsrFaults(0x828, 1);
        host.Wrmsr(0x828, 0);
        Assert.Equal(0UL, host.Rdmsr(0x828));
    }

    [Theory] // §15 #33: registers that do not exist in x2APIC mode, plus the rest of the reserved range.
    [InlineData(0x800u)]
    [InlineData(0x801u)]
    [InlineData(0x804u)]
    [InlineData(0x807u)]
    [InlineData(0x809u)]
    [InlineData(0x80Cu)]
    [InlineData(0x80Eu)]
    [InlineData(0x829u)]
    [InlineData(0x82Eu)]
    [InlineData(0x82Fu)]
    [InlineData(0x831u)]
    [InlineData(0x83Au)]
    [InlineData(0x83Du)]
    [InlineData(0x840u)]
    [InlineData(0x8FFu)]
    [InlineData(0x900u)]
    [InlineData(0xBFFu)]
    public void AbsentRegister_ReadAndWrite_Fault(uint msr)
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.RdmsrFaults(msr);
        host.WrmsrFaults(msr, 0);
    }

    [Theory] // §15 #34: read-only registers fault on WRMSR (even with value 0).
    [InlineData(0x802u)]
    [InlineData(0x803u)]
    [InlineData(0x80Au)]
    [InlineData(0x80Du)]
    [InlineData(0x810u)]
    [InlineData(0x817u)]
    [InlineData(0x818u)]
    [InlineData(0x81Fu)]
    [InlineData(0x820u)]
    [InlineData(0x827u)]
    [InlineData(0x839u)]
    public void ReadOnlyRegister_Write_Faults(uint msr)
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        ulong before = host.Rdmsr(msr);
        host.WrmsrFaults(msr, 0);
        Assert.Equal(before, host.Rdmsr(msr));
    }

    [Fact]
    public void EoiMsr_Read_Faults()
    {
        TestApicHost.Create(x2Apic: true).RdmsrFaults(0x80B);
    }

    [Fact]
    public void Tpr_ReservedOrHighBitsFault_ValidWriteReadsBack() // §15 #35 (A3)
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.WrmsrFaults(0x808, 0x100);
        host.WrmsrFaults(0x808, 0x1_0000_0020);
        host.Wrmsr(0x808, 0x20);
        Assert.Equal(0x20UL, host.Rdmsr(0x808));
    }

    [Fact]
    public void Icr_ReservedBit13Faults_Bit12IgnoredAndSelfIpiSent() // §15 #36 (A5)
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.WrmsrFaults(0x830, 0x2000 | 0xF0);
        Assert.Empty(host.SentIpis);
        host.Wrmsr(0x830, 0x10F0);
        Assert.Equal(0x0000_0000_0000_00F0UL, host.Rdmsr(0x830));
        Assert.True(host.Apic.Irr.Get(0xF0));
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(0u, message.Destination);
        Assert.Equal(DestinationShorthand.None, message.Shorthand);
    }

    [Theory] // Every x2APIC ICR reserved bit (13, 16, 17, 20-31) faults.
    [InlineData(13)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(20)]
    [InlineData(24)]
    [InlineData(31)]
    public void Icr_EachReservedBit_Faults(int bit)
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.WrmsrFaults(0x830, 0x4050UL | (1UL << bit));
        Assert.Empty(host.SentIpis);
        Assert.Equal(0UL, host.Rdmsr(0x830));
    }

    [Fact]
    public void Icr_64BitWrite_CarriesThe32BitDestination()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Loopback = false;
        host.Wrmsr(0x830, 0x0001_0003_0000_4851);
        Assert.Equal(0x0001_0003_0000_4851UL, host.Rdmsr(0x830));
        InterruptMessage message = Assert.Single(host.SentIpis);
        Assert.Equal(0x0001_0003u, message.Destination);
        Assert.Equal(DestinationMode.Logical, message.DestinationMode);
        Assert.Equal((byte)0x51, message.Vector);
    }

    [Fact]
    public void LvtError_ReadOnlyBitsAccepted_ReservedBitsFault() // §15 #37
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x837, 0x0001_10FF);
        Assert.Equal(0x0001_00FFUL, host.Rdmsr(0x837));
        host.WrmsrFaults(0x835, 0xFFFF_FFFF);
        Assert.Equal(0x0001_0000UL, host.Rdmsr(0x835));
    }

    [Theory] // A3: per LVT, the widest accepted value and the first reserved bit that faults.
    [InlineData(0x832u, 0x0007_10FFu, 0x0007_00FFu, 1u << 8)]
    [InlineData(0x833u, 0x0001_17FFu, 0x0001_07FFu, 1u << 13)]
    [InlineData(0x834u, 0x0001_17FFu, 0x0001_07FFu, 1u << 15)]
    [InlineData(0x835u, 0x0001_F7FFu, 0x0001_A7FFu, 1u << 17)]
    [InlineData(0x836u, 0x0001_F7FFu, 0x0001_A7FFu, 1u << 11)]
    [InlineData(0x837u, 0x0001_10FFu, 0x0001_00FFu, 1u << 8)]
    public void Lvt_X2ApicWriteMask(uint msr, uint widest, uint readBack, uint reservedBit)
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(msr, widest);
        Assert.Equal(readBack, host.Rdmsr(msr));
        host.WrmsrFaults(msr, readBack | reservedBit);
        host.WrmsrFaults(msr, readBack | (1UL << 32));
        Assert.Equal(readBack, host.Rdmsr(msr));
    }

    [Fact]
    public void Dcr_ReservedBit2Faults() // §15 #38
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.WrmsrFaults(0x83E, 0x4);
        host.WrmsrFaults(0x83E, 0x10);
        host.Wrmsr(0x83E, 0xB);
        Assert.Equal(0xBUL, host.Rdmsr(0x83E));
    }

    [Fact]
    public void Svr_ReservedBitsFault_SuppressBitDependsOnVersion()
    {
        TestApicHost with = TestApicHost.Create(x2Apic: true, eoiSuppression: true);
        with.Wrmsr(0x80F, 0x13FF);
        Assert.Equal(0x13FFUL, with.Rdmsr(0x80F));
        with.WrmsrFaults(0x80F, 0x400);
        with.WrmsrFaults(0x80F, 0x2000);

        TestApicHost without = TestApicHost.Create(x2Apic: true, eoiSuppression: false);
        without.WrmsrFaults(0x80F, 0x11FF);
        without.Wrmsr(0x80F, 0x3FF);
        Assert.Equal(0x3FFUL, without.Rdmsr(0x80F));
    }

    [Fact]
    public void Tmict_Accepts32BitsAndFaultsAbove()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x838, 0xFFFF_FFFF);
        Assert.Equal(0xFFFF_FFFFUL, host.Rdmsr(0x838));
        host.WrmsrFaults(0x838, 0x1_0000_0000);
    }

    [Theory] // §2: every register but ICR is 32-bit; any of bits 63:32 set faults and changes nothing.
    [InlineData(0x808u)]
    [InlineData(0x80Bu)]
    [InlineData(0x80Fu)]
    [InlineData(0x828u)]
    [InlineData(0x832u)]
    [InlineData(0x833u)]
    [InlineData(0x834u)]
    [InlineData(0x835u)]
    [InlineData(0x836u)]
    [InlineData(0x837u)]
    [InlineData(0x838u)]
    [InlineData(0x83Eu)]
    [InlineData(0x83Fu)]
    public void ThirtyTwoBitRegister_HighHalfSet_Faults(uint msr)
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Service(0x41);
        host.WrmsrFaults(msr, 1UL << 63);
        Assert.True(host.Apic.Isr.Get(0x41));
        Assert.Equal(0x1FFUL, host.Rdmsr(0x80F));
        Assert.Equal(0UL, host.Rdmsr(0x838));
        Assert.Empty(host.SentIpis);
    }

    [Fact]
    public void Version_ReadThroughMsr()
    {
        Assert.Equal(0x0105_0014UL, TestApicHost.Create(x2Apic: true).Rdmsr(0x803));
    }

    [Fact]
    public void Ppr_ReadThroughMsr_FollowsTprAndIsr()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x808, 0x35);
        host.Service(0x41);
        Assert.Equal(0x40UL, host.Rdmsr(0x80A));
    }

    [Fact]
    public void NonApicMsr_Faults()
    {
        TestApicHost host = TestApicHost.Create(x2Apic: true);
        host.RdmsrFaults(0x10);
        host.WrmsrFaults(0x10, 0);
        host.RdmsrFaults(0xBD);
    }

    [Fact]
    public void Cr8_WriteAboveFourBitsFaults() // §5
    {
        TestApicHost host = TestApicHost.Create();
        Assert.Equal(ApicAccessResult.GeneralProtection, host.Apic.WriteCr8(0x10));
        Assert.Equal(ApicAccessResult.GeneralProtection, host.Apic.WriteCr8(1UL << 63));
        Assert.Equal(ApicAccessResult.Ok, host.Apic.WriteCr8(0xF));
        Assert.Equal(0xF0, host.Apic.TaskPriority);
    }

    [Fact]
    public void Cr8_WorksWhileGloballyDisabled()
    {
        TestApicHost host = TestApicHost.Create();
        host.Write(0x080, 0x70);
        host.Wrmsr(0x1B, 0xFEE0_0100);
        Assert.Equal(7UL, host.Apic.ReadCr8());
        Assert.Equal(ApicAccessResult.Ok, host.Apic.WriteCr8(3));
        host.Wrmsr(0x1B, 0xFEE0_0900);
        Assert.Equal(0x30u, host.Read(0x080)); // A15: the TPR written through CR8 survives re-enable
    }
}
