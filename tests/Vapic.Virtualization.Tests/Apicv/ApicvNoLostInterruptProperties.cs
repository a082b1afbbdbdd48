using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Xunit;

namespace Vapic.Virtualization.Tests.Apicv;

/// <summary>
/// No interrupt is lost or duplicated by posting: random sequences of IPIs (every kind), MSIs,
/// hypervisor injections (edge and level), host-state changes (running, preempted, halted),
/// inhibit toggles, TPR/SVR writes, LAPIC timers, accepts and EOIs run on two identical machines,
/// one under APICv and one under plain emulation. Every accept takes the same event in both, and
/// after draining (TPR 0, accept and EOI until nothing is left) both have taken the same fixed
/// interrupts, no PIR holds anything, and IRR/ISR/TMR/PPR/ESR agree.
/// </summary>
public sealed class ApicvNoLostInterruptProperties
{
    private enum OpKind : byte
    {
        Ipi,
        Msi,
        Inject,
        HostState,
        Inhibit,
        Accept,
        Eoi,
        Cr8,
        Svr,
        Timer,
        Advance,
    }

    private readonly record struct Op(OpKind Kind, int Cpu, int A, int B)
    {
        public override string ToString() => $"{Kind}(cpu {Cpu}, {A}, {B})";
    }

    private static readonly Gen<OpKind> s_kinds = Gen.Frequency(
        (6, OpKind.Ipi), (3, OpKind.Msi), (3, OpKind.Inject), (5, OpKind.HostState), (1, OpKind.Inhibit),
        (6, OpKind.Accept), (4, OpKind.Eoi), (1, OpKind.Cr8), (1, OpKind.Svr), (1, OpKind.Timer), (1, OpKind.Advance));

    private static readonly Gen<Op> s_op =
        Gen.Select(s_kinds, Gen.Int[0, 3], Gen.Int[0, 255], Gen.Int[0, 15], (kind, cpu, a, b) => new Op(kind, cpu, a, b));

    private static readonly byte[] s_vectors = [0x31, 0x32, 0x51, 0x52, 0x5F, 0xEC];

    private static readonly Gen<ApicvFeatures> s_features = Gen.OneOf(
        ApicvFeatures.Default, ApicvFeatures.WithoutIpiVirtualization, ApicvFeatures.TprShadowOnly);

    [Fact]
    public void RandomSequences_TakeTheSameInterruptsAsEmulation() =>
        Gen.Select(Gen.Int[1, 4], Gen.Bool, s_features, s_op.Array[1, 150])
            .Sample((vcpus, x2Apic, features, ops) => Compare(vcpus, x2Apic, features, ops), iter: 300, time: 10);

    private static void Compare(int vcpus, bool x2Apic, ApicvFeatures features, Op[] ops)
    {
        var apicv = new ApicvMode(features);
        var subject = new Driver(vcpus, x2Apic, apicv);
        var reference = new Driver(vcpus, x2Apic, new EmulatedMode());
        for (int step = 0; step < ops.Length; step++)
        {
            CpuEvent a = subject.Run(ops[step]);
            CpuEvent e = reference.Run(ops[step]);
            Assert.True(a == e, $"step {step} {ops[step]}: apicv took {a}, emulation took {e}");
        }

        List<CpuEvent>[] drainedApicv = subject.Drain();
        List<CpuEvent>[] drainedEmulated = reference.Drain();
        for (int i = 0; i < vcpus; i++)
        {
            Assert.Equal(drainedEmulated[i], drainedApicv[i]);
            Assert.True(apicv.GetVcpuState(i).Descriptor.Pir.IsEmpty, $"vCPU {i}: PIR not empty after draining");
            LocalApic x = subject.Machine.GetVcpu(i).Apic, y = reference.Machine.GetVcpu(i).Apic;
            Assert.Equal(y.Irr, x.Irr);
            Assert.Equal(y.Isr, x.Isr);
            Assert.Equal(y.Tmr, x.Tmr);
            Assert.Equal(y.ProcessorPriority, x.ProcessorPriority);
            Assert.Equal(y.PendingErrors, x.PendingErrors);
            Assert.Equal(y.ErrorStatus, x.ErrorStatus);
        }

        Assert.Equal(reference.FixedTaken, subject.FixedTaken);
        Assert.Equal(reference.Mode.Ledger.InterruptsDelivered, apicv.Ledger.InterruptsDelivered);
    }

    /// <summary>Runs operations on one machine; only guest-visible steps are compared.</summary>
    private sealed class Driver
    {
        private readonly bool _x2Apic;

        public Driver(int vcpus, bool x2Apic, VirtualizationMode mode)
        {
            _x2Apic = x2Apic;
            Mode = mode;
            Machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus, ForceX2Apic = x2Apic }, mode);
            if (vcpus > 1)
            {
                SendIcr(0, 0x000C_4500, 0);
                for (int i = 1; i < vcpus; i++)
                {
                    Machine.GetVcpu(i).Accept();
                }

                SendIcr(0, 0x000C_4608, 0);
                for (int i = 1; i < vcpus; i++)
                {
                    Machine.GetVcpu(i).Accept();
                }
            }

            for (int i = 0; i < vcpus; i++)
            {
                Write(i, 0x0F0, 0x1FF);
                if (!x2Apic)
                {
                    Write(i, 0x0D0, 1u << (24 + i)); // flat logical ID: one bit per vCPU
                }
            }
        }

        public VirtualMachine Machine { get; }

        public VirtualizationMode Mode { get; }

        public long FixedTaken { get; private set; }

        private int N => Machine.VcpuCount;

        public CpuEvent Run(Op op)
        {
            int cpu = op.Cpu % N;
            Vcpu vcpu = Machine.GetVcpu(cpu);
            // A few vectors in three priority classes, so that posts, timers and TPR collide; B = 15 is illegal.
            byte vector = op.B == 15 ? (byte)(op.A & 0xF) : s_vectors[op.A % s_vectors.Length];
            switch (op.Kind)
            {
                case OpKind.Ipi:
                {
                    int target = op.A % N;
                    (uint low, uint destination) = (op.B % 7) switch
                    {
                        0 => (vector, (uint)target),                                         // physical fixed
                        1 => (vector | 0x800u, _x2Apic ? 1u << target : 1u << target),           // logical fixed
                        2 => (vector | (1u << 18), 0u),                                          // self
                        3 => (vector | (2u << 18), 0u),                                          // all including self
                        4 => (vector | (3u << 18), 0u),                                          // all excluding self
                        5 => (vector | 0x100u, (uint)target),                                    // lowest priority
                        _ => (0x400u, (uint)target),                                             // NMI
                    };
                    SendIcr(cpu, low, destination);
                    return CpuEvent.None;
                }

                case OpKind.Msi:
                    Machine.SendMsi(0xFEE0_0000UL | ((ulong)(op.A % N) << 12), vector | ((op.B & 1) != 0 ? 0xC000u : 0));
                    return CpuEvent.None;
                case OpKind.Inject:
                    Machine.Deliver(new InterruptMessage(vector, DeliveryMode.Fixed, DestinationMode.Physical, (uint)(op.A % N),
                        DestinationShorthand.None, (op.B & 1) != 0, Assert: true, RedirectionHint: false, InterruptSource.External, -1));
                    return CpuEvent.None;
                case OpKind.HostState:
                    vcpu.SetHostState((VcpuHostState)(op.B % 3));
                    return CpuEvent.None;
                case OpKind.Inhibit:
                    Mode.SetInhibit(ApicvInhibit.BlockIrq, (op.B & 1) != 0);
                    return CpuEvent.None;
                case OpKind.Accept:
                {
                    CpuEvent taken = vcpu.Accept();
                    if (taken.Kind == CpuEventKind.Fixed)
                    {
                        FixedTaken++;
                    }

                    return taken;
                }

                case OpKind.Eoi:
                    Write(cpu, 0x0B0, 0);
                    return CpuEvent.None;
                case OpKind.Cr8:
                    vcpu.WriteCr8((ulong)(op.B & 7));
                    return CpuEvent.None;
                case OpKind.Svr:
                    Write(cpu, 0x0F0, (op.B & 1) != 0 ? 0x1FFu : 0xFFu);
                    return CpuEvent.None;
                case OpKind.Timer:
                    Write(cpu, 0x320, vector);   // one-shot
                    Write(cpu, 0x3E0, 0x0B);     // divide by 1
                    Write(cpu, 0x380, (uint)(1 + op.A));
                    return CpuEvent.None;
                default:
                    Machine.Advance(op.A * 50L);
                    return CpuEvent.None;
            }
        }

        /// <summary>Lowers TPR and takes and EOIs everything left, vCPU by vCPU.</summary>
        public List<CpuEvent>[] Drain()
        {
            var taken = new List<CpuEvent>[N];
            for (int i = 0; i < N; i++)
            {
                taken[i] = [];
                Vcpu vcpu = Machine.GetVcpu(i);
                vcpu.WriteCr8(0);
                for (int guard = 0; guard < 1024; guard++)
                {
                    CpuEvent e = vcpu.Accept();
                    if (e.Kind == CpuEventKind.None)
                    {
                        break;
                    }

                    taken[i].Add(e);
                    if (e.Kind == CpuEventKind.Fixed)
                    {
                        FixedTaken++;
                        Write(i, 0x0B0, 0);
                    }
                }

                // A guest read of ESR (after latching it) is the last observation.
                Write(i, 0x280, 0);
            }

            return taken;
        }

        private void SendIcr(int cpu, uint low, uint destination)
        {
            Vcpu vcpu = Machine.GetVcpu(cpu);
            if (_x2Apic)
            {
                vcpu.WriteMsr(0x830, ((ulong)destination << 32) | low);
            }
            else
            {
                vcpu.WriteMmio(0xFEE0_0310, destination << 24);
                vcpu.WriteMmio(0xFEE0_0300, low);
            }
        }

        private void Write(int cpu, uint offset, uint value)
        {
            Vcpu vcpu = Machine.GetVcpu(cpu);
            if (_x2Apic)
            {
                if (offset != 0x0D0)
                {
                    vcpu.WriteMsr(0x800 + (offset >> 4), value);
                }
            }
            else
            {
                vcpu.WriteMmio(0xFEE0_0000 + offset, value);
            }
        }
    }
}
