using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// Fixed broadcasts (the shorthands "all including self" and "all excluding self", physical
/// 0xFFFF_FFFF and 0xFF) are delivered by a loop over the LAPICs instead of one acceptance per
/// routed target. These tests deliver each kind of broadcast to a machine whose LAPICs are in every
/// state acceptance distinguishes, and check the outcome twice: against the architecture (who
/// takes it, who merges, who drops it and why; lapic-reference.md §5, §6, §10) and against the same
/// message accepted target by target through <see cref="LocalApic.AcceptInterrupt"/> on an
/// identical machine (IRR, TMR, ISR, ESR, latched events and every counter, bit for bit).
/// </summary>
public sealed class BroadcastDeliveryTests
{
    /// <summary>What a broadcast does at one LAPIC.</summary>
    public enum Outcome
    {
        /// <summary>Not a destination: nothing changes.</summary>
        NotNamed,

        /// <summary>IRR bit newly set (counted as accepted).</summary>
        Accepted,

        /// <summary>The vector was already in IRR: the request collapses into it (counted as merged).</summary>
        Merged,

        /// <summary>SVR[8] = 0: fixed interrupts are dropped (SDM "Local APIC State After It Has Been Software Disabled").</summary>
        DroppedSoftwareDisabled,

        /// <summary>IA32_APIC_BASE EN = 0: the LAPIC refuses every message.</summary>
        DroppedGloballyDisabled,

        /// <summary>Vector below 16: refused with ESR bit 6 (SDM "Error Handling", Receive Illegal Vector).</summary>
        DroppedIllegalVector,
    }

    /// <summary>
    /// The machine: ten vCPUs, x2APIC IDs 0..8 and 0xFF, each LAPIC in one of the states below.
    /// The vector of the broadcast is already pending at the "pending" ones (edge, or level for
    /// vCPU 2 so that an edge broadcast must clear its TMR bit).
    /// </summary>
    private static readonly uint[] Ids = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0xFF];

    private enum State
    {
        X2Apic,
        X2ApicPending,
        X2ApicPendingLevel,
        X2ApicSoftwareDisabled,
        GloballyDisabled,
        XApic,
        XApicPending,
        XApicSoftwareDisabled,
    }

    private static readonly State[] States =
    [
        State.X2Apic,                 // 0
        State.X2ApicPending,          // 1
        State.X2ApicPendingLevel,     // 2
        State.X2ApicSoftwareDisabled, // 3
        State.GloballyDisabled,       // 4
        State.XApic,                  // 5
        State.XApicPending,           // 6
        State.XApicSoftwareDisabled,  // 7
        State.GloballyDisabled,       // 8
        State.X2Apic,                 // 9: x2APIC ID 0xFF
    ];

    private const int X2ApicIdFF = 9;

    private static VirtualMachine BuildMachine(byte vector)
    {
        // An ID above 0xFE makes every LAPIC start in x2APIC mode; xAPIC ones are switched back.
        VirtualMachine machine = NewMachine(Ids.Length, ids: Ids);
        for (int i = 0; i < Ids.Length; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            switch (States[i])
            {
                case State.GloballyDisabled:
                    cpu.DisableGlobally();
                    continue;
                case State.XApic or State.XApicPending or State.XApicSoftwareDisabled:
                    cpu.EnterXApic();
                    break;
            }

            if (States[i] is not (State.X2ApicSoftwareDisabled or State.XApicSoftwareDisabled))
            {
                cpu.EnableSoftware();
            }

            if (vector >= 16 && States[i] is State.X2ApicPending or State.XApicPending or State.X2ApicPendingLevel)
            {
                Assert.True(cpu.Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, States[i] == State.X2ApicPendingLevel));
            }
        }

        Assert.Equal(ApicMode.XApic, machine.GetVcpu(5).Mode());
        Assert.Equal(ApicMode.Disabled, machine.GetVcpu(4).Mode());
        Assert.Equal(ApicMode.X2Apic, machine.GetVcpu(X2ApicIdFF).Mode());
        return machine;
    }

    public enum Kind
    {
        AllIncludingSelf,
        AllExcludingSelf,
        PhysicalX2ApicBroadcast,
        PhysicalXApicBroadcast,
        PhysicalXApicBroadcastLowestPriority,
    }

    private static InterruptMessage Message(Kind kind, byte vector, bool level, int sender) => new(
        vector,
        kind == Kind.PhysicalXApicBroadcastLowestPriority ? DeliveryMode.LowestPriority : DeliveryMode.Fixed,
        DestinationMode.Physical,
        kind switch
        {
            Kind.PhysicalX2ApicBroadcast => InterruptMessage.X2ApicBroadcast,
            Kind.PhysicalXApicBroadcast or Kind.PhysicalXApicBroadcastLowestPriority => InterruptMessage.XApicBroadcast,
            _ => 0x05, // ignored with a shorthand
        },
        kind switch
        {
            Kind.AllIncludingSelf => DestinationShorthand.AllIncludingSelf,
            Kind.AllExcludingSelf => DestinationShorthand.AllExcludingSelf,
            _ => DestinationShorthand.None,
        },
        LevelTriggered: level,
        Assert: true,
        RedirectionHint: false,
        InterruptSource.Ipi,
        SourceVcpu: sender);

    /// <summary>
    /// The destinations of <paramref name="kind"/> (lapic-reference §10): a shorthand names every
    /// vCPU (but the sender), globally disabled ones included; 0xFFFF_FFFF every x2APIC-mode LAPIC;
    /// 0xFF every xAPIC-mode LAPIC and the x2APIC-mode LAPIC whose ID is 0xFF, as fixed even when
    /// the message asks for lowest priority (A21).
    /// </summary>
    private static bool Named(Kind kind, int cpu, int sender) => kind switch
    {
        Kind.AllIncludingSelf => true,
        Kind.AllExcludingSelf => cpu != sender,
        Kind.PhysicalX2ApicBroadcast => States[cpu] is State.X2Apic or State.X2ApicPending or State.X2ApicPendingLevel or State.X2ApicSoftwareDisabled,
        _ => States[cpu] is State.XApic or State.XApicPending or State.XApicSoftwareDisabled || cpu == X2ApicIdFF,
    };

    private static Outcome Expected(Kind kind, int cpu, int sender, byte vector)
    {
        if (!Named(kind, cpu, sender))
        {
            return Outcome.NotNamed;
        }

        return States[cpu] switch
        {
            State.GloballyDisabled => Outcome.DroppedGloballyDisabled,
            _ when vector < 16 => Outcome.DroppedIllegalVector,
            State.X2ApicSoftwareDisabled or State.XApicSoftwareDisabled => Outcome.DroppedSoftwareDisabled,
            State.X2ApicPending or State.X2ApicPendingLevel or State.XApicPending => Outcome.Merged,
            _ => Outcome.Accepted,
        };
    }

    /// <summary>Everything acceptance can change at one LAPIC.</summary>
    private readonly record struct ApicSnapshot(
        InterruptBitmap Irr,
        InterruptBitmap Tmr,
        InterruptBitmap Isr,
        uint PendingErrors,
        ApicEvents PendingEvents,
        long FixedAccepted,
        long Merged,
        long DroppedSoftwareDisabled,
        long DroppedIllegalVector,
        long DroppedGloballyDisabled,
        long DroppedReservedMode,
        long EventsLatched,
        long ErrorsRaised)
    {
        public static ApicSnapshot Of(LocalApic apic)
        {
            LocalApicCounters c = apic.Counters;
            return new(apic.Irr, apic.Tmr, apic.Isr, apic.PendingErrors, apic.PendingEvents, c.FixedAccepted, c.Merged,
                c.DroppedSoftwareDisabled, c.DroppedIllegalVector, c.DroppedGloballyDisabled, c.DroppedReservedMode,
                c.EventsLatched, c.ErrorsRaised);
        }
    }

    public static TheoryData<Kind, byte, bool, int> Cases()
    {
        var data = new TheoryData<Kind, byte, bool, int>();
        foreach (Kind kind in Enum.GetValues<Kind>())
        {
            // Vectors in IRR words 0, 1 and 3, and an illegal one.
            foreach (byte vector in new byte[] { 0x20, 0x41, 0xFE, 0x0E })
            {
                foreach (bool level in new[] { false, true })
                {
                    data.Add(kind, vector, level, 0);
                }
            }
        }

        // "All excluding self" from a sender in every position, and from no vCPU at all.
        foreach (int sender in new[] { 1, 4, 6, 9, -1 })
        {
            data.Add(Kind.AllExcludingSelf, 0x41, false, sender);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Broadcast_MatchesTheArchitectureAndPerTargetAcceptance(Kind kind, byte vector, bool level, int sender)
    {
        InterruptMessage message = Message(kind, vector, level, sender);
        VirtualMachine machine = BuildMachine(vector);
        VirtualMachine reference = BuildMachine(vector);
        var before = new ApicSnapshot[Ids.Length];
        for (int i = 0; i < Ids.Length; i++)
        {
            before[i] = ApicSnapshot.Of(machine.GetVcpu(i).Apic);
            Assert.Equal(before[i], ApicSnapshot.Of(reference.GetVcpu(i).Apic));
        }

        int result = machine.Deliver(in message);

        int expectedResult = 0;
        for (int i = 0; i < Ids.Length; i++)
        {
            if (Named(kind, i, sender) &&
                reference.GetVcpu(i).Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, level))
            {
                expectedResult++;
            }
        }

        Assert.Equal(expectedResult, result);
        for (int i = 0; i < Ids.Length; i++)
        {
            ApicSnapshot after = ApicSnapshot.Of(machine.GetVcpu(i).Apic);
            Assert.Equal(ApicSnapshot.Of(reference.GetVcpu(i).Apic), after);
            AssertOutcome(Expected(kind, i, sender, vector), before[i], after, vector, level);
        }

        Assert.Equal(0, machine.Counters.NoDestination);
    }

    private static void AssertOutcome(Outcome outcome, ApicSnapshot before, ApicSnapshot after, byte vector, bool level)
    {
        ApicSnapshot unchanged = before;
        switch (outcome)
        {
            case Outcome.NotNamed:
                Assert.Equal(unchanged, after);
                break;
            case Outcome.Accepted:
                Assert.False(before.Irr.Get(vector));
                Assert.True(after.Irr.Get(vector));
                Assert.Equal(level, after.Tmr.Get(vector));
                Assert.Equal(before.FixedAccepted + 1, after.FixedAccepted);
                Assert.Equal(before.Merged, after.Merged);
                break;
            case Outcome.Merged:
                Assert.True(after.Irr.Get(vector));
                Assert.Equal(before.Irr, after.Irr);
                Assert.Equal(level, after.Tmr.Get(vector)); // TMR follows the latest request
                Assert.Equal(before.FixedAccepted, after.FixedAccepted);
                Assert.Equal(before.Merged + 1, after.Merged);
                break;
            case Outcome.DroppedSoftwareDisabled:
                Assert.Equal(unchanged with { DroppedSoftwareDisabled = before.DroppedSoftwareDisabled + 1 }, after);
                break;
            case Outcome.DroppedGloballyDisabled:
                Assert.Equal(unchanged with { DroppedGloballyDisabled = before.DroppedGloballyDisabled + 1 }, after);
                break;
            case Outcome.DroppedIllegalVector:
                Assert.Equal(before.Irr, after.Irr);
                Assert.Equal(before.DroppedIllegalVector + 1, after.DroppedIllegalVector);
                Assert.NotEqual(0u, after.PendingErrors & 0x40); // ESR bit 6, visible after the next ESR write
                break;
        }
    }

    [Fact]
    public void AllExcludingSelf_OnOneVcpuMachine_HasNoDestination()
    {
        VirtualMachine machine = NewMachine(1);
        machine.EnableAll();
        InterruptMessage message = Message(Kind.AllExcludingSelf, 0x41, false, sender: 0);

        Assert.Equal(-1, machine.Deliver(in message));
        Assert.Equal(1, machine.Counters.NoDestination);
        Assert.True(machine.GetVcpu(0).IrrEmpty());
    }

    [Fact]
    public void PhysicalX2ApicBroadcast_WithOnlyXApicLapics_HasNoDestination()
    {
        VirtualMachine machine = NewMachine(2);
        machine.EnableAll();
        Assert.Equal(ApicMode.XApic, machine.GetVcpu(1).Mode());
        InterruptMessage message = Message(Kind.PhysicalX2ApicBroadcast, 0x41, false, sender: 0);

        Assert.Equal(-1, machine.Deliver(in message));
        Assert.Equal(1, machine.Counters.NoDestination);
        Assert.Equal([], machine.WithIrr(0x41));
    }

    [Fact]
    public void X2ApicIcrBroadcast_ReachesEveryX2ApicLapicAndFollowsModeChanges()
    {
        // The ICR path end to end, and the member list rebuilt after a LAPIC leaves x2APIC mode.
        VirtualMachine machine = NewMachine(4, forceX2Apic: false, ids: [0, 1, 2, 0x100]);
        machine.EnableAll();
        Vcpu cpu0 = machine.GetVcpu(0);

        cpu0.SendX2ApicIpi(InterruptMessage.X2ApicBroadcast, 0x0000_4041);
        Assert.Equal([0, 1, 2, 3], machine.WithIrr(0x41));

        machine.GetVcpu(2).EnterXApic();
        machine.GetVcpu(2).EnableSoftware();
        cpu0.SendX2ApicIpi(InterruptMessage.X2ApicBroadcast, 0x0000_4042);
        Assert.Equal([0, 1, 3], machine.WithIrr(0x42));
        Assert.Equal(2, machine.GetVcpu(0).Apic.Counters.FixedAccepted);
        Assert.Equal(0, machine.GetVcpu(0).Apic.Counters.Merged);

        // The same vector again merges everywhere it is still pending.
        cpu0.SendX2ApicIpi(InterruptMessage.X2ApicBroadcast, 0x0000_4042);
        Assert.Equal(1, machine.GetVcpu(3).Apic.Counters.Merged);
        Assert.Equal(0, machine.GetVcpu(2).Apic.Counters.Merged);
    }
}
