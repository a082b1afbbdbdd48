using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>The APIC timer and TSC deadline (lapic-reference.md §9; §15 #59-#74).</summary>
public sealed class LocalApicTimerTests
{
    /// <summary>EN, LVT timer 0x30 one-shot, DCR as given (the "as 59" state).</summary>
    private static TestApicHost OneShot(uint dcr = 0xB, uint lvt = 0x30)
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Write(0x320, lvt);
        host.Write(0x3E0, dcr);
        return host;
    }

    [Fact]
    public void OneShot_Divide1_CountsDown() // §15 #59
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(250);
        Assert.Equal(750u, host.Read(0x390));
    }

    [Fact]
    public void OneShot_Divide2_CountsAtHalfRate() // §15 #60
    {
        TestApicHost host = OneShot(dcr: 0x0);
        host.Write(0x380, 1000);
        host.Advance(250);
        Assert.Equal(875u, host.Read(0x390));
    }

    [Fact]
    public void OneShot_Divide16_FiresAtN16() // §15 #61
    {
        TestApicHost host = OneShot(dcr: 0x3);
        host.Write(0x380, 1000);
        host.Advance(1600);
        Assert.Equal(900u, host.Read(0x390));
        host.Advance(14400);
        Assert.Equal(0u, host.Read(0x390));
        Assert.True(host.Apic.Irr.Get(0x30));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Fact]
    public void OneShot_Divide128_FiresAt1280() // §15 #62
    {
        TestApicHost host = OneShot(dcr: 0xA);
        host.Write(0x380, 10);
        host.Advance(1152);
        Assert.Equal(1u, host.Read(0x390));
        Assert.Equal(1280L, host.Apic.TimerDeadline);
        host.Advance(127);
        Assert.False(host.Apic.Irr.Get(0x30));
        host.Advance(1);
        Assert.True(host.Apic.Irr.Get(0x30));
        Assert.Equal(0u, host.Read(0x390));
    }

    [Theory] // Every DCR value: divisor, count after 3 ticks, and the expiry instant N × div.
    [InlineData(0x0u, 2)]
    [InlineData(0x1u, 4)]
    [InlineData(0x2u, 8)]
    [InlineData(0x3u, 16)]
    [InlineData(0x8u, 32)]
    [InlineData(0x9u, 64)]
    [InlineData(0xAu, 128)]
    [InlineData(0xBu, 1)]
    [InlineData(0x4u, 2)] // bit 2 is dropped: behaves as 0x0
    [InlineData(0xFu, 1)]
    public void EveryDivideValue_CountArithmetic(uint dcr, int divisor)
    {
        Assert.Equal(divisor, TimerDivide.Divisor(dcr & TimerDivide.WritableBits));
        TestApicHost host = OneShot(dcr: dcr);
        host.Write(0x380, 100);
        Assert.Equal(100L * divisor, host.Apic.TimerDeadline);
        Assert.Equal(100u, host.Read(0x390));
        host.Advance((3L * divisor) + divisor - 1); // 3 full ticks plus a partial one
        Assert.Equal(97u, host.Read(0x390));
        host.AdvanceTo((100L * divisor) - 1);
        Assert.Equal(1u, host.Read(0x390));
        Assert.True(host.Apic.Irr.IsEmpty);
        host.Advance(1);
        Assert.True(host.Apic.Irr.Get(0x30));
    }

    [Fact]
    public void Periodic_ReloadsAndFiresEveryPeriod() // §15 #63
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030);
        host.Write(0x380, 100);
        host.Advance(150);
        Assert.Equal(50u, host.Read(0x390));
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
        Assert.Equal(0x30, host.Apic.AcknowledgeInterrupt());
        host.Write(0x0B0, 0);
        host.Advance(100);
        Assert.Equal(50u, host.Read(0x390));
        Assert.Equal(2, host.Apic.Counters.TimerExpiries);
        Assert.True(host.Apic.Irr.Get(0x30));
        Assert.Equal(300L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void Periodic_AtExpiryInstant_ReadsReloadedCount()
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030, dcr: 0x1);
        host.Write(0x380, 10);
        host.AdvanceTo(40);
        Assert.Equal(10u, host.Read(0x390));
        host.AdvanceTo(41);
        Assert.Equal(10u, host.Read(0x390));
        host.AdvanceTo(44);
        Assert.Equal(9u, host.Read(0x390));
        Assert.Equal(80L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void Periodic_ExpiryFindingVectorInIrr_Merges()
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030);
        host.Write(0x380, 100);
        host.Advance(350);
        Assert.Equal(3, host.Apic.Counters.TimerExpiries);
        Assert.Equal(1, host.Apic.Counters.FixedAccepted);
        Assert.Equal(2, host.Apic.Counters.Merged);
        Assert.Equal(0x30, host.Apic.AcknowledgeInterrupt());
        Assert.Equal(-1, host.Apic.AcknowledgeInterrupt());
    }

    [Fact]
    public void ExpiredOneShot_SwitchedToPeriodic_IsNotRearmed() // §15 #64
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 100);
        host.Advance(150);
        host.Write(0x320, 0x0002_0030);
        host.Advance(150);
        Assert.Equal(0u, host.Read(0x390));
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void RunningOneShot_SwitchedToPeriodic_ReloadsAfterFirstExpiry() // §15 #65
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(400);
        host.Write(0x320, 0x0002_0030);
        host.Advance(50);
        Assert.Equal(550u, host.Read(0x390));
        host.AdvanceTo(999);
        Assert.Equal(0, host.Apic.Counters.TimerExpiries);
        host.AdvanceTo(1000);
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
        host.AdvanceTo(1100);
        Assert.Equal(900u, host.Read(0x390));
        Assert.Equal(2000L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void Periodic_SwitchedToOneShot_StopsAfterCurrentPeriod() // §9 mode change
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030);
        host.Write(0x380, 100);
        host.Advance(250);
        host.Write(0x320, 0x30);
        Assert.Equal(50u, host.Read(0x390));
        host.AdvanceTo(300);
        Assert.Equal(3, host.Apic.Counters.TimerExpiries);
        Assert.Equal(0u, host.Read(0x390));
        host.AdvanceTo(1000);
        Assert.Equal(3, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void DcrChangeWhileRunning_KeepsRemainingCount() // §15 #66 (A14)
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(400);
        host.Write(0x3E0, 0x0);
        host.Advance(200);
        Assert.Equal(500u, host.Read(0x390));
        Assert.Equal(1600L, host.Apic.TimerDeadline);
        host.AdvanceTo(1599);
        Assert.True(host.Apic.Irr.IsEmpty);
        host.AdvanceTo(1600);
        Assert.True(host.Apic.Irr.Get(0x30));
    }

    [Fact]
    public void DcrChange_PeriodicLaterPeriodsUseNewDivisor()
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030);
        host.Write(0x380, 100);
        host.Advance(40);
        host.Write(0x3E0, 0x1); // ÷4: 60 ticks left → 240 ns
        Assert.Equal(60u, host.Read(0x390));
        Assert.Equal(280L, host.Apic.TimerDeadline);
        host.AdvanceTo(280);
        Assert.Equal(680L, host.Apic.TimerDeadline);
        host.AdvanceTo(480);
        Assert.Equal(50u, host.Read(0x390));
    }

    [Fact]
    public void DcrChange_MidTick_ScalesThePartialTick()
    {
        TestApicHost host = OneShot(dcr: 0x1); // ÷4
        host.Write(0x380, 10);
        host.Advance(6); // 1 tick and 2 ns of the next
        Assert.Equal(9u, host.Read(0x390));
        host.Write(0x3E0, 0x2); // ÷8: 9 ticks of 8 ns, minus the 2/4 of a tick already elapsed (4 ns)
        Assert.Equal(6L + 72 - 4, host.Apic.TimerDeadline);
        Assert.Equal(9u, host.Read(0x390));
        host.Advance(3);
        Assert.Equal(9u, host.Read(0x390));
        host.Advance(1);
        Assert.Equal(8u, host.Read(0x390));
    }

    [Fact]
    public void DcrChange_WhenStopped_OnlyStores()
    {
        TestApicHost host = OneShot();
        int before = host.TimerChangedCount;
        host.Write(0x3E0, 0x3);
        Assert.Equal(before, host.TimerChangedCount);
        host.Write(0x380, 10);
        Assert.Equal(160L, host.Apic.TimerDeadline);
    }

    [Fact]
    public void TmictRewrite_RestartsFromTheWriteInstant() // §15 #67
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(300);
        host.Write(0x380, 500);
        host.Advance(100);
        Assert.Equal(400u, host.Read(0x390));
        host.AdvanceTo(5000);
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
        Assert.Equal(1, host.Apic.Counters.FixedAccepted);
    }

    [Fact]
    public void TmictZero_StopsTheTimer() // §15 #68
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(300);
        host.Write(0x380, 0);
        Assert.Equal(0u, host.Read(0x390));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        host.Advance(2000);
        Assert.Equal(0, host.Apic.Counters.TimerExpiries);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void MaskedExpiry_CountsButDeliversNothing()
    {
        TestApicHost host = OneShot(lvt: 0x0001_0030);
        host.Write(0x380, 100);
        host.Advance(100);
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(1, host.Apic.Counters.TimerExpiriesMasked);
        Assert.Equal(100u, host.Read(0x380));
    }

    [Fact]
    public void SoftwareDisable_TimerKeepsCountingWithoutInterrupts() // §6
    {
        TestApicHost host = OneShot(lvt: 0x0002_0030);
        host.Write(0x380, 100);
        host.Write(0x0F0, 0xFF);
        host.Advance(250);
        Assert.Equal(50u, host.Read(0x390));
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(2, host.Apic.Counters.TimerExpiriesMasked);
    }

    [Fact]
    public void TimerNotifications_OnArmExpiryAndDisarm()
    {
        TestApicHost host = OneShot();
        int before = host.TimerChangedCount;
        host.Write(0x380, 100);
        Assert.Equal(before + 1, host.TimerChangedCount);
        host.Advance(100);
        Assert.Equal(before + 2, host.TimerChangedCount);
        host.Write(0x380, 100);
        host.Write(0x380, 0);
        Assert.Equal(before + 4, host.TimerChangedCount);
    }

    [Fact]
    public void OnTimer_BeforeDeadline_DoesNothing()
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 100);
        host.Now = 99;
        host.Apic.OnTimer();
        Assert.Equal(100L, host.Apic.TimerDeadline);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void BusCycle_ScalesTheTick()
    {
        TestApicHost host = TestApicHost.Create(busCycleNs: 10);
        host.Write(0x0F0, 0x1FF);
        host.Write(0x320, 0x30);
        host.Write(0x3E0, 0x0); // ÷2 → 20 ns per tick
        host.Write(0x380, 50);
        Assert.Equal(1000L, host.Apic.TimerDeadline);
        host.Advance(419);
        Assert.Equal(30u, host.Read(0x390));
    }

    [Fact]
    public void TscDeadline_InThePast_FiresAtOnce() // §15 #69
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Now = 1000;
        host.Wrmsr(0x6E0, 500);
        Assert.True(host.Apic.Irr.Get(0xEF));
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Fact]
    public void TscDeadline_FiresExactlyAtDeadline() // §15 #70
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Now = 1000;
        host.Wrmsr(0x6E0, 5000);
        Assert.Equal(5000UL, host.Rdmsr(0x6E0));
        Assert.Equal(5000L, host.Apic.TimerDeadline);
        host.AdvanceTo(4999);
        Assert.True(host.Apic.Irr.IsEmpty);
        host.AdvanceTo(5001);
        Assert.True(host.Apic.Irr.Get(0xEF));
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void TscDeadline_OutsideDeadlineMode_IgnoredAndReadsZero() // §15 #71
    {
        TestApicHost host = OneShot();
        host.Wrmsr(0x6E0, 5000);
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        host.AdvanceTo(10000);
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(0, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void TscDeadlineMode_TmictIgnoredAndCountsReadZero() // §15 #72
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Write(0x380, 1000);
        Assert.Equal(0u, host.Read(0x380));
        Assert.Equal(0u, host.Read(0x390));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
    }

    [Fact]
    public void LeavingTscDeadlineMode_Disarms() // §15 #73
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Wrmsr(0x6E0, 5000);
        host.AdvanceTo(2000);
        host.Write(0x320, 0x30);
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        Assert.Equal(0UL, host.Apic.TscDeadline);
        host.AdvanceTo(6000);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void TscDeadlineZero_Disarms() // §15 #74
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Wrmsr(0x6E0, 5000);
        host.AdvanceTo(1000);
        host.Wrmsr(0x6E0, 0);
        host.AdvanceTo(6000);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void EnteringTscDeadlineMode_StopsOneShotAndZeroesTmict()
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 1000);
        host.Advance(100);
        host.Write(0x320, 0x0004_0030);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        host.Write(0x320, 0x30);
        Assert.Equal(0u, host.Read(0x380));
        Assert.Equal(0u, host.Read(0x390));
        host.AdvanceTo(5000);
        Assert.True(host.Apic.Irr.IsEmpty);
    }

    [Fact]
    public void TscDeadline_Retarget_MovesTheExpiry()
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Wrmsr(0x6E0, 5000);
        host.Wrmsr(0x6E0, 3000);
        Assert.Equal(3000L, host.Apic.TimerDeadline);
        host.AdvanceTo(3000);
        Assert.True(host.Apic.Irr.Get(0xEF));
        host.AdvanceTo(6000);
        Assert.Equal(1, host.Apic.Counters.TimerExpiries);
    }

    [Fact]
    public void TscDeadline_MaskedAtDeadline_StillDisarms()
    {
        TestApicHost host = OneShot(lvt: 0x0005_00EF);
        host.Wrmsr(0x6E0, 100);
        host.AdvanceTo(100);
        Assert.True(host.Apic.Irr.IsEmpty);
        Assert.Equal(0UL, host.Rdmsr(0x6E0));
        Assert.Equal(1, host.Apic.Counters.TimerExpiriesMasked);
    }

    [Fact]
    public void TscDeadline_FollowsTscOffset()
    {
        TestApicHost host = OneShot(lvt: 0x0004_00EF);
        host.Apic.TscOffset = 10_000;
        host.Wrmsr(0x6E0, 10_500);
        Assert.Equal(500L, host.Apic.TimerDeadline);
        host.Apic.TscOffset = 10_200;
        Assert.Equal(300L, host.Apic.TimerDeadline);
        host.AdvanceTo(300);
        Assert.True(host.Apic.Irr.Get(0xEF));
    }

    [Fact]
    public void TscDeadline_X2ApicMode_SameBehaviour()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x832, 0x0004_00EF);
        host.Wrmsr(0x6E0, 700);
        host.AdvanceTo(700);
        Assert.True(host.Apic.Irr.Get(0xEF));
    }

    [Fact]
    public void ReservedTimerMode_IsStoredAndInert()
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 100);
        host.Write(0x320, 0x0006_0030);
        Assert.Equal(0x0006_0030u, host.Read(0x320));
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        host.Write(0x380, 50);
        Assert.Equal(long.MaxValue, host.Apic.TimerDeadline);
        Assert.Equal(0u, host.Read(0x390));
    }

    [Fact]
    public void X2Apic_TimerRegisters_WorkThroughMsrs()
    {
        TestApicHost host = TestApicHost.CreateEnabled(x2Apic: true);
        host.Wrmsr(0x832, 0x30);
        host.Wrmsr(0x83E, 0x3);
        host.Wrmsr(0x838, 1000);
        host.Advance(1600);
        Assert.Equal(900UL, host.Rdmsr(0x839));
        Assert.Equal(1000UL, host.Rdmsr(0x838));
    }

    [Fact]
    public void GloballyDisabled_ExpiryDeliversNothing()
    {
        TestApicHost host = OneShot();
        host.Write(0x380, 100);
        host.Wrmsr(0x1B, 0xFEE0_0100);
        host.AdvanceTo(200);
        Assert.Equal(1, host.Apic.Counters.TimerExpiriesMasked);
        host.Wrmsr(0x1B, 0xFEE0_0900);
        Assert.True(host.Apic.Irr.IsEmpty);
    }
}
