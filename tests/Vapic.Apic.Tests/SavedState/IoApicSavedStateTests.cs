using System.Collections.Immutable;
using Vapic.Apic.SavedState;
using Xunit;

namespace Vapic.Apic.Tests.SavedState;

/// <summary>IoApic.Save / Restore: round trip at another time, and one refusal per validation rule.</summary>
public sealed class IoApicSavedStateTests
{
    [Fact]
    public void Save_AfterReset_HoldsTheResetValues()
    {
        // 82093AA / KVM kvm_ioapic_reset: every entry masked (0x0001_0000), ID 0, IOREGSEL 0.
        var ioApic = new IoApic(new RecordingIoApicHost());
        IoApicState s = ioApic.Save();

        Assert.Equal(0x20, s.Version);
        Assert.Equal(24, s.PinCount);
        Assert.Equal(0u, s.Id);
        Assert.Equal(0, s.RegisterSelect);
        Assert.Null(s.RetriggerInNs);
        Assert.All(s.Pins, p => Assert.Equal(new IoApicPinState(0x0001_0000, false, 0), p));
    }

    [Fact]
    public void Restore_AtAnotherTime_KeepsEntriesLinesStormCountsAndTheDeferredRedelivery()
    {
        (IoApic source, RecordingIoApicHost sourceHost) = Busy();
        IoApicState state = source.Save();
        Assert.Equal(IoApic.StormDeferralNs, state.RetriggerInNs);
        Assert.Equal(5, state.Pins[11].SuccessiveEois);

        var targetHost = new RecordingIoApicHost { Now = 3_000_000_000 };
        var target = new IoApic(targetHost);
        Assert.Equal(SavedStateResult.Success, target.Restore(state));

        // Restoring sends nothing: lines and Remote IRR come back as they were.
        Assert.Empty(targetHost.Delivered);
        Assert.Equal(1, targetHost.TimerChangedCalls);
        Assert.Equal(state, target.Save());
        Assert.Equal(3_000_000_000 + IoApic.StormDeferralNs, target.RetriggerDeadline);
        Assert.Equal(0x0500_0000u, target.ReadRegister(0x00));
        Assert.Equal(0x12, target.RegisterSelect);
        for (int pin = 0; pin < 24; pin++)
        {
            Assert.Equal(source.GetRedirectionEntry(pin), target.GetRedirectionEntry(pin));
            Assert.Equal(source.GetLine(pin), target.GetLine(pin));
        }

        // Both continue alike: the deferred re-delivery fires 10 ms after the storm, relative to each clock.
        sourceHost.Delivered.Clear();
        sourceHost.Now += IoApic.StormDeferralNs;
        targetHost.Now += IoApic.StormDeferralNs;
        source.OnTimer();
        target.OnTimer();
        Assert.Equal(sourceHost.Delivered, targetHost.Delivered);
        Assert.Single(targetHost.Delivered);
        Assert.Equal(0x45, targetHost.Delivered[0].Vector);
    }

    private sealed record RefusalCase(Func<IoApic> Create, Func<IoApicState, IoApicState> Mutate, SavedStateError Error, string Field);

    private static readonly Dictionary<string, RefusalCase> s_refusals = new()
    {
        ["version differs"] = new(() => Busy().IoApic, s => s with { Version = 0x11 }, SavedStateError.ConfigurationMismatch, "Version"),
        ["pin count differs"] = new(() => Busy().IoApic, s => s with { Pins = s.Pins.RemoveAt(23) }, SavedStateError.ConfigurationMismatch, "PinCount"),
        ["no pins"] = new(() => Busy().IoApic, s => s with { Pins = default }, SavedStateError.Missing, "Pins"),
        ["ID bits outside 27:24"] = new(() => Busy().IoApic, s => s with { Id = 0x1500_0000 }, SavedStateError.ReservedBits, "Id"),
        ["delivery status"] = new(() => Busy().IoApic, s => WithPin(s, 4, p => p with { RedirectionEntry = p.RedirectionEntry | (1UL << 12) }), SavedStateError.ReservedBits, "Pins[4].RedirectionEntry"),
        ["remote IRR on edge"] = new(() => Busy().IoApic, s => WithPin(s, 2, p => p with { RedirectionEntry = 0x4031 }), SavedStateError.Inconsistent, "Pins[2].RedirectionEntry"),
        ["storm count at threshold"] = new(() => Busy().IoApic, s => WithPin(s, 9, p => p with { SuccessiveEois = IoApic.StormEoiThreshold }), SavedStateError.InvalidValue, "Pins[9].SuccessiveEois"),
        ["negative storm count"] = new(() => Busy().IoApic, s => WithPin(s, 0, p => p with { SuccessiveEois = -1 }), SavedStateError.InvalidValue, "Pins[0].SuccessiveEois"),
        ["re-delivery beyond the end of time"] = new(() => Busy().IoApic, s => s with { RetriggerInNs = long.MaxValue }, SavedStateError.TimeOutOfRange, "RetriggerInNs"),
        ["version 0x11 state into 0x20"] = new(() => new IoApic(new RecordingIoApicHost()), s => s with { Version = 0x11 }, SavedStateError.ConfigurationMismatch, "Version"),
    };

    public static TheoryData<string> RefusalNames => new(s_refusals.Keys);

    [Theory]
    [MemberData(nameof(RefusalNames))]
    public void Restore_RefusesTheStateAndChangesNothing(string name)
    {
        RefusalCase c = s_refusals[name];
        IoApic ioApic = c.Create();
        IoApicState before = ioApic.Save();

        SavedStateResult result = ioApic.Restore(c.Mutate(before));

        Assert.Equal((c.Error, c.Field), (result.Error, result.Field));
        Assert.Equal(before, ioApic.Save());
    }

    [Fact]
    public void Restore_IntoAnIoApicWithFewerPins_IsAConfigurationMismatch()
    {
        IoApicState state = Busy().IoApic.Save();
        var small = new IoApic(new RecordingIoApicHost(), pinCount: 16);
        IoApicState before = small.Save();

        SavedStateResult result = small.Restore(state);

        Assert.Equal((SavedStateError.ConfigurationMismatch, "PinCount"), (result.Error, result.Field));
        Assert.Equal(before, small.Save());
    }

    [Fact]
    public void Restore_Null_IsMissing()
    {
        var ioApic = new IoApic(new RecordingIoApicHost());
        Assert.Equal(SavedStateError.Missing, ioApic.Restore(null!).Error);
    }

    [Fact]
    public void States_CompareByValue()
    {
        IoApicState a = Busy().IoApic.Save();
        IoApicState b = Busy().IoApic.Save();
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, WithPin(b, 3, p => p with { LineAsserted = !p.LineAsserted }));
    }

    /// <summary>
    /// An IOAPIC with ID 5, IOREGSEL 0x12, an edge entry, a level entry with Remote IRR and its line
    /// asserted, an asserted masked line, a storm deferral pending on pin 9 (vector 0x45) and a storm
    /// count of 5 on pin 11.
    /// </summary>
    private static (IoApic IoApic, RecordingIoApicHost Host) Busy()
    {
        var host = new RecordingIoApicHost { Now = 50_000 };
        var ioApic = new IoApic(host);
        ioApic.WriteRegister(0x00, 0x0500_0000);
        ioApic.WriteRegister(0x10 + (2 * 2), 0x0031);             // pin 2: edge, vector 0x31
        ioApic.WriteRegister(0x11 + (2 * 2), 0x0100_0000);
        ioApic.WriteRegister(0x10 + (2 * 4), 0xA042);             // pin 4: level, logical, vector 0x42
        ioApic.SetLine(4, true);                                   // delivered: Remote IRR set
        ioApic.SetLine(7, true);                                   // pin 7 stays masked
        ioApic.WriteRegister(0x10 + (2 * 9), 0x8045);             // pin 9: level, vector 0x45
        ioApic.SetLine(9, true);
        for (int i = 0; i < IoApic.StormEoiThreshold; i++)
        {
            ioApic.EndOfInterrupt(0x45);                           // the guest EOIs without quieting the line
        }

        ioApic.WriteRegister(0x10 + (2 * 11), 0x8047);            // pin 11: level, vector 0x47, five EOIs into a storm
        ioApic.SetLine(11, true);
        for (int i = 0; i < 5; i++)
        {
            ioApic.EndOfInterrupt(0x47);
        }

        Assert.Equal(ApicAccessResult.Ok, ioApic.WriteMmio(IoApic.DefaultBase, 0x12));
        return (ioApic, host);
    }

    private static IoApicState WithPin(IoApicState state, int pin, Func<IoApicPinState, IoApicPinState> change) =>
        state with { Pins = state.Pins.SetItem(pin, change(state.Pins[pin])) };
}

/// <summary>An IOAPIC host that records messages and accepts each one (as one LAPIC would).</summary>
internal sealed class RecordingIoApicHost : IIoApicHost
{
    public List<InterruptMessage> Delivered { get; } = [];

    public int TimerChangedCalls { get; private set; }

    public long Now { get; set; }

    public int Deliver(in InterruptMessage message)
    {
        Delivered.Add(message);
        return 1;
    }

    public void TimerChanged(IoApic ioApic) => TimerChangedCalls++;
}
