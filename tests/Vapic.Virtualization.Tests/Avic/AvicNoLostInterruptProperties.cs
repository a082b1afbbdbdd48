using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Avic;
using Xunit;

namespace Vapic.Virtualization.Tests.Avic;

/// <summary>
/// Random sequences of IPIs, MSIs, host-state changes, inhibit toggles, accepts, EOIs and TPR
/// writes, run side by side under AVIC and plain emulation: the guest sees the same thing after
/// every step, and after a final drain every fixed interrupt that reached an enabled APIC was
/// taken exactly once (or merged into one already pending), the same number as under emulation.
/// </summary>
public class AvicNoLostInterruptProperties
{
    private enum OpKind : byte
    {
        Ipi,
        Msi,
        HostState,
        Inhibit,
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
                    (2, Gen.Const(OpKind.Inhibit)),
                    (10, Gen.Const(OpKind.Accept)),
                    (5, Gen.Const(OpKind.Eoi)),
                    (2, Gen.Const(OpKind.Tpr))),
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Frequency((12, Gen.Byte[0x20, 0xFF]), (1, Gen.Byte[0, 0x1F])))
            .Select((kind, a, b, c, vector) => new Op(kind, a, b, c, vector));
    }

    private readonly record struct Config(int Vcpus, bool X2Apic, bool X2Avic, bool ExposeIsRunning)
    {
        public static readonly Gen<Config> Generator =
            Gen.Select(Gen.Int[1, 6], Gen.Bool, Gen.Frequency((3, Gen.Const(true)), (1, Gen.Const(false))), Gen.Frequency((3, Gen.Const(true)), (1, Gen.Const(false))))
               .Select((n, x2, x2avic, expose) => new Config(n, x2, x2avic, expose));
    }

    private static readonly ApicvInhibit[] s_toggled = [ApicvInhibit.BlockIrq, ApicvInhibit.IrqWindow, ApicvInhibit.Nested, ApicvInhibit.PitReinject];

    [Fact]
    public void AvicLosesNoInterruptAndMatchesEmulation() =>
        Gen.Select(Config.Generator, Op.Generator.Array[1, 150])
           .Sample((config, ops) => new Pair(config).Run(ops), iter: 300, time: 5);

    private sealed class Pair
    {
        private readonly Config _config;
        private readonly AvicMode _avic;
        private readonly VirtualMachine _a;
        private readonly VirtualMachine _e;

        public Pair(Config config)
        {
            _config = config;
            _avic = new AvicMode(new AvicFeatures { X2Avic = config.X2Avic, ExposeIsRunning = config.ExposeIsRunning });
            var options = new MachineOptions { VcpuCount = config.Vcpus, ForceX2Apic = config.X2Apic };
            _a = new VirtualMachine(options, _avic);
            _e = new VirtualMachine(options, new EmulatedMode());
            foreach (VirtualMachine m in new[] { _a, _e })
            {
                Boot(m);
            }
        }

        public void Run(Op[] ops)
        {
            for (int step = 0; step < ops.Length; step++)
            {
                Apply(ops[step]);
                AssertSameGuestState($"step {step} {ops[step]}");
            }

            // Drain: everything pending must be taken, on both machines alike.
            for (int i = 0; i < _config.Vcpus; i++)
            {
                WriteReg(_a, i, 0x080, 0);
                WriteReg(_e, i, 0x080, 0);
                while (!_a.GetVcpu(i).Apic.Isr.IsEmpty)
                {
                    // Finish the handlers still in service, which mask their own priority class.
                    WriteReg(_a, i, 0x0B0, 0);
                    WriteReg(_e, i, 0x0B0, 0);
                }

                for (int guard = 0; guard < 600; guard++)
                {
                    CpuEvent ea = _a.GetVcpu(i).Accept();
                    Assert.Equal(_e.GetVcpu(i).Accept(), ea);
                    if (ea.Kind == CpuEventKind.None)
                    {
                        break;
                    }

                    if (ea.Kind == CpuEventKind.Fixed)
                    {
                        WriteReg(_a, i, 0x0B0, 0);
                        WriteReg(_e, i, 0x0B0, 0);
                    }
                }
            }

            AssertSameGuestState("after drain");
            for (int i = 0; i < _config.Vcpus; i++)
            {
                LocalApic apic = _a.GetVcpu(i).Apic;
                Assert.True(apic.Irr.IsEmpty, $"vCPU {i} IRR not drained");
                Assert.Equal(apic.Counters.FixedAccepted, apic.Counters.Acknowledged);
                LocalApicCounters e = _e.GetVcpu(i).Apic.Counters;
                Assert.Equal(e.FixedAccepted, apic.Counters.FixedAccepted);
                Assert.Equal(e.Merged, apic.Counters.Merged);
                Assert.Equal(e.Acknowledged, apic.Counters.Acknowledged);
            }

            Assert.Equal(_avic.Ledger.InterruptsDelivered, DeliveredUnderEmulation());
        }

        private long DeliveredUnderEmulation() => ((EmulatedMode)_e.Virtualization!).Ledger.InterruptsDelivered;

        private void Apply(Op op)
        {
            int n = _config.Vcpus;
            switch (op.Kind)
            {
                case OpKind.Ipi:
                {
                    int sender = op.A % n;
                    (uint low, uint destination) = MakeIpi(op, n);
                    SendIpi(_a, sender, low, destination);
                    SendIpi(_e, sender, low, destination);
                    break;
                }

                case OpKind.Msi:
                {
                    uint destination = (uint)(op.B % (n + 1)); // n: nobody
                    ulong address = 0xFEE0_0000UL | (destination << 12);
                    _a.SendMsi(address, op.Vector);
                    _e.SendMsi(address, op.Vector);
                    break;
                }

                case OpKind.HostState:
                {
                    var state = (VcpuHostState)(op.B % 3);
                    _a.GetVcpu(op.A % n).SetHostState(state);
                    _e.GetVcpu(op.A % n).SetHostState(state);
                    break;
                }

                case OpKind.Inhibit:
                {
                    ApicvInhibit reason = s_toggled[op.A % s_toggled.Length];
                    _avic.SetInhibit(reason, !_avic.Inhibits.Contains(reason));
                    break;
                }

                case OpKind.Accept:
                    Assert.Equal(_e.GetVcpu(op.A % n).Accept(), _a.GetVcpu(op.A % n).Accept());
                    break;
                case OpKind.Eoi:
                    WriteReg(_a, op.A % n, 0x0B0, 0);
                    WriteReg(_e, op.A % n, 0x0B0, 0);
                    break;
                case OpKind.Tpr:
                    WriteReg(_a, op.A % n, 0x080, (uint)(op.B << 4));
                    WriteReg(_e, op.A % n, 0x080, (uint)(op.B << 4));
                    break;
            }
        }

        /// <summary>Fixed IPIs of every destination kind, plus some NMIs, SMIs and lowest-priority ones.</summary>
        private (uint Low, uint Destination) MakeIpi(Op op, int n)
        {
            uint mode = op.C switch
            {
                13 => 0x400u,               // NMI
                14 => 0x200u,               // SMI
                15 when !_config.X2Apic => 0x100u, // lowest priority
                _ => 0u,
            };
            uint low = op.Vector | mode;
            switch (op.B % 5)
            {
                case 0:
                    return (low, (uint)((op.B >> 2) % (n + 1)));             // physical, maybe nobody
                case 1:
                    return (low | 0x800, (uint)((op.B | 1) & ((1 << n) - 1) & 0xFF)); // logical (flat / x2APIC cluster 0)
                case 2:
                    return (low | 0x4_0000, 0);                              // self
                case 3:
                    return (low | 0xC_0000, 0);                              // all excluding self
                default:
                    return (low, _config.X2Apic ? 0xFFFF_FFFF : 0xFF);       // physical broadcast
            }
        }

        private void AssertSameGuestState(string where)
        {
            for (int i = 0; i < _config.Vcpus; i++)
            {
                LocalApic a = _a.GetVcpu(i).Apic, e = _e.GetVcpu(i).Apic;
                Assert.True(a.Irr == e.Irr && a.Isr == e.Isr && a.Tmr == e.Tmr && a.PendingEvents == e.PendingEvents, $"{where}: vCPU {i} differs");
                Assert.Equal(e.ProcessorPriority, a.ProcessorPriority);
            }
        }

        private void Boot(VirtualMachine m)
        {
            WriteReg(m, 0, 0x0F0, 0x1FF);
            if (_config.Vcpus > 1)
            {
                SendIpi(m, 0, 0x000C_4500, 0);
                for (int i = 1; i < _config.Vcpus; i++)
                {
                    Assert.Equal(CpuEventKind.Init, m.GetVcpu(i).Accept().Kind);
                }

                SendIpi(m, 0, 0x000C_4608, 0);
                for (int i = 1; i < _config.Vcpus; i++)
                {
                    Assert.Equal(CpuEventKind.StartUp, m.GetVcpu(i).Accept().Kind);
                    WriteReg(m, i, 0x0F0, 0x1FF);
                }
            }

            if (!_config.X2Apic)
            {
                for (int i = 0; i < _config.Vcpus; i++)
                {
                    WriteReg(m, i, 0x0D0, 1u << (24 + i)); // flat, one bit each
                }
            }
        }

        private void SendIpi(VirtualMachine m, int cpu, uint low, uint destination)
        {
            if (_config.X2Apic)
            {
                Assert.Equal(ApicAccessResult.Ok, m.GetVcpu(cpu).WriteMsr(0x830, ((ulong)destination << 32) | low));
            }
            else
            {
                WriteReg(m, cpu, 0x310, destination << 24);
                WriteReg(m, cpu, 0x300, low);
            }
        }

        private void WriteReg(VirtualMachine m, int cpu, int offset, uint value)
        {
            ApicAccessResult r = _config.X2Apic
                ? m.GetVcpu(cpu).WriteMsr(0x800 + (uint)(offset >> 4), value)
                : m.GetVcpu(cpu).WriteMmio(0xFEE0_0000UL + (ulong)offset, value);
            Assert.Equal(ApicAccessResult.Ok, r);
        }
    }
}
