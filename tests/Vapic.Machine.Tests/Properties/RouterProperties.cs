using CsCheck;
using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// The machine's router agrees with <see cref="ReferenceRouter"/>, which examines every APIC on its
/// own with the matching rules of lapic-reference.md §10/§12: random machines (1-64 vCPUs, IDs,
/// modes, LDR/DFR/SVR set through guest writes, changed between messages) and random fixed and
/// lowest-priority messages from every source.
/// </summary>
public sealed class RouterProperties
{
    /// <summary>One step: reconfigure a vCPU (1 in 8) or deliver a message built from the raw numbers.</summary>
    private readonly record struct RouterStep(bool Reconfigure, int Cpu, uint A, uint B, uint C)
    {
        public static readonly Gen<RouterStep> Generator =
            Gen.Select(Gen.Int[0, 7], Gen.Int[0, 63], Gen.UInt, Gen.UInt, Gen.UInt, (r, cpu, a, b, c) => new RouterStep(r == 0, cpu, a, b, c));

        public InterruptMessage Message(ApicView[] views)
        {
            int n = views.Length;
            DeliveryMode mode = (B & 3) == 0 ? DeliveryMode.LowestPriority : DeliveryMode.Fixed;
            var source = (InterruptSource)((B >> 9) % 4);
            var shorthand = (DestinationShorthand)(((B >> 6) % 8) switch
            {
                5 => 1,
                6 => 2,
                7 => 3,
                _ => 0,
            });
            if (source is InterruptSource.IoApic or InterruptSource.Msi)
            {
                shorthand = DestinationShorthand.None; // only a CPU's ICR has shorthands
            }

            return new InterruptMessage(
                VectorSelector.Resolve(A),
                mode,
                ((B >> 5) & 1) != 0 ? DestinationMode.Logical : DestinationMode.Physical,
                DestinationSelector.Resolve(C, views),
                shorthand,
                LevelTriggered: ((B >> 11) & 1) != 0,
                Assert: true,
                RedirectionHint: source == InterruptSource.Msi && ((B >> 2) & 7) == 0,
                source,
                SourceVcpu: source is InterruptSource.Ipi or InterruptSource.External ? Cpu % n : -1);
        }
    }

    [Fact]
    public void Router_MatchesReference() =>
        Gen.Select(MachineSpec.Generator(), RouterStep.Generator.Array[1, 40])
            .Sample(CheckRouting, iter: 200);

    /// <summary>
    /// x2APIC IDs that differ only above bit 19 derive the same LDR (SDM "Logical Destination Mode in
    /// x2APIC Mode"); every APIC whose LDR matches must accept a logical message.
    /// </summary>
    [Fact]
    public void Router_MatchesReference_WithX2ApicLdrAliases() =>
        Gen.Select(MachineSpec.Generator(ldrAliases: true).Where(s => s.IdScheme == 8 && s.VcpuCount >= 2), RouterStep.Generator.Array[1, 40])
            .Sample(CheckRouting, iter: 60);

    private static void CheckRouting(MachineSpec spec, RouterStep[] steps)
    {
        var driver = new MachineDriver(spec);
        VirtualMachine machine = driver.Machine;
        for (int step = 0; step < steps.Length; step++)
        {
            RouterStep s = steps[step];
            if (s.Reconfigure)
            {
                driver.Run(new Op(OpKind.Reconfigure, s.Cpu, s.A, s.B, s.C));
                continue;
            }

            ApicView[] views = driver.Views;
            InterruptMessage message = s.Message(views);
            Expectation expected = ReferenceRouter.Expect(views, message);
            var before = new (long Taken, long Arrivals, long Refused)[driver.N];
            for (int i = 0; i < driver.N; i++)
            {
                LocalApicCounters c = machine.GetVcpu(i).Apic.Counters;
                before[i] = (c.FixedAccepted + c.Merged, c.FixedAccepted + c.Merged + c.DroppedSoftwareDisabled + c.DroppedIllegalVector, c.DroppedGloballyDisabled);
            }

            int result = machine.Deliver(in message);

            int accepted = 0;
            for (int i = 0; i < driver.N; i++)
            {
                Vcpu cpu = machine.GetVcpu(i);
                LocalApicCounters c = cpu.Apic.Counters;
                long taken = c.FixedAccepted + c.Merged - before[i].Taken;
                long arrivals = c.FixedAccepted + c.Merged + c.DroppedSoftwareDisabled + c.DroppedIllegalVector - before[i].Arrivals;
                long refused = c.DroppedGloballyDisabled - before[i].Refused;
                string where = $"step {step}: {message}: cpu {i} ({views[i]})";
                Assert.True((expected.SetsIrr[i] ? 1 : 0) == taken, $"{where}: taken {taken}, reference says {expected.SetsIrr[i]}");
                if (views[i].Mode == ApicMode.Disabled)
                {
                    Assert.True(expected.FixedArrivals[i] == refused, $"{where}: refused {refused}, expected {expected.FixedArrivals[i]}");
                }
                else
                {
                    Assert.True(expected.FixedArrivals[i] == arrivals, $"{where}: arrivals {arrivals}, expected {expected.FixedArrivals[i]}");
                }

                if (expected.SetsIrr[i])
                {
                    accepted++;
                    Assert.True(cpu.Apic.Irr.Get(message.Vector), $"{where}: vector not in IRR");
                    Assert.True(cpu.Apic.Tmr.Get(message.Vector) == message.LevelTriggered, $"{where}: TMR does not follow the trigger mode");
                }
            }

            Assert.True((expected.NoDestination ? -1 : accepted) == result, $"step {step}: {message}: router returned {result}");
        }
    }

    [Fact]
    public void Reference_LowestPriorityWinner_IsVectorModCandidates()
    {
        // A sanity check of the reference itself on a hand-built view set: CPU1 is software-disabled.
        ApicView enabled = new(ApicMode.XApic, 0, 0xFF00_0000, 0xFFFF_FFFF, true, false, false, false);
        ApicView[] views = [enabled with { Id = 0 }, enabled with { Id = 1, SoftwareEnabled = false }, enabled with { Id = 2 }, enabled with { Id = 3 }];
        var message = new InterruptMessage(0x41, DeliveryMode.LowestPriority, DestinationMode.Logical, 0x0F, DestinationShorthand.None,
            false, true, false, InterruptSource.Ipi, 0);

        Expectation e = ReferenceRouter.Expect(views, message);

        Assert.Equal([false, false, false, true], e.SetsIrr); // candidates 0, 2, 3; 0x41 mod 3 = 2
    }
}
