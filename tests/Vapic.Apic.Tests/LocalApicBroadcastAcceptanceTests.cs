using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>
/// <see cref="LocalApic.BroadcastGroup.AcceptFixed"/>: a fixed message accepted at a whole set of
/// APICs at once must leave each exactly as <see cref="LocalApic.AcceptInterrupt"/> would
/// (lapic-reference §5 acceptance, §6 software disable; SDM "Interrupt Acceptance for Fixed Interrupts").
/// </summary>
public sealed class LocalApicBroadcastAcceptanceTests
{
    private enum State
    {
        Enabled,
        Pending,
        PendingLevel,
        SoftwareDisabled,
        GloballyDisabled,
        X2Apic,
    }

    private static readonly State[] States =
        [State.Enabled, State.Pending, State.PendingLevel, State.SoftwareDisabled, State.GloballyDisabled, State.X2Apic, State.Enabled];

    private static LocalApic[] Build(byte vector)
    {
        var apics = new LocalApic[States.Length];
        for (int i = 0; i < States.Length; i++)
        {
            TestApicHost host = States[i] switch
            {
                State.SoftwareDisabled => TestApicHost.Create(id: (uint)i, bsp: false),
                State.X2Apic => TestApicHost.CreateEnabled(id: (uint)i, x2Apic: true),
                _ => TestApicHost.CreateEnabled(id: (uint)i),
            };
            if (States[i] == State.GloballyDisabled)
            {
                host.Wrmsr(0x1B, host.Apic.BaseMsr & ~(1UL << 11));
                Assert.Equal(ApicMode.Disabled, host.Apic.Mode);
            }

            if (vector >= 16 && States[i] is State.Pending or State.PendingLevel)
            {
                Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, States[i] == State.PendingLevel));
            }

            apics[i] = host.Apic;
        }

        return apics;
    }

    private static object[] Snapshot(LocalApic apic)
    {
        LocalApicCounters c = apic.Counters;
        return
        [
            apic.Irr, apic.Tmr, apic.Isr, apic.PendingErrors, apic.PendingEvents, c.FixedAccepted, c.Merged,
            c.DroppedSoftwareDisabled, c.DroppedIllegalVector, c.DroppedGloballyDisabled, c.DroppedReservedMode,
            c.EventsLatched, c.ErrorsRaised,
        ];
    }

    [Theory]
    [InlineData(0x20, false)]
    [InlineData(0x41, false)]
    [InlineData(0x41, true)]
    [InlineData(0x7F, true)]
    [InlineData(0x80, false)]
    [InlineData(0xFF, true)]
    [InlineData(0x0F, false)]
    [InlineData(0x00, true)]
    public void Broadcast_LeavesEveryApicAsPerTargetAcceptanceDoes(byte vector, bool level)
    {
        LocalApic[] broadcast = Build(vector);
        LocalApic[] perTarget = Build(vector);

        int accepted = Broadcast(broadcast, vector, level);

        int expected = 0;
        foreach (LocalApic apic in perTarget)
        {
            if (apic.AcceptInterrupt(DeliveryMode.Fixed, vector, level))
            {
                expected++;
            }
        }

        Assert.Equal(expected, accepted);
        for (int i = 0; i < States.Length; i++)
        {
            Assert.Equal(Snapshot(perTarget[i]), Snapshot(broadcast[i]));
        }
    }

    [Fact]
    public void Broadcast_SetsIrrAndTmrCountsMergesAndDrops()
    {
        const byte vector = 0x41;
        LocalApic[] apics = Build(vector);

        // Edge: the three enabled APICs without the vector take it, the two with it merge (the
        // level one's TMR bit is cleared: TMR follows the latest request), the disabled ones drop it.
        Assert.Equal(5, Broadcast(apics, vector, levelTriggered: false));
        for (int i = 0; i < apics.Length; i++)
        {
            LocalApicCounters c = apics[i].Counters;
            bool takes = States[i] is not (State.SoftwareDisabled or State.GloballyDisabled);
            Assert.Equal(takes, apics[i].Irr.Get(vector));
            Assert.False(apics[i].Tmr.Get(vector));
            Assert.Equal(takes ? 1 : 0, c.FixedAccepted); // the pending ones count their first acceptance
            Assert.Equal(States[i] is State.Pending or State.PendingLevel ? 1 : 0, c.Merged);
            Assert.Equal(States[i] == State.SoftwareDisabled ? 1 : 0, c.DroppedSoftwareDisabled);
            Assert.Equal(States[i] == State.GloballyDisabled ? 1 : 0, c.DroppedGloballyDisabled);
        }

        // Level, now that every enabled APIC has it pending: all merge and TMR is set.
        Assert.Equal(5, Broadcast(apics, vector, levelTriggered: true));
        for (int i = 0; i < apics.Length; i++)
        {
            bool takes = States[i] is not (State.SoftwareDisabled or State.GloballyDisabled);
            Assert.Equal(takes, apics[i].Tmr.Get(vector));
            Assert.Equal(takes ? (States[i] is State.Pending or State.PendingLevel ? 2 : 1) : 0, apics[i].Counters.Merged);
        }
    }

    [Fact]
    public void Broadcast_IllegalVector_SetsReceiveIllegalVectorAtEachTarget()
    {
        LocalApic[] apics = Build(0x05);

        Assert.Equal(0, Broadcast(apics, 0x05, levelTriggered: false));

        for (int i = 0; i < apics.Length; i++)
        {
            bool enabled = States[i] != State.GloballyDisabled;
            Assert.True(apics[i].Irr.IsEmpty);
            Assert.Equal(enabled ? 1 : 0, apics[i].Counters.DroppedIllegalVector);
            Assert.Equal(enabled ? ApicRegister.ErrorReceiveIllegalVector : 0u, apics[i].PendingErrors);
        }
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(0, 3)]
    [InlineData(2, 4)]
    [InlineData(6, 1)]
    public void Broadcast_ToARange_ChangesOnlyThoseApics(int start, int count)
    {
        const byte vector = 0x41;
        LocalApic[] apics = Build(vector);
        LocalApic[] untouched = Build(vector);
        var group = new LocalApic.BroadcastGroup(apics);

        int accepted = group.AcceptFixed(start, count, vector, levelTriggered: false);

        int expected = 0;
        for (int i = 0; i < apics.Length; i++)
        {
            bool inRange = i >= start && i < start + count;
            if (inRange && untouched[i].AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered: false))
            {
                expected++;
            }

            Assert.Equal(Snapshot(untouched[i]), Snapshot(apics[i]));
        }

        Assert.Equal(expected, accepted);
    }

    [Fact]
    public void Group_KeepsTheApicsInOrder()
    {
        LocalApic[] apics = Build(0x41);
        var group = new LocalApic.BroadcastGroup(apics);

        Assert.Equal(apics.Length, group.Count);
        Assert.True(group.Apics.SequenceEqual(apics));
        Assert.Equal(0, new LocalApic.BroadcastGroup([]).AcceptFixed(0, 0, 0x41, levelTriggered: false));
    }

    private static int Broadcast(LocalApic[] apics, byte vector, bool levelTriggered) =>
        new LocalApic.BroadcastGroup(apics).AcceptFixed(0, apics.Length, vector, levelTriggered);
}
