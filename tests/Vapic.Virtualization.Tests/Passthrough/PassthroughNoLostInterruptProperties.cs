using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// Random sequences of IPIs (fixed, lowest priority, NMI, SMI; every destination kind), MSIs,
/// host-state changes, x2APIC switches at any moment, accepts, EOIs and TPR writes, run side by
/// side under passthrough and plain emulation: the guest sees the same thing after every step, and
/// after a final drain every fixed interrupt that reached an enabled APIC was taken exactly once (or
/// merged into one already pending), the same number as under emulation.
/// </summary>
public class PassthroughNoLostInterruptProperties
{
    private enum OpKind : byte
    {
        Ipi,
        Msi,
        HostState,
        SwitchToX2Apic,
        Accept,
        Eoi,
        Tpr,
    }

    private readonly record struct Op(OpKind Kind, int A, int B, int C, byte Vector)
    {
        public static readonly Gen<Op> Generator =
            Gen.Select(
                Gen.Frequency(
                    (10, Gen.Const(OpKind.Ipi)),
                    (5, Gen.Const(OpKind.Msi)),
                    (6, Gen.Const(OpKind.HostState)),
                    (2, Gen.Const(OpKind.SwitchToX2Apic)),
                    (10, Gen.Const(OpKind.Accept)),
                    (5, Gen.Const(OpKind.Eoi)),
                    (2, Gen.Const(OpKind.Tpr))),
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Frequency((12, Gen.Byte[0x20, 0xFF]), (1, Gen.Byte[0, 0x1F])))
            .Select((kind, a, b, c, vector) => new Op(kind, a, b, c, vector));
    }

    [Fact]
    public void PassthroughLosesNoInterruptAndMatchesEmulation() =>
        Gen.Select(Gen.Int[1, 6], Gen.Bool, Op.Generator.Array[1, 150])
           .Sample((vcpus, switchAtBoot, ops) => new Pair(vcpus, switchAtBoot).Run(ops), iter: 300, time: 5);

    private sealed class Pair
    {
        private readonly int _n;
        private readonly PassthroughMode _mode = new();
        private readonly VirtualMachine _p;
        private readonly VirtualMachine _e;

        public Pair(int vcpus, bool switchAtBoot)
        {
            _n = vcpus;
            var options = new MachineOptions { VcpuCount = vcpus };
            _p = new VirtualMachine(options, _mode);
            _e = new VirtualMachine(options, new EmulatedMode());
            foreach (VirtualMachine m in new[] { _p, _e })
            {
                Boot(m);
                if (switchAtBoot)
                {
                    for (int i = 0; i < vcpus; i++)
                    {
                        Switch(m, i);
                    }
                }
            }
        }

        public void Run(Op[] ops)
        {
            for (int step = 0; step < ops.Length; step++)
            {
                Apply(ops[step]);
                AssertSameGuestState($"step {step} {ops[step]}");
            }

            for (int i = 0; i < _n; i++)
            {
                WriteReg(_p, i, 0x080, 0);
                WriteReg(_e, i, 0x080, 0);
                while (!_p.GetVcpu(i).Apic.Isr.IsEmpty)
                {
                    WriteReg(_p, i, 0x0B0, 0);
                    WriteReg(_e, i, 0x0B0, 0);
                }

                for (int guard = 0; guard < 600; guard++)
                {
                    CpuEvent taken = _p.GetVcpu(i).Accept();
                    Assert.Equal(_e.GetVcpu(i).Accept(), taken);
                    if (taken.Kind == CpuEventKind.None)
                    {
                        break;
                    }

                    if (taken.Kind == CpuEventKind.Fixed)
                    {
                        WriteReg(_p, i, 0x0B0, 0);
                        WriteReg(_e, i, 0x0B0, 0);
                    }
                }
            }

            AssertSameGuestState("after drain");
            for (int i = 0; i < _n; i++)
            {
                LocalApicCounters p = _p.GetVcpu(i).Apic.Counters;
                LocalApicCounters e = _e.GetVcpu(i).Apic.Counters;
                Assert.True(_p.GetVcpu(i).Apic.Irr.IsEmpty, $"vCPU {i} IRR not drained");
                Assert.Equal(p.FixedAccepted, p.Acknowledged);
                Assert.Equal(e.FixedAccepted, p.FixedAccepted);
                Assert.Equal(e.Merged, p.Merged);
                Assert.Equal(e.Acknowledged, p.Acknowledged);
            }

            Assert.Equal(((EmulatedMode)_e.Virtualization!).Ledger.InterruptsDelivered, _mode.Ledger.InterruptsDelivered);
            Assert.Equal(0, _mode.Host.BlockedIpis);
        }

        private void Apply(Op op)
        {
            switch (op.Kind)
            {
                case OpKind.Ipi:
                {
                    int sender = op.A % _n;
                    (uint low, uint destination) = MakeIpi(op, _p.GetVcpu(sender).Apic.Mode == ApicMode.X2Apic);
                    SendIpi(_p, sender, low, destination);
                    SendIpi(_e, sender, low, destination);
                    break;
                }

                case OpKind.Msi:
                {
                    ulong address = 0xFEE0_0000UL | ((uint)(op.B % (_n + 1)) << 12); // n: nobody
                    _p.SendMsi(address, op.Vector);
                    _e.SendMsi(address, op.Vector);
                    break;
                }

                case OpKind.HostState:
                {
                    var state = (VcpuHostState)(op.B % 3);
                    _p.GetVcpu(op.A % _n).SetHostState(state);
                    _e.GetVcpu(op.A % _n).SetHostState(state);
                    break;
                }

                case OpKind.SwitchToX2Apic:
                    Switch(_p, op.A % _n);
                    Switch(_e, op.A % _n);
                    break;
                case OpKind.Accept:
                    Assert.Equal(_e.GetVcpu(op.A % _n).Accept(), _p.GetVcpu(op.A % _n).Accept());
                    break;
                case OpKind.Eoi:
                    WriteReg(_p, op.A % _n, 0x0B0, 0);
                    WriteReg(_e, op.A % _n, 0x0B0, 0);
                    break;
                case OpKind.Tpr:
                    WriteReg(_p, op.A % _n, 0x080, (uint)(op.B << 4));
                    WriteReg(_e, op.A % _n, 0x080, (uint)(op.B << 4));
                    break;
            }
        }

        /// <summary>Fixed IPIs of every destination kind, plus some NMIs, SMIs and lowest-priority ones.</summary>
        private (uint Low, uint Destination) MakeIpi(Op op, bool x2Apic)
        {
            uint mode = op.C switch
            {
                13 => 0x400u, // NMI
                14 => 0x200u, // SMI
                15 => 0x100u, // lowest priority
                _ => 0u,
            };
            uint low = op.Vector | mode;
            return (op.B % 5) switch
            {
                0 => (low, (uint)((op.B >> 2) % (_n + 1))),                   // physical, maybe nobody
                1 => (low | 0x800, (uint)((op.B | 1) & ((1 << _n) - 1))),      // logical (flat / x2APIC cluster 0)
                2 => (low | 0x4_0000, 0),                                     // self
                3 => (low | 0xC_0000, 0),                                     // all excluding self
                _ => (low, x2Apic ? 0xFFFF_FFFF : 0xFF),                      // physical broadcast
            };
        }

        private void AssertSameGuestState(string where)
        {
            for (int i = 0; i < _n; i++)
            {
                LocalApic p = _p.GetVcpu(i).Apic, e = _e.GetVcpu(i).Apic;
                Assert.True(p.Irr == e.Irr && p.Isr == e.Isr && p.Tmr == e.Tmr && p.PendingEvents == e.PendingEvents && p.Mode == e.Mode, $"{where}: vCPU {i} differs");
                Assert.Equal(e.ProcessorPriority, p.ProcessorPriority);
            }
        }

        private void Boot(VirtualMachine m)
        {
            WriteReg(m, 0, 0x0F0, 0x1FF);
            if (_n > 1)
            {
                SendIpi(m, 0, 0x000C_4500, 0);
                for (int i = 1; i < _n; i++)
                {
                    Assert.Equal(CpuEventKind.Init, m.GetVcpu(i).Accept().Kind);
                }

                SendIpi(m, 0, 0x000C_4608, 0);
                for (int i = 1; i < _n; i++)
                {
                    Assert.Equal(CpuEventKind.StartUp, m.GetVcpu(i).Accept().Kind);
                    WriteReg(m, i, 0x0F0, 0x1FF);
                }
            }

            for (int i = 0; i < _n; i++)
            {
                WriteReg(m, i, 0x0D0, 1u << (24 + i)); // flat, one bit each
            }
        }

        private static void Switch(VirtualMachine m, int cpu)
        {
            Vcpu v = m.GetVcpu(cpu);
            if (v.Apic.Mode == ApicMode.XApic)
            {
                Assert.Equal(ApicAccessResult.Ok, v.WriteMsr(0x1B, v.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable));
            }
        }

        private static void SendIpi(VirtualMachine m, int cpu, uint low, uint destination)
        {
            if (m.GetVcpu(cpu).Apic.Mode == ApicMode.X2Apic)
            {
                Assert.Equal(ApicAccessResult.Ok, m.GetVcpu(cpu).WriteMsr(0x830, ((ulong)destination << 32) | low));
            }
            else
            {
                WriteReg(m, cpu, 0x310, destination << 24);
                WriteReg(m, cpu, 0x300, low);
            }
        }

        private static void WriteReg(VirtualMachine m, int cpu, int offset, uint value)
        {
            Vcpu v = m.GetVcpu(cpu);
            ApicAccessResult r = v.Apic.Mode == ApicMode.X2Apic
                ? v.WriteMsr(0x800 + (uint)(offset >> 4), value)
                : v.WriteMmio(0xFEE0_0000UL + (ulong)offset, value);
            Assert.Equal(ApicAccessResult.Ok, r);
        }
    }
}
