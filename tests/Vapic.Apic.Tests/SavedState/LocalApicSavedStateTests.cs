using System.Reflection;
using Vapic.Apic.SavedState;
using Xunit;

namespace Vapic.Apic.Tests.SavedState;

/// <summary>
/// LocalApic.Save / Restore: coverage of every volatile field, exact continuation at another
/// virtual time, and one refusal per validation rule that leaves the APIC untouched.
/// </summary>
public sealed class LocalApicSavedStateTests
{
    /// <summary>
    /// Every field of LocalApic.Registers and where the saved state carries it. A field added to
    /// Registers without a line here fails <see cref="Registers_EveryFieldIsCarriedBySavedState"/>:
    /// decide how it is saved, then list it.
    /// </summary>
    private static readonly Dictionary<string, string> s_registerFieldToState = new()
    {
        ["BaseMsr"] = nameof(LocalApicState.BaseMsr),
        ["XApicId"] = nameof(LocalApicState.XApicId),
        ["LogicalDestination"] = nameof(LocalApicState.LogicalDestination),
        ["DestinationFormat"] = nameof(LocalApicState.DestinationFormat),
        ["TaskPriority"] = nameof(LocalApicState.TaskPriority),
        ["ProcessorPriority"] = nameof(LocalApicState.TaskPriority) + "+" + nameof(LocalApicState.Isr), // derived
        ["SpuriousVector"] = nameof(LocalApicState.SpuriousVector),
        ["Irr"] = nameof(LocalApicState.Irr),
        ["Isr"] = nameof(LocalApicState.Isr),
        ["Tmr"] = nameof(LocalApicState.Tmr),
        ["ErrorStatus"] = nameof(LocalApicState.ErrorStatus),
        ["PendingErrors"] = nameof(LocalApicState.PendingErrors),
        ["InterruptCommandLow"] = nameof(LocalApicState.InterruptCommandLow),
        ["InterruptCommandHigh"] = nameof(LocalApicState.InterruptCommandHigh),
        ["Lvt"] = nameof(LocalApicState.LvtTimer) + "+" + nameof(LocalApicState.LvtThermal) + "+" + nameof(LocalApicState.LvtPerformanceCounter) +
            "+" + nameof(LocalApicState.LvtLint0) + "+" + nameof(LocalApicState.LvtLint1) + "+" + nameof(LocalApicState.LvtError),
        ["InitialCount"] = nameof(LocalApicState.InitialCount),
        ["DivideConfiguration"] = nameof(LocalApicState.DivideConfiguration),
        ["Divisor"] = nameof(LocalApicState.DivideConfiguration), // derived
        ["TimerCounting"] = nameof(LocalApicState.TimerCounting),
        ["TimerBase"] = nameof(LocalApicState.TimerElapsedNs),
        ["TimerDeadline"] = nameof(LocalApicState.TimerExpiresInNs),
        ["TscDeadline"] = nameof(LocalApicState.TscDeadline),
        ["Lint0Asserted"] = nameof(LocalApicState.Lint0Asserted),
        ["Lint1Asserted"] = nameof(LocalApicState.Lint1Asserted),
        ["Lint0RemoteIrr"] = nameof(LocalApicState.Lint0RemoteIrr),
        ["Lint1RemoteIrr"] = nameof(LocalApicState.Lint1RemoteIrr),
        ["PendingEvents"] = nameof(LocalApicState.PendingEvents),
        ["StartupVector"] = nameof(LocalApicState.StartupVector),
    };

    private static readonly Type s_registersType =
        typeof(LocalApic).GetNestedType("Registers", BindingFlags.NonPublic) ?? throw new InvalidOperationException("LocalApic.Registers not found");

    [Fact]
    public void Registers_EveryFieldIsCarriedBySavedState()
    {
        string[] fields = s_registersType.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            .Select(f => f.Name).Order().ToArray();
        Assert.Equal(s_registerFieldToState.Keys.Order().ToArray(), fields);

        HashSet<string> stateProperties = typeof(LocalApicState).GetProperties().Select(p => p.Name).ToHashSet();
        foreach (string target in s_registerFieldToState.Values.SelectMany(v => v.Split('+')))
        {
            Assert.Contains(target, stateProperties);
        }
    }

    [Fact]
    public void Restore_AtTheSameTime_ReproducesEveryRegisterFieldBitForBit()
    {
        TestApicHost source = Rich();
        LocalApicState state = source.Apic.Save();
        TestApicHost target = TestApicHost.Create(id: 3);
        target.Now = source.Now;

        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(state));

        FieldInfo regs = typeof(LocalApic).GetField("_regs", BindingFlags.Instance | BindingFlags.NonPublic)!;
        object expected = regs.GetValue(source.Apic)!;
        object actual = regs.GetValue(target.Apic)!;
        foreach (FieldInfo field in s_registersType.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (field.Name == "Lvt")
            {
                // An inline array has no built-in equality: compare it entry by entry.
                foreach (LvtEntry entry in Enum.GetValues<LvtEntry>())
                {
                    Assert.Equal(source.Apic.GetLvt(entry), target.Apic.GetLvt(entry));
                }

                continue;
            }

            Assert.True(Equals(field.GetValue(expected), field.GetValue(actual)), $"Registers.{field.Name} differs after restore");
        }

        Assert.Equal(source.Apic.Mode, target.Apic.Mode);
        Assert.Equal(source.Apic.TscOffset, target.Apic.TscOffset);
    }

    [Fact]
    public void Save_AfterPowerOn_HoldsTheArchitecturalResetValues()
    {
        // SDM "Local APIC State After Power-Up or Reset"; VER 0x0105_0014 with EOI-broadcast suppression (lapic-reference §0).
        TestApicHost host = TestApicHost.Create(id: 5);
        LocalApicState s = host.Apic.Save();

        Assert.Equal(ApicMode.XApic, s.Mode);
        Assert.Equal(0xFEE0_0900UL, s.BaseMsr);
        Assert.Equal(5u, s.X2ApicId);
        Assert.Equal(0x0500_0000u, s.XApicId);
        Assert.Equal(0x0105_0014u, s.Version);
        Assert.Equal(0u, s.LogicalDestination);
        Assert.Equal(0xFFFF_FFFFu, s.DestinationFormat);
        Assert.Equal(0xFFu, s.SpuriousVector);
        Assert.Equal(0u, s.TaskPriority);
        Assert.True(s.Irr.IsEmpty && s.Isr.IsEmpty && s.Tmr.IsEmpty);
        foreach (uint lvt in new[] { s.LvtCmci, s.LvtTimer, s.LvtThermal, s.LvtPerformanceCounter, s.LvtLint0, s.LvtLint1, s.LvtError })
        {
            Assert.Equal(0x0001_0000u, lvt);
        }

        Assert.Equal(0u, s.DivideConfiguration);
        Assert.Equal(0u, s.InitialCount);
        Assert.False(s.TimerCounting);
        Assert.Null(s.TimerExpiresInNs);
        Assert.Equal(ApicEvents.None, s.PendingEvents);
    }

    [Fact]
    public void Save_DoesNotChangeTheApic()
    {
        TestApicHost host = Rich();
        LocalApicState first = host.Apic.Save();
        int timerChanges = host.TimerChangedCount;
        int routingChanges = host.RoutingChangedCount;

        Assert.Equal(first, host.Apic.Save());
        Assert.Equal(timerChanges, host.TimerChangedCount);
        Assert.Equal(routingChanges, host.RoutingChangedCount);
    }

    [Fact]
    public void Restore_AtAnotherTime_ReadsEveryRegisterTheSame()
    {
        TestApicHost source = Rich();
        TestApicHost target = TestApicHost.Create(id: 3);
        target.Now = 987_654_321;

        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));

        Assert.Equal(source.Apic.Save(), target.Apic.Save());
        for (int offset = 0x20; offset <= 0x3E0; offset += 0x10)
        {
            if (IsXApicRegister(offset))
            {
                Assert.True(source.Read(offset) == target.Read(offset), $"register 0x{offset:x3} differs");
            }
        }

        Assert.Equal(source.Apic.ProcessorPriority, target.Apic.ProcessorPriority);
        Assert.Equal(source.Apic.TimerDeadline - source.Now, target.Apic.TimerDeadline - target.Now);
        Assert.Equal(source.Apic.TscOffset + source.Now, target.Apic.TscOffset + target.Now);
    }

    [Fact]
    public void Restore_OneShotTimer_ExpiresAtTheSameDistanceWithTheSameCurrentCounts()
    {
        // DCR 0x1 → divide by 4; TMICT 1000 → 4000 ns; saved 1234 ns in: TMCCT = 1000 − ⌊1234 / 4⌋ = 692.
        TestApicHost source = TestApicHost.CreateEnabled();
        source.Now = 10_000;
        source.Write(0x3E0, 0x1);
        source.Write(0x320, 0x40);
        source.Write(0x380, 1000);
        source.Advance(1234);
        Assert.Equal(692u, source.Read(0x390));

        TestApicHost target = TestApicHost.Create();
        target.Now = 5_000_000;
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));
        Assert.Equal(692u, target.Read(0x390));
        Assert.Equal(5_000_000 + 4000 - 1234, target.Apic.TimerDeadline);

        target.Advance(4000 - 1234 - 1);
        Assert.Equal(1u, target.Read(0x390));
        Assert.False(target.Apic.Irr.Get(0x40));
        target.Advance(1);
        Assert.True(target.Apic.Irr.Get(0x40));
        Assert.Equal(0u, target.Read(0x390));
        Assert.Equal(long.MaxValue, target.Apic.TimerDeadline);
    }

    [Fact]
    public void Restore_PeriodicTimerAfterDivisorChange_KeepsEveryLaterExpiry()
    {
        TestApicHost source = TestApicHost.CreateEnabled();
        source.Write(0x3E0, 0x3);           // divide by 16
        source.Write(0x320, 0x2_0050);     // periodic, vector 0x50
        source.Write(0x380, 100);           // 1600 ns period
        source.Advance(2500);
        source.Write(0x3E0, 0xA);           // divide by 128 mid-count: the remaining count continues at the new rate
        source.Advance(333);

        TestApicHost target = TestApicHost.Create();
        target.Now = 1L << 40;
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));

        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(source.Apic.TimerDeadline - source.Now, target.Apic.TimerDeadline - target.Now);
            Assert.Equal(source.Read(0x390), target.Read(0x390));
            long step = source.Apic.TimerDeadline - source.Now;
            source.Advance(step);
            target.Advance(step);
            Assert.Equal(source.Apic.Irr, target.Apic.Irr);
            source.Apic.AcknowledgeInterrupt();
            target.Apic.AcknowledgeInterrupt();
            source.Write(0xB0, 0);
            target.Write(0xB0, 0);
        }

        Assert.Equal(128 * 100, target.Apic.TimerDeadline - target.Now);
    }

    [Fact]
    public void Restore_TscDeadline_TscContinuesAndTheDeadlineKeepsItsDistance()
    {
        TestApicHost source = TestApicHost.CreateEnabled();
        source.Now = 1_000;
        source.Apic.TscOffset = 50_000;
        source.Write(0x320, 0x4_0070);                  // TSC-deadline mode, vector 0x70
        source.Wrmsr(0x6E0, 51_000 + 7_000);            // TSC is 51 000 now: 7 µs ahead

        TestApicHost target = TestApicHost.Create();
        target.Now = 400_000;
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));

        Assert.Equal(51_000, target.Now + target.Apic.TscOffset);
        Assert.Equal(58_000UL, target.Rdmsr(0x6E0));
        Assert.Equal(407_000, target.Apic.TimerDeadline);
        target.Advance(6_999);
        Assert.False(target.Apic.Irr.Get(0x70));
        target.Advance(1);
        Assert.True(target.Apic.Irr.Get(0x70));
        Assert.Equal(0UL, target.Rdmsr(0x6E0));
    }

    [Fact]
    public void Restore_X2ApicState_KeepsTheDerivedLdrAndThe32BitIcr()
    {
        TestApicHost source = TestApicHost.CreateEnabled(id: 0x123, x2Apic: true);
        source.Wrmsr(0x830, 0x0000_0456_0000_00F0);   // ICR: fixed 0xF0 to 0x456

        TestApicHost target = TestApicHost.Create(id: 0x123);
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));

        Assert.Equal(ApicMode.X2Apic, target.Apic.Mode);
        Assert.Equal(0x123UL, target.Rdmsr(0x802));
        Assert.Equal(0x0012_0008UL, target.Rdmsr(0x80D));   // cluster 0x12, bit 3
        Assert.Equal(0x0000_0456_0000_00F0UL, target.Rdmsr(0x830));
        Assert.Equal(ApicAccessResult.Unmapped, target.Apic.ReadMmio(0xFEE0_0020, out _));
    }

    [Fact]
    public void Restore_NotifiesTheHostOfTimerAndRoutingChanges()
    {
        TestApicHost source = Rich();
        TestApicHost target = TestApicHost.Create(id: 3);
        int timer = target.TimerChangedCount;
        int routing = target.RoutingChangedCount;

        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(source.Apic.Save()));
        Assert.Equal(timer + 1, target.TimerChangedCount);
        Assert.Equal(routing + 1, target.RoutingChangedCount);

        // Restoring the state it already has changes neither.
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(target.Apic.Save()));
        Assert.Equal(timer + 1, target.TimerChangedCount);
        Assert.Equal(routing + 1, target.RoutingChangedCount);
    }

    [Fact]
    public void Restore_GloballyDisabledAfterX2Apic_AcceptsTheKeptDerivedLdr()
    {
        // x2APIC → disabled keeps the derived LDR until the APIC is re-enabled in xAPIC mode.
        TestApicHost source = TestApicHost.CreateEnabled(id: 0x21, x2Apic: true);
        source.Wrmsr(0x1B, source.Apic.BaseMsr & ~0xC00UL);
        LocalApicState state = source.Apic.Save();
        Assert.Equal(ApicMode.Disabled, state.Mode);
        Assert.Equal(0x0002_0002u, state.LogicalDestination);

        TestApicHost target = TestApicHost.Create(id: 0x21);
        Assert.Equal(SavedStateResult.Success, target.Apic.Restore(state));
        Assert.Equal(state, target.Apic.Save());
    }

    private sealed record RefusalCase(Func<TestApicHost> Host, Func<LocalApicState, LocalApicState> Mutate, SavedStateError Error, string Field);

    private static readonly Dictionary<string, RefusalCase> s_refusals = new()
    {
        ["lock differs"] = new(Rich, s => s with { X2ApicLocked = true }, SavedStateError.ConfigurationMismatch, "X2ApicLocked"),
        ["x2APIC ID differs"] = new(Rich, s => s with { X2ApicId = 4 }, SavedStateError.ConfigurationMismatch, "X2ApicId"),
        ["VER differs"] = new(Rich, s => s with { Version = 0x0005_0014 }, SavedStateError.ConfigurationMismatch, "Version"),
        ["base reserved bit 9"] = new(Rich, s => s with { BaseMsr = s.BaseMsr | 0x200 }, SavedStateError.ReservedBits, "BaseMsr"),
        ["base reserved bit 0"] = new(Rich, s => s with { BaseMsr = s.BaseMsr | 0x1 }, SavedStateError.ReservedBits, "BaseMsr"),
        ["base above MAXPHYADDR"] = new(Rich, s => s with { BaseMsr = s.BaseMsr | (1UL << 46) }, SavedStateError.BaseAboveMaxPhysicalAddress, "BaseMsr"),
        ["EN 0 EXTD 1"] = new(Rich, s => s with { BaseMsr = (s.BaseMsr & ~0x800UL) | 0x400, Mode = ApicMode.Disabled }, SavedStateError.InvalidApicMode, "BaseMsr"),
        ["mode not base"] = new(Rich, s => s with { Mode = ApicMode.X2Apic }, SavedStateError.ModeMismatch, "Mode"),
        ["mode undefined"] = new(Rich, s => s with { Mode = (ApicMode)7 }, SavedStateError.ModeMismatch, "Mode"),
        ["locked not x2APIC"] = new(Locked, s => s with { BaseMsr = s.BaseMsr & ~0x400UL, Mode = ApicMode.XApic, LogicalDestination = 0 }, SavedStateError.X2ApicLockViolated, "BaseMsr"),
        ["locked disabled"] = new(Locked, s => s with { BaseMsr = s.BaseMsr & ~0xC00UL, Mode = ApicMode.Disabled }, SavedStateError.X2ApicLockViolated, "BaseMsr"),
        ["ID register bits 23:0"] = new(Rich, s => s with { XApicId = 0x0300_0001 }, SavedStateError.ReservedBits, "XApicId"),
        ["xAPIC LDR bits 23:0"] = new(Rich, s => s with { LogicalDestination = 0x0100_8000 }, SavedStateError.ReservedBits, "LogicalDestination"),
        ["x2APIC LDR not derived"] = new(X2Apic, s => s with { LogicalDestination = 0x0100_0000 }, SavedStateError.Inconsistent, "LogicalDestination"),
        ["DFR bits 27:0"] = new(Rich, s => s with { DestinationFormat = 0xF000_0000 }, SavedStateError.ReservedBits, "DestinationFormat"),
        ["TPR bits 31:8"] = new(Rich, s => s with { TaskPriority = 0x120 }, SavedStateError.ReservedBits, "TaskPriority"),
        ["SVR bit 10"] = new(Rich, s => s with { SpuriousVector = s.SpuriousVector | 0x400 }, SavedStateError.ReservedBits, "SpuriousVector"),
        ["SVR bit 12 without VER bit 24"] = new(NoSuppression, s => s with { SpuriousVector = 0x11FF }, SavedStateError.ReservedBits, "SpuriousVector"),
        ["ESR bit 0"] = new(Rich, s => s with { ErrorStatus = 0x1 }, SavedStateError.ReservedBits, "ErrorStatus"),
        ["pending ESR bit 8"] = new(Rich, s => s with { PendingErrors = 0x100 }, SavedStateError.ReservedBits, "PendingErrors"),
        ["ICR delivery status"] = new(Rich, s => s with { InterruptCommandLow = 0x1000 | 0x30 }, SavedStateError.ReservedBits, "InterruptCommandLow"),
        ["xAPIC ICR high bits 23:0"] = new(Rich, s => s with { InterruptCommandHigh = 0x0200_0001 }, SavedStateError.ReservedBits, "InterruptCommandHigh"),
        ["CMCI programmed"] = new(Rich, s => s with { LvtCmci = 0x30 }, SavedStateError.Unsupported, "LvtCmci"),
        ["LVT timer bit 19"] = new(Rich, s => s with { LvtTimer = s.LvtTimer | (1u << 19) }, SavedStateError.ReservedBits, "LvtTimer"),
        ["LVT thermal bit 13"] = new(Rich, s => s with { LvtThermal = s.LvtThermal | (1u << 13) }, SavedStateError.ReservedBits, "LvtThermal"),
        ["LVT perf trigger"] = new(Rich, s => s with { LvtPerformanceCounter = s.LvtPerformanceCounter | (1u << 15) }, SavedStateError.ReservedBits, "LvtPerformanceCounter"),
        ["LVT LINT0 remote IRR bit"] = new(Rich, s => s with { LvtLint0 = s.LvtLint0 | (1u << 14) }, SavedStateError.ReservedBits, "LvtLint0"),
        ["LVT LINT1 delivery status"] = new(Rich, s => s with { LvtLint1 = s.LvtLint1 | (1u << 12) }, SavedStateError.ReservedBits, "LvtLint1"),
        ["LVT error delivery mode"] = new(Rich, s => s with { LvtError = s.LvtError | 0x400 }, SavedStateError.ReservedBits, "LvtError"),
        ["LVT unmasked while software-disabled"] = new(Rich, s => s with { SpuriousVector = 0xFF, LvtPerformanceCounter = 0x10042, LvtLint1 = 0x1_0400, LvtLint0 = 0x1_8061, LvtTimer = 0x3_0070, LvtError = 0x1_0033 }, SavedStateError.Inconsistent, "LvtThermal"),
        ["DCR bit 2"] = new(Rich, s => s with { DivideConfiguration = 0x4 }, SavedStateError.ReservedBits, "DivideConfiguration"),
        ["IRR vector 15"] = new(Rich, s => s with { Irr = With(s.Irr, 15) }, SavedStateError.IllegalVector, "Irr"),
        ["ISR vector 0"] = new(Rich, s => s with { Isr = With(s.Isr, 0) }, SavedStateError.IllegalVector, "Isr"),
        ["TMR vector 2"] = new(Rich, s => s with { Tmr = With(s.Tmr, 2) }, SavedStateError.IllegalVector, "Tmr"),
        ["undefined event"] = new(Rich, s => s with { PendingEvents = (ApicEvents)0x20 }, SavedStateError.ReservedBits, "PendingEvents"),
        ["LINT0 remote IRR on edge"] = new(Rich, s => s with { LvtLint0 = 0x0061, Lint0RemoteIrr = true }, SavedStateError.Inconsistent, "Lint0RemoteIrr"),
        ["LINT1 remote IRR"] = new(Rich, s => s with { Lint1RemoteIrr = true }, SavedStateError.Inconsistent, "Lint1RemoteIrr"),
        ["stopped timer with elapsed time"] = new(Rich, s => s with { TimerCounting = false, TimerExpiresInNs = null, TimerElapsedNs = 5 }, SavedStateError.Inconsistent, "TimerElapsedNs"),
        ["counting from TMICT 0"] = new(Rich, s => s with { InitialCount = 0 }, SavedStateError.Inconsistent, "InitialCount"),
        ["counting without expiry"] = new(Rich, s => s with { TimerExpiresInNs = null }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["stopped with expiry"] = new(Rich, s => s with { TimerCounting = false, TimerElapsedNs = 0 }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["expiry behind the clock"] = new(Rich, s => s with { TimerExpiresInNs = -1 }, SavedStateError.InvalidValue, "TimerExpiresInNs"),
        ["origin in the future"] = new(Rich, s => s with { TimerElapsedNs = -1 }, SavedStateError.InvalidValue, "TimerElapsedNs"),
        ["TSC deadline in periodic mode"] = new(Rich, s => s with { TscDeadline = 5 }, SavedStateError.Inconsistent, "TscDeadline"),
        ["TSC mode counting"] = new(TscDeadline, s => s with { TimerCounting = true, TimerElapsedNs = 1 }, SavedStateError.Inconsistent, "TimerCounting"),
        ["TSC mode TMICT"] = new(TscDeadline, s => s with { InitialCount = 7 }, SavedStateError.Inconsistent, "InitialCount"),
        ["TSC expiry not where the TSC reaches it"] = new(TscDeadline, s => s with { TimerExpiresInNs = s.TimerExpiresInNs + 1 }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["TSC armed without expiry"] = new(TscDeadline, s => s with { TimerExpiresInNs = null }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["TSC disarmed with expiry"] = new(TscDeadline, s => s with { TscDeadline = 0 }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["TSC passed but not due"] = new(TscDeadline, s => s with { Tsc = s.TscDeadline + 10 }, SavedStateError.Inconsistent, "TimerExpiresInNs"),
        ["reserved timer mode counting"] = new(Rich, s => s with { LvtTimer = s.LvtTimer | 0x6_0000 }, SavedStateError.Inconsistent, "TimerCounting"),
        ["expiry beyond the end of time"] = new(Rich, s => s with { TimerExpiresInNs = long.MaxValue - 10 }, SavedStateError.TimeOutOfRange, "TimerExpiresInNs"),
    };

    public static TheoryData<string> RefusalNames => new(s_refusals.Keys);

    [Fact]
    public void EveryRefusalBase_RestoresUnchanged()
    {
        foreach (Func<TestApicHost> create in new Func<TestApicHost>[] { Rich, Locked, X2Apic, NoSuppression, TscDeadline })
        {
            TestApicHost host = create();
            LocalApicState state = host.Apic.Save();
            Assert.Equal(SavedStateResult.Success, host.Apic.Restore(state));
            Assert.Equal(state, host.Apic.Save());
        }
    }

    [Theory]
    [MemberData(nameof(RefusalNames))]
    public void Restore_RefusesTheStateAndChangesNothing(string name)
    {
        RefusalCase c = s_refusals[name];
        TestApicHost host = c.Host();
        LocalApicState before = host.Apic.Save();
        int timerChanges = host.TimerChangedCount;
        int routingChanges = host.RoutingChangedCount;

        SavedStateResult result = host.Apic.Restore(c.Mutate(before));

        Assert.Equal(c.Error, result.Error);
        Assert.Equal(c.Field, result.Field);
        Assert.False(string.IsNullOrEmpty(result.Message));
        Assert.Equal(before, host.Apic.Save());
        Assert.Equal(timerChanges, host.TimerChangedCount);
        Assert.Equal(routingChanges, host.RoutingChangedCount);
    }

    [Fact]
    public void Restore_Null_IsMissing()
    {
        TestApicHost host = Rich();
        LocalApicState before = host.Apic.Save();
        Assert.Equal(SavedStateError.Missing, host.Apic.Restore(null!).Error);
        Assert.Equal(before, host.Apic.Save());
    }

    [Fact]
    public void ValidateState_ChecksAtTheGivenTime()
    {
        TestApicHost host = Rich();
        LocalApicState state = host.Apic.Save();
        Assert.True(host.Apic.ValidateState(state, 0).IsSuccess);
        Assert.Equal(SavedStateError.TimeOutOfRange, host.Apic.ValidateState(state, long.MaxValue - 1).Error);

        // The count's origin lies TimerElapsedNs before now: from a negative now it can fall off the clock.
        SavedStateResult early = host.Apic.ValidateState(state with { TimerElapsedNs = long.MaxValue }, -10);
        Assert.Equal((SavedStateError.TimeOutOfRange, "TimerElapsedNs"), (early.Error, early.Field));
    }

    /// <summary>
    /// An xAPIC APIC with something in every register: ID 3 rewritten to 0x31, cluster DFR, TPR,
    /// IRR/ISR/TMR, visible and pending ESR bits, ICR, all LVTs, an asserted level LINT0 with remote
    /// IRR, a running periodic timer at divide-by-16, a TSC offset and latched NMI + SIPI.
    /// </summary>
    private static TestApicHost Rich()
    {
        TestApicHost host = TestApicHost.CreateEnabled(id: 3);
        host.Now = 1_000;
        host.Write(0x020, 0x3100_0000);
        host.Write(0x0D0, 0x0400_0000);
        host.Write(0x0E0, 0x0FFF_FFFF);
        host.Service(0x41);
        host.Write(0x080, 0x20);
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x52, levelTriggered: true));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Fixed, 0x60, levelTriggered: false));
        host.Write(0x370, 0x33);          // LVT Error: vector 0x33
        host.SelfIpi(0x05);               // illegal vector: ESR bits 5 (send) and 6 (receive), LVT Error fires
        host.Write(0x280, 0);             // make them visible
        host.Read(0x010);                 // reserved offset: ESR bit 7 pending
        host.Write(0x310, 0x0200_0000);
        host.Write(0x330, 0x0451);        // thermal: NMI
        host.Write(0x340, 0x1_0042);      // perf: masked
        host.Write(0x360, 0x0400);        // LINT1: NMI
        host.Write(0x350, 0x8061);        // LINT0: level, fixed 0x61
        host.Apic.SetLint(0, true);       // delivers 0x61 and sets remote IRR
        host.Write(0x3E0, 0x3);
        host.Write(0x320, 0x2_0070);      // periodic, vector 0x70
        host.Write(0x380, 1000);          // 16 000 ns period
        host.Advance(5_000);
        host.Apic.TscOffset = 777_777;
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.Nmi, 0, levelTriggered: false));
        Assert.True(host.Apic.AcceptInterrupt(DeliveryMode.StartUp, 0x9A, levelTriggered: false));
        return host;
    }

    private static TestApicHost Locked() => TestApicHost.Create(id: 7, x2Apic: true, locked: true);

    private static TestApicHost X2Apic() => TestApicHost.CreateEnabled(id: 0x123, x2Apic: true);

    private static TestApicHost NoSuppression() => TestApicHost.CreateEnabled(eoiSuppression: false);

    private static TestApicHost TscDeadline()
    {
        TestApicHost host = TestApicHost.CreateEnabled();
        host.Now = 2_000;
        host.Apic.TscOffset = 10_000;
        host.Write(0x320, 0x4_0030);
        host.Wrmsr(0x6E0, 20_000);        // TSC is 12 000: 8 µs ahead
        return host;
    }

    private static InterruptBitmap With(InterruptBitmap bitmap, int vector)
    {
        bitmap.Set(vector);
        return bitmap;
    }

    private static bool IsXApicRegister(int offset) =>
        offset is 0x20 or 0x30 or 0x80 or 0xA0 or 0xD0 or 0xE0 or 0xF0 or (>= 0x100 and <= 0x280) or (>= 0x300 and <= 0x390) or 0x3E0;
}
