using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>
/// The interrupt-storm guard (KVM <c>__kvm_ioapic_update_eoi</c>, QEMU <c>ioapic_eoi_broadcast</c>):
/// 10 000 consecutive EOIs that find a level line still asserted defer the re-delivery by 10 ms.
/// </summary>
public sealed class IoApicStormTests
{
    private const int Threshold = 10_000;
    private const long DeferralNs = 10_000_000;

    private readonly FakeIoApicHost _host = new() { Record = false, Now = 5_000 };
    private readonly IoApic _ioApic;

    public IoApicStormTests()
    {
        _ioApic = new IoApic(_host);
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);
    }

    [Fact]
    public void Constants_MatchTheReference()
    {
        Assert.Equal(Threshold, IoApic.StormEoiThreshold);
        Assert.Equal(DeferralNs, IoApic.StormDeferralNs);
    }

    [Fact]
    public void EoisBelowThreshold_EachRedeliverImmediately()
    {
        Eoi(Threshold - 1);

        Assert.Equal(Threshold, _host.DeliverCalls); // the first assert plus 9 999 re-deliveries
        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
        Assert.Equal(0, _ioApic.Counters.StormDeferrals);
        Assert.Equal(0, _host.TimerChangedCalls);
    }

    [Fact]
    public void TenThousandthEoi_DefersRedeliveryByTenMilliseconds()
    {
        Eoi(Threshold);

        Assert.Equal(Threshold, _host.DeliverCalls);
        Assert.Equal(5_000 + DeferralNs, _ioApic.RetriggerDeadline);
        Assert.Equal(1, _ioApic.Counters.StormDeferrals);
        Assert.Equal(1, _host.TimerChangedCalls);
        Assert.Equal(0x0000_8030u, _ioApic.Read(0x10)); // Remote IRR cleared, nothing outstanding
    }

    [Fact]
    public void OnTimer_BeforeDeadline_DoesNothing()
    {
        Eoi(Threshold);
        _host.Now = 5_000 + DeferralNs - 1;

        _ioApic.OnTimer();

        Assert.Equal(Threshold, _host.DeliverCalls);
        Assert.Equal(5_000 + DeferralNs, _ioApic.RetriggerDeadline);
    }

    [Fact]
    public void OnTimer_AtDeadline_RedeliversAndClearsTheDeadline()
    {
        Eoi(Threshold);
        _host.Now = 5_000 + DeferralNs;

        _ioApic.OnTimer();

        Assert.Equal(Threshold + 1, _host.DeliverCalls);
        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
        Assert.Equal(2, _host.TimerChangedCalls);
        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
    }

    [Fact]
    public void OnTimer_LineDeassertedMeanwhile_SendsNothing()
    {
        Eoi(Threshold);
        _ioApic.SetLine(0, false);
        _host.Now += DeferralNs;

        _ioApic.OnTimer();

        Assert.Equal(Threshold, _host.DeliverCalls);
        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
    }

    [Fact]
    public void OnTimer_PinMaskedMeanwhile_SendsNothingUntilUnmasked()
    {
        Eoi(Threshold);
        _ioApic.Write(0x10, 0x0001_8030);
        _host.Now += DeferralNs;

        _ioApic.OnTimer();
        Assert.Equal(Threshold, _host.DeliverCalls);

        _ioApic.Write(0x10, 0x0000_8030);
        Assert.Equal(Threshold + 1, _host.DeliverCalls);
    }

    [Fact]
    public void CounterRestartsAfterDeferral()
    {
        Eoi(Threshold);
        _host.Now += DeferralNs;
        _ioApic.OnTimer();

        Eoi(Threshold - 1);
        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
        Eoi(1);

        Assert.Equal(2, _ioApic.Counters.StormDeferrals);
        Assert.Equal(_host.Now + DeferralNs, _ioApic.RetriggerDeadline);
    }

    [Fact]
    public void EoiFindingTheLineDeasserted_ResetsTheCounter()
    {
        Eoi(Threshold - 1);
        _ioApic.SetLine(0, false);
        Eoi(1);
        _ioApic.SetLine(0, true);

        Eoi(Threshold - 1);

        Assert.Equal(0, _ioApic.Counters.StormDeferrals);
        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
    }

    [Fact]
    public void EoiFindingThePinMasked_ResetsTheCounter()
    {
        Eoi(Threshold - 1);
        _ioApic.Write(0x10, 0x0001_8030);
        Eoi(1);
        _ioApic.Write(0x10, 0x0000_8030);

        Eoi(Threshold - 1);

        Assert.Equal(0, _ioApic.Counters.StormDeferrals);
    }

    [Fact]
    public void EoiRegister_CountsTowardsTheGuard()
    {
        for (int i = 0; i < Threshold; i++)
        {
            _ioApic.WriteMmio(IoApicGuest.Eoi, 0x30);
        }

        Assert.Equal(1, _ioApic.Counters.StormDeferrals);
        Assert.Equal(_host.Now + DeferralNs, _ioApic.RetriggerDeadline);
    }

    [Fact]
    public void TwoPinsDeferring_KeepTheEarlierDeadline_AndBothAreServicedByIt()
    {
        _ioApic.Write(0x12, 0x0000_8031);
        _ioApic.SetLine(1, true);
        Eoi(Threshold);
        long firstDeadline = _ioApic.RetriggerDeadline;
        _host.Now += DeferralNs / 2;

        for (int i = 0; i < Threshold; i++)
        {
            _ioApic.EndOfInterrupt(0x31);
        }

        Assert.Equal(firstDeadline, _ioApic.RetriggerDeadline);
        Assert.Equal(1, _host.TimerChangedCalls);
        int before = _host.DeliverCalls;

        _host.Now = firstDeadline;
        _ioApic.OnTimer();

        Assert.Equal(before + 2, _host.DeliverCalls);
        Assert.Equal(0x0000_C030u, _ioApic.Read(0x10));
        Assert.Equal(0x0000_C031u, _ioApic.Read(0x12));
    }

    [Fact]
    public void Reset_CancelsAPendingDeferral()
    {
        Eoi(Threshold);

        _ioApic.Reset();

        Assert.Equal(long.MaxValue, _ioApic.RetriggerDeadline);
        Assert.Equal(2, _host.TimerChangedCalls);
    }

    [Fact]
    public void Reset_ClearsTheCounter()
    {
        Eoi(Threshold - 1);
        _ioApic.Reset();
        _ioApic.Write(0x10, 0x0000_8030);
        _ioApic.SetLine(0, true);

        Eoi(Threshold - 1);

        Assert.Equal(0, _ioApic.Counters.StormDeferrals);
    }

    private void Eoi(int count)
    {
        for (int i = 0; i < count; i++)
        {
            _ioApic.EndOfInterrupt(0x30);
        }
    }
}
