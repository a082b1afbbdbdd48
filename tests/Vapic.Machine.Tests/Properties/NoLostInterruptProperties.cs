using CsCheck;
using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// Random operation sequences (IPIs of every kind, MSIs, IOAPIC edge and level lines, RTE writes,
/// timers, EOIs, accepts, TPR/CR8, SVR toggles, mode changes, time) on 1-64 vCPUs. After every
/// operation: nothing threw; every interrupt the operation sent is accounted for at each APIC by
/// exactly one counter (accepted into IRR, merged, or dropped for a counted reason), as the
/// independent <see cref="ReferenceRouter"/> predicts; IRR/ISR/TMR/PPR obey lapic-reference §5.
/// </summary>
public sealed class NoLostInterruptProperties
{
    [Fact]
    public void RandomOperations_LoseNoInterruptAndKeepIrrIsrTmrPprConsistent() =>
        Gen.Select(MachineSpec.Generator(), Op.Generator.Array[1, 120])
            .Sample((spec, ops) => new LedgerChecker(spec).Run(ops), iter: 100);

    [Fact]
    public void RandomOperations_OnSmallMachines_ManyOperations() =>
        Gen.Select(MachineSpec.Generator().Select(s => s with { VcpuCount = 1 + (s.VcpuCount % 4) }), Op.Generator.Array[50, 400])
            .Sample((spec, ops) => new LedgerChecker(spec).Run(ops), iter: 100);

    /// <summary>One APIC's state and counters as the checker compares them across an operation.</summary>
    private readonly record struct ApicState(
        ApicMode Mode,
        InterruptBitmap Irr,
        InterruptBitmap Isr,
        InterruptBitmap Tmr,
        byte Tpr,
        byte Ppr,
        ApicEvents Pending,
        VcpuRunState RunState,
        long FixedArrivals,
        long AcceptedOrMerged,
        long DroppedGloballyDisabled,
        long Latched,
        long Acknowledged,
        long Eois,
        long TimerDeliveries)
    {
        public static ApicState Of(Vcpu cpu, ApicMode mode)
        {
            LocalApic apic = cpu.Apic;
            LocalApicCounters c = apic.Counters;
            return new ApicState(
                mode,
                apic.Irr,
                apic.Isr,
                apic.Tmr,
                apic.TaskPriority,
                apic.ProcessorPriority,
                apic.PendingEvents,
                cpu.RunState,
                c.FixedAccepted + c.Merged + c.DroppedSoftwareDisabled + c.DroppedIllegalVector,
                c.FixedAccepted + c.Merged,
                c.DroppedGloballyDisabled,
                c.EventsLatched,
                c.Acknowledged,
                c.Eois,
                c.TimerExpiries - c.TimerExpiriesMasked);
        }
    }

    private sealed class LedgerChecker
    {
        private readonly MachineDriver _driver;
        private readonly long[] _lostIrr;
        private readonly long[] _lostIsr;

        public LedgerChecker(MachineSpec spec)
        {
            _driver = new MachineDriver(spec);
            _lostIrr = new long[_driver.N];
            _lostIsr = new long[_driver.N];
            CheckStatic();
        }

        public void Run(Op[] ops)
        {
            for (int step = 0; step < ops.Length; step++)
            {
                try
                {
                    Check(ops[step]);
                }
                catch (Exception e)
                {
                    throw new InvalidOperationException($"step {step}: {ops[step]}: {e.Message}", e);
                }
            }

            // Guest-visible PPR/TPR agree with what the checker used.
            for (int i = 0; i < _driver.N; i++)
            {
                Vcpu cpu = _driver.Machine.GetVcpu(i);
                if (_driver.Views[i].Mode != ApicMode.Disabled)
                {
                    Assert.Equal(cpu.Apic.ProcessorPriority, (byte)cpu.ReadRegister(Reg.ProcessorPriority));
                    Assert.Equal(cpu.Apic.TaskPriority, (byte)cpu.ReadRegister(Reg.TaskPriority));
                }
            }
        }

        private ApicState[] Snapshot()
        {
            var states = new ApicState[_driver.N];
            for (int i = 0; i < states.Length; i++)
            {
                states[i] = ApicState.Of(_driver.Machine.GetVcpu(i), _driver.Views[i].Mode);
            }

            return states;
        }

        private void Check(Op op)
        {
            VirtualMachine machine = _driver.Machine;
            ApicView[] views = _driver.Views;
            ApicState[] before = Snapshot();
            long ioMessagesBefore = machine.IoApic.Counters.MessagesSent;
            long noDestinationBefore = machine.Counters.NoDestination;

            OpEffect effect = _driver.Run(op);

            ApicState[] after = Snapshot();
            long ioMessages = machine.IoApic.Counters.MessagesSent - ioMessagesBefore;

            // What the operation sent, routed by the reference over the state before the operation.
            var expected = new Expectation(_driver.N);
            var levelVectors = new HashSet<int>();
            var perMessage = new List<(InterruptMessage Message, Expectation Expectation)>();
            foreach (InterruptMessage message in effect.Messages)
            {
                Expectation e = ReferenceRouter.Expect(views, message);
                perMessage.Add((message, e));
                expected.Add(e);
                if (message.LevelTriggered)
                {
                    levelVectors.Add(message.Vector);
                }
            }

            if (ioMessages > 0)
            {
                Assert.True(effect.Pin >= 0, $"{ioMessages} IOAPIC message(s) from an operation that drives no pin");
                InterruptMessage pinMessage = _driver.PinMessage(effect.Pin);
                Expectation e = ReferenceRouter.Expect(views, pinMessage);
                for (long k = 0; k < ioMessages; k++)
                {
                    expected.Add(e);
                    perMessage.Add((pinMessage, e));
                }

                if (pinMessage.LevelTriggered)
                {
                    levelVectors.Add(pinMessage.Vector);
                }
            }

            int opCpu = op.Cpu % _driver.N;
            for (int i = 0; i < _driver.N; i++)
            {
                ApicState b = before[i];
                ApicState a = after[i];
                long fixedArrivals = a.FixedArrivals - b.FixedArrivals;
                long refusedDisabled = a.DroppedGloballyDisabled - b.DroppedGloballyDisabled;
                long timer = a.TimerDeliveries - b.TimerDeliveries;
                if (op.Kind != OpKind.Accept)
                {
                    // The ledger: each arrival is counted exactly once, where the reference says it arrives.
                    if (b.Mode == ApicMode.Disabled)
                    {
                        Assert.Equal(0, fixedArrivals);
                        Assert.Equal(0, timer);
                        Assert.Equal(expected.FixedArrivals[i] + expected.RefusedWhileDisabled[i], refusedDisabled);
                    }
                    else
                    {
                        Assert.True(expected.FixedArrivals[i] + timer == fixedArrivals,
                            $"cpu {i}: {fixedArrivals} fixed arrivals counted, {expected.FixedArrivals[i]} routed + {timer} timer expected");
                        Assert.Equal(0, refusedDisabled);
                        Assert.True(expected.Latched[i] == a.Latched - b.Latched,
                            $"cpu {i}: {a.Latched - b.Latched} events latched, {expected.Latched[i]} expected");
                    }

                    foreach ((InterruptMessage message, Expectation e) in perMessage)
                    {
                        if (e.SetsIrr[i])
                        {
                            Assert.True(a.Irr.Get(message.Vector), $"cpu {i}: vector 0x{message.Vector:x2} not in IRR after {message}");
                        }
                    }

                    // IRR only grows outside accept; ISR only shrinks by an EOI of its highest vector.
                    AssertSubset(b.Irr, a.Irr, $"cpu {i}: IRR lost bits");
                    if (op.Kind == OpKind.Eoi && i == opCpu && b.Mode != ApicMode.Disabled && b.Isr.Highest() >= 0)
                    {
                        InterruptBitmap expectedIsr = b.Isr;
                        expectedIsr.Clear(b.Isr.Highest());
                        Assert.Equal(expectedIsr, a.Isr);
                        Assert.Equal(b.Eois + 1, a.Eois);
                    }
                    else
                    {
                        Assert.Equal(b.Isr, a.Isr);
                        Assert.Equal(b.Eois, a.Eois);
                    }

                    // TMR bits appear only for level-triggered arrivals; an edge IPI/MSI arrival clears TMR.
                    for (int v = 0; v < 256; v++)
                    {
                        if (a.Tmr.Get(v) && !b.Tmr.Get(v))
                        {
                            Assert.True(levelVectors.Contains(v) && a.Irr.Get(v), $"cpu {i}: TMR bit 0x{v:x2} set without a level arrival");
                        }
                    }

                    if (perMessage.Count == 1 && !perMessage[0].Message.LevelTriggered && a.AcceptedOrMerged > b.AcceptedOrMerged && timer == 0)
                    {
                        Assert.False(a.Tmr.Get(perMessage[0].Message.Vector), $"cpu {i}: edge arrival left TMR set");
                    }
                }
                else if (i == opCpu)
                {
                    CheckAccept(i, effect.Accepted, b, a);
                }
                else
                {
                    Assert.Equal(b.Irr, a.Irr);
                    Assert.Equal(b.Isr, a.Isr);
                }
            }

            // The router counts a message that matched nobody exactly when the reference finds no target.
            long noDestination = machine.Counters.NoDestination - noDestinationBefore;
            if (ioMessages == 0)
            {
                int expectedNoDestination = 0;
                foreach ((InterruptMessage _, Expectation e) in perMessage)
                {
                    expectedNoDestination += e.NoDestination ? 1 : 0;
                }

                Assert.Equal(expectedNoDestination, noDestination);
            }

            CheckStatic();
        }

        private void CheckAccept(int i, CpuEvent taken, in ApicState b, in ApicState a)
        {
            const ApicEvents NonFixed = ApicEvents.Smi | ApicEvents.Init | ApicEvents.Nmi | ApicEvents.ExtInt;
            switch (taken.Kind)
            {
                case CpuEventKind.Fixed:
                    {
                        // SDM "Interrupt Handling Procedure": the highest IRR vector, only if its class is above PPR's.
                        int v = taken.Vector;
                        Assert.Equal(VcpuRunState.Running, b.RunState);
                        Assert.NotEqual(ApicMode.Disabled, b.Mode);
                        Assert.Equal(ApicEvents.None, b.Pending & NonFixed);
                        Assert.Equal(b.Irr.Highest(), v);
                        Assert.True((v & 0xF0) > (b.Ppr & 0xF0), $"accepted 0x{v:x2} with PPR 0x{b.Ppr:x2}");
                        InterruptBitmap irr = b.Irr;
                        irr.Clear(v);
                        InterruptBitmap isr = b.Isr;
                        isr.Set(v);
                        Assert.Equal(irr, a.Irr);
                        Assert.Equal(isr, a.Isr);
                        Assert.Equal(b.Acknowledged + 1, a.Acknowledged);
                        break;
                    }

                case CpuEventKind.None:
                    if (b.RunState == VcpuRunState.Running)
                    {
                        Assert.Equal(ApicEvents.None, b.Pending & NonFixed);
                        int highest = b.Irr.Highest();
                        Assert.True(b.Mode == ApicMode.Disabled || highest < 0 || (highest & 0xF0) <= (b.Ppr & 0xF0),
                            $"nothing taken although 0x{highest:x2} is above PPR 0x{b.Ppr:x2}");
                    }
                    else
                    {
                        Assert.Equal(ApicEvents.None, b.Pending & (ApicEvents.Init | ApicEvents.StartUp));
                    }

                    Assert.Equal(b.Irr, a.Irr);
                    Assert.Equal(b.Isr, a.Isr);
                    break;
                case CpuEventKind.Init:
                    Assert.NotEqual(ApicEvents.None, b.Pending & ApicEvents.Init);
                    Assert.True(a.Irr.IsEmpty && a.Isr.IsEmpty && a.Tmr.IsEmpty, "INIT must clear IRR, ISR and TMR");
                    Assert.Equal(0, a.Tpr);
                    _lostIrr[i] += b.Irr.Count;
                    _lostIsr[i] += b.Isr.Count;
                    Assert.Equal(_driver.Views[i].Bsp ? VcpuRunState.Running : VcpuRunState.WaitForSipi, a.RunState);
                    break;
                case CpuEventKind.StartUp:
                    Assert.Equal(VcpuRunState.WaitForSipi, b.RunState);
                    Assert.NotEqual(ApicEvents.None, b.Pending & ApicEvents.StartUp);
                    Assert.Equal(VcpuRunState.Running, a.RunState);
                    Assert.Equal(b.Irr, a.Irr);
                    break;
                default:
                    {
                        ApicEvents taken1 = taken.Kind switch
                        {
                            CpuEventKind.Smi => ApicEvents.Smi,
                            CpuEventKind.Nmi => ApicEvents.Nmi,
                            _ => ApicEvents.ExtInt,
                        };
                        ApicEvents higher = taken.Kind switch
                        {
                            CpuEventKind.Smi => ApicEvents.None,
                            CpuEventKind.Nmi => ApicEvents.Smi | ApicEvents.Init,
                            _ => ApicEvents.Smi | ApicEvents.Init | ApicEvents.Nmi,
                        };
                        Assert.Equal(VcpuRunState.Running, b.RunState);
                        Assert.NotEqual(ApicEvents.None, b.Pending & taken1);
                        Assert.Equal(ApicEvents.None, b.Pending & higher);
                        Assert.Equal(ApicEvents.None, a.Pending & taken1);
                        Assert.Equal(b.Irr, a.Irr);
                        Assert.Equal(b.Isr, a.Isr);
                        break;
                    }
            }
        }

        /// <summary>Invariants that hold after every operation.</summary>
        private void CheckStatic()
        {
            for (int i = 0; i < _driver.N; i++)
            {
                LocalApic apic = _driver.Machine.GetVcpu(i).Apic;
                ref readonly InterruptBitmap irr = ref apic.Irr;
                ref readonly InterruptBitmap isr = ref apic.Isr;

                // Vectors 0-15 are never set (SDM "Valid Interrupt Vectors").
                Assert.True((irr.GetWord(0) & 0xFFFF) == 0, $"cpu {i}: IRR holds a vector below 16");
                Assert.True((isr.GetWord(0) & 0xFFFF) == 0, $"cpu {i}: ISR holds a vector below 16");

                // PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4 (SDM "Processor Priority Register").
                int isrv = isr.Highest();
                uint isrClass = isrv < 0 ? 0 : (uint)isrv & 0xF0;
                uint tpr = apic.TaskPriority;
                uint ppr = (tpr & 0xF0) >= isrClass ? tpr : isrClass;
                Assert.True(ppr == apic.ProcessorPriority, $"cpu {i}: PPR 0x{apic.ProcessorPriority:x2}, TPR 0x{tpr:x2}, ISRV 0x{isrv:x2}");

                // Conservation: every vector newly set in IRR is still pending, was acknowledged, or was
                // cleared by INIT; every acknowledged vector is in service, was EOI'd, or was cleared by INIT.
                LocalApicCounters c = apic.Counters;
                Assert.True(c.FixedAccepted == irr.Count + c.Acknowledged + _lostIrr[i],
                    $"cpu {i}: {c.FixedAccepted} accepted != {irr.Count} in IRR + {c.Acknowledged} acknowledged + {_lostIrr[i]} cleared by INIT");
                Assert.True(c.Acknowledged == isr.Count + c.Eois + _lostIsr[i],
                    $"cpu {i}: {c.Acknowledged} acknowledged != {isr.Count} in ISR + {c.Eois} EOIs + {_lostIsr[i]} cleared by INIT");
            }

            // Remote IRR exists only on level-triggered entries.
            for (int pin = 0; pin < MachineDriver.Pins; pin++)
            {
                ulong rte = _driver.Machine.IoApic.GetRedirectionEntry(pin);
                Assert.False(((rte >> 14) & 1) != 0 && ((rte >> 15) & 1) == 0, $"pin {pin}: Remote IRR on an edge entry");
            }
        }

        private static void AssertSubset(in InterruptBitmap subset, in InterruptBitmap set, string message)
        {
            for (int w = 0; w < 4; w++)
            {
                Assert.True((subset.GetWord(w) & ~set.GetWord(w)) == 0, message);
            }
        }
    }
}
