using CsCheck;
using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

public sealed class TmpStats(ITestOutputHelper output)
{
    [Fact]
    public void Stats()
    {
        long fixedAcc = 0, merged = 0, sw = 0, ill = 0, gd = 0, latched = 0, ack = 0, eoi = 0, timer = 0, io = 0, nodest = 0, lp = 0, samples = 0, ops = 0, inits = 0, sipis = 0, x2 = 0, dis = 0, vcpus = 0;
        Gen.Select(MachineSpec.Generator().Select(s => s with { VcpuCount = 1 + (s.VcpuCount % 4) }), Op.Generator.Array[50, 400]).Sample((spec, opsArr) =>
        {
            var d = new MachineDriver(spec);
            foreach (var op in opsArr) d.Run(op);
            lock (output)
            {
                samples++; ops += opsArr.Length; vcpus += d.N;
                for (int i = 0; i < d.N; i++)
                {
                    var c = d.Machine.GetVcpu(i).Apic.Counters;
                    fixedAcc += c.FixedAccepted; merged += c.Merged; sw += c.DroppedSoftwareDisabled; ill += c.DroppedIllegalVector; gd += c.DroppedGloballyDisabled;
                    latched += c.EventsLatched; ack += c.Acknowledged; eoi += c.Eois; timer += c.TimerExpiries;
                    if (d.Views[i].Mode == ApicMode.X2Apic) x2++;
                    if (d.Views[i].Mode == ApicMode.Disabled) dis++;
                }
                io += d.Machine.IoApic.Counters.MessagesSent; nodest += d.Machine.Counters.NoDestination; lp += d.Machine.Counters.LowestPriorityNoCandidate;
                inits += d.Machine.Counters.InitsTaken; sipis += d.Machine.Counters.StartupsTaken;
            }
        }, iter: 150);
        File.WriteAllText("/tmp/stats/out.txt", $"samples {samples} ops {ops} vcpus {vcpus} x2 {x2} disabled {dis} fixedAcc {fixedAcc} merged {merged} sw {sw} ill {ill} gd {gd} latched {latched} ack {ack} eoi {eoi} timer {timer} io {io} nodest {nodest} lpnone {lp} inits {inits} sipis {sipis}");
    }
}
