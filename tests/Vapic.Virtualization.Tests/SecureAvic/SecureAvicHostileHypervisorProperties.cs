using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.SecureAvic;
using Xunit;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// Random guest activity (IPIs, IOAPIC lines it programs and moves, MSIs, accepts, EOIs, TPR,
/// host-state changes, inhibit toggles) interleaved with a hostile hypervisor that injects random
/// vectors and NMIs at random times, run side by side on a Secure AVIC machine and on an emulated
/// one that receives only the injections an independent model of the driver's rules allows
/// (vectors the guest programmed into a source routed to that vCPU; NMIs while ALLOWEDNMI is set).
/// The guest must see the same after every step: no disallowed vector or NMI gets into the Secure
/// AVIC guest, and after a final drain every device interrupt and guest IPI was taken exactly once
/// (or merged into one already pending), as under emulation.
/// </summary>
public class SecureAvicHostileHypervisorProperties
{
    private const int Pins = 4;

    private enum OpKind : byte
    {
        Ipi,
        Msi,
        ProgramPin,
        PulsePin,
        HostileInject,
        HostileNmi,
        ToggleNmiAllowance,
        HostState,
        Inhibit,
        Accept,
        Eoi,
        Tpr,
    }

    private readonly record struct Op(OpKind Kind, int A, int B, int C, byte Vector)
    {
        public static Gen<Op> Generator(bool hostile) =>
            Gen.Select(
                Gen.Frequency(
                    (8, Gen.Const(OpKind.Ipi)),
                    (4, Gen.Const(OpKind.Msi)),
                    (3, Gen.Const(OpKind.ProgramPin)),
                    (4, Gen.Const(OpKind.PulsePin)),
                    (hostile ? 10 : 0, Gen.Const(OpKind.HostileInject)),
                    (hostile ? 3 : 0, Gen.Const(OpKind.HostileNmi)),
                    (hostile ? 2 : 0, Gen.Const(OpKind.ToggleNmiAllowance)),
                    (5, Gen.Const(OpKind.HostState)),
                    (1, Gen.Const(OpKind.Inhibit)),
                    (10, Gen.Const(OpKind.Accept)),
                    (6, Gen.Const(OpKind.Eoi)),
                    (2, Gen.Const(OpKind.Tpr))),
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Int[0, 15],
                Gen.Byte)
            .Select((kind, a, b, c, vector) => new Op(kind, a, b, c, vector));
    }

    [Fact]
    public void AHostileHypervisorGetsInOnlyWhatTheGuestAllowedAndLosesNothingLegitimate() =>
        Gen.Select(Gen.Int[1, 5], Op.Generator(hostile: true).Array[1, 160])
           .Sample((vcpus, ops) => new Pair(vcpus).Run(ops), iter: 300, time: 5);

    [Fact]
    public void SecureAvicLosesNoInterruptAndMatchesEmulation() =>
        Gen.Select(Gen.Int[1, 5], Op.Generator(hostile: false).Array[1, 160])
           .Sample((vcpus, ops) => new Pair(vcpus).Run(ops), iter: 300, time: 5);

    private static readonly ApicvInhibit[] s_toggled = [ApicvInhibit.BlockIrq, ApicvInhibit.Sev, ApicvInhibit.Nested];

    private sealed class Pair
    {
        private readonly int _n;
        private readonly SecureAvicMode _savic;
        private readonly VirtualMachine _s;
        private readonly VirtualMachine _e;

        // The independent model of ALLOWED_IRR: pin -> (vector, destination vCPU) the guest
        // programmed; per vCPU the vectors its MSIs used; per vCPU whether ALLOWEDNMI is set.
        private readonly (byte Vector, int Cpu)?[] _pins = new (byte, int)?[Pins];
        private readonly HashSet<(int Cpu, byte Vector)> _msi = [];
        private readonly bool[] _nmiAllowed;

        public Pair(int vcpus)
        {
            _n = vcpus;
            _savic = new SecureAvicMode();
            var options = new MachineOptions { VcpuCount = vcpus, ForceX2Apic = true };
            _s = new VirtualMachine(options, _savic);
            _e = new VirtualMachine(options, new EmulatedMode());
            _nmiAllowed = [.. Enumerable.Repeat(true, vcpus)];
            Boot(_s);
            Boot(_e);
        }

        public void Run(Op[] ops)
        {
            for (int step = 0; step < ops.Length; step++)
            {
                Apply(ops[step]);
                AssertSameGuestState($"step {step} {ops[step]}");
            }

            Drain();
            AssertSameGuestState("after drain");
            for (int i = 0; i < _n; i++)
            {
                LocalApicCounters s = _s.GetVcpu(i).Apic.Counters, e = _e.GetVcpu(i).Apic.Counters;
                Assert.True(_s.GetVcpu(i).Apic.Irr.IsEmpty, $"vCPU {i} IRR not drained");
                Assert.Equal(e.FixedAccepted, s.FixedAccepted);
                Assert.Equal(e.Merged, s.Merged);
                Assert.Equal(e.Acknowledged, s.Acknowledged);
                Assert.Equal(s.FixedAccepted, s.Acknowledged);
            }

            Assert.Equal(_e.Virtualization is EmulatedMode em ? em.Ledger.InterruptsDelivered : -1, _savic.Ledger.InterruptsDelivered);
            Assert.Null(_savic.InapplicableReason);
            Assert.Equal(0, _savic.Counters.DeviceInterruptsBlocked);
        }

        private void Apply(Op op)
        {
            switch (op.Kind)
            {
                case OpKind.Ipi:
                {
                    int sender = op.A % _n;
                    ulong icr = MakeIpi(op);
                    Assert.Equal(ApicAccessResult.Ok, _s.GetVcpu(sender).WriteMsr(0x830, icr));
                    Assert.Equal(ApicAccessResult.Ok, _e.GetVcpu(sender).WriteMsr(0x830, icr));
                    break;
                }

                case OpKind.Msi:
                {
                    int cpu = op.B % _n;
                    byte vector = DeviceVector(op.Vector);
                    ulong address = Msi.EncodeAddress((uint)cpu, DestinationMode.Physical, false);
                    uint data = Msi.EncodeData(vector, DeliveryMode.Fixed, false);
                    _s.SendMsi(address, data);
                    _e.SendMsi(address, data);
                    _msi.Add((cpu, vector));
                    break;
                }

                case OpKind.ProgramPin:
                {
                    int pin = op.A % Pins, cpu = op.B % _n;
                    byte vector = DeviceVector(op.Vector);
                    ProgramPin(_s, pin, vector, cpu);
                    ProgramPin(_e, pin, vector, cpu);
                    _pins[pin] = (vector, cpu);
                    break;
                }

                case OpKind.PulsePin:
                {
                    int pin = op.A % Pins;
                    foreach (VirtualMachine m in new[] { _s, _e })
                    {
                        m.SetIrq(pin, true);
                        m.SetIrq(pin, false);
                    }

                    break;
                }

                case OpKind.HostileInject:
                {
                    int cpu = op.A % _n;
                    byte vector = op.Vector;
                    InterruptBitmap before = _s.GetVcpu(cpu).Apic.Irr;
                    _savic.InjectFromHypervisor(_s.GetVcpu(cpu), vector);
                    if (IsAllowed(cpu, vector))
                    {
                        ((VirtualizationMode)_e.Virtualization!).InjectFromHypervisor(_e.GetVcpu(cpu), vector);
                    }
                    else
                    {
                        Assert.Equal(before, _s.GetVcpu(cpu).Apic.Irr);
                    }

                    break;
                }

                case OpKind.HostileNmi:
                {
                    int cpu = op.A % _n;
                    ApicEvents before = _s.GetVcpu(cpu).Apic.PendingEvents;
                    _savic.InjectNmiFromHypervisor(_s.GetVcpu(cpu));
                    if (_nmiAllowed[cpu])
                    {
                        ((VirtualizationMode)_e.Virtualization!).InjectNmiFromHypervisor(_e.GetVcpu(cpu));
                    }
                    else
                    {
                        Assert.Equal(before, _s.GetVcpu(cpu).Apic.PendingEvents);
                    }

                    break;
                }

                case OpKind.ToggleNmiAllowance:
                {
                    // The guest flips ALLOWEDNMI in its control MSR (a native WRMSR).
                    int cpu = op.A % _n;
                    _nmiAllowed[cpu] = !_nmiAllowed[cpu];
                    SecureAvicVcpu state = _savic.GetVcpu(cpu);
                    _savic.WriteControlMsr(_s.GetVcpu(cpu), state.ControlMsr ^ SecureAvicControl.AllowedNmi);
                    Assert.Equal(_nmiAllowed[cpu], state.NmiAllowed);
                    break;
                }

                case OpKind.HostState:
                {
                    var state = (VcpuHostState)(op.B % 3);
                    _s.GetVcpu(op.A % _n).SetHostState(state);
                    _e.GetVcpu(op.A % _n).SetHostState(state);
                    break;
                }

                case OpKind.Inhibit:
                {
                    // The hypervisor cannot turn Secure AVIC off: inhibits are not honored.
                    ApicvInhibit reason = s_toggled[op.A % s_toggled.Length];
                    _savic.SetInhibit(reason, !_savic.Inhibits.Contains(reason));
                    Assert.True(_savic.IsAccelerated);
                    break;
                }

                case OpKind.Accept:
                    Assert.Equal(_e.GetVcpu(op.A % _n).Accept(), _s.GetVcpu(op.A % _n).Accept());
                    break;
                case OpKind.Eoi:
                    Eoi(op.A % _n);
                    break;
                case OpKind.Tpr:
                    Assert.Equal(ApicAccessResult.Ok, _s.GetVcpu(op.A % _n).WriteMsr(0x808, (ulong)(op.B << 4)));
                    Assert.Equal(ApicAccessResult.Ok, _e.GetVcpu(op.A % _n).WriteMsr(0x808, (ulong)(op.B << 4)));
                    break;
            }
        }

        /// <summary>Guest IPIs as the physical-only driver sends them: unicast, the shorthands, the x2APIC broadcast, some NMIs.</summary>
        private ulong MakeIpi(Op op)
        {
            // IPI vectors 0xF0-0xFE: never the vectors of a device, so never allowed.
            uint low = op.C == 15 ? 0x400u : (uint)(0xF0 + (op.Vector % 15));
            switch (op.B % 5)
            {
                case 0:
                case 1:
                    return ((ulong)(uint)(op.C % _n) << 32) | low;
                case 2:
                    return low | 0x000C_0000; // all excluding self
                case 3:
                    return low | 0x0008_0000; // all including self
                default:
                    return op.C == 15 ? low | 0x0004_0000 : (0xFFFF_FFFFUL << 32) | low;
            }
        }

        /// <summary>Device vectors 0x40-0x5F, disjoint from the IPI vectors.</summary>
        private static byte DeviceVector(byte random) => (byte)(0x40 + (random % 0x20));

        private bool IsAllowed(int cpu, byte vector)
        {
            if (_msi.Contains((cpu, vector)))
            {
                return true;
            }

            foreach ((byte Vector, int Cpu)? pin in _pins)
            {
                if (pin is (byte v, int c) && v == vector && c == cpu)
                {
                    return true;
                }
            }

            return false;
        }

        private void Eoi(int cpu)
        {
            Assert.Equal(ApicAccessResult.Ok, _s.GetVcpu(cpu).WriteMsr(0x80B, 0));
            Assert.Equal(ApicAccessResult.Ok, _e.GetVcpu(cpu).WriteMsr(0x80B, 0));
        }

        private void Drain()
        {
            for (int i = 0; i < _n; i++)
            {
                Assert.Equal(ApicAccessResult.Ok, _s.GetVcpu(i).WriteMsr(0x808, 0));
                Assert.Equal(ApicAccessResult.Ok, _e.GetVcpu(i).WriteMsr(0x808, 0));
                while (!_s.GetVcpu(i).Apic.Isr.IsEmpty)
                {
                    Eoi(i);
                }

                for (int guard = 0; guard < 600; guard++)
                {
                    CpuEvent taken = _s.GetVcpu(i).Accept();
                    Assert.Equal(_e.GetVcpu(i).Accept(), taken);
                    if (taken.Kind == CpuEventKind.None)
                    {
                        break;
                    }

                    if (taken.Kind == CpuEventKind.Fixed)
                    {
                        Eoi(i);
                    }
                }
            }
        }

        private void AssertSameGuestState(string where)
        {
            for (int i = 0; i < _n; i++)
            {
                LocalApic s = _s.GetVcpu(i).Apic, e = _e.GetVcpu(i).Apic;
                Assert.True(e.Irr == s.Irr, $"{where}: vCPU {i} IRR {s.Irr} vs emulated {e.Irr}");
                Assert.True(e.Isr == s.Isr, $"{where}: vCPU {i} ISR");
                Assert.True(e.Tmr == s.Tmr, $"{where}: vCPU {i} TMR");
                Assert.True(e.PendingEvents == s.PendingEvents, $"{where}: vCPU {i} pending {s.PendingEvents} vs emulated {e.PendingEvents}");
                Assert.True(e.ProcessorPriority == s.ProcessorPriority, $"{where}: vCPU {i} PPR");
            }
        }

        private static void ProgramPin(VirtualMachine m, int pin, byte vector, int cpu)
        {
            IoApic io = m.IoApic;
            io.WriteMmio(io.BaseAddress, (uint)(0x10 + (2 * pin) + 1));
            io.WriteMmio(io.BaseAddress + 0x10, (uint)cpu << 24);
            io.WriteMmio(io.BaseAddress, (uint)(0x10 + (2 * pin)));
            io.WriteMmio(io.BaseAddress + 0x10, vector);
        }

        private static void Boot(VirtualMachine m)
        {
            Vcpu bsp = m.GetVcpu(0);
            Assert.Equal(ApicAccessResult.Ok, bsp.WriteMsr(0x80F, 0x1FF));
            for (int i = 1; i < m.VcpuCount; i++)
            {
                Assert.Equal(ApicAccessResult.Ok, bsp.WriteMsr(0x830, ((ulong)i << 32) | 0x4500));
                Assert.Equal(CpuEventKind.Init, m.GetVcpu(i).Accept().Kind);
                Assert.Equal(ApicAccessResult.Ok, bsp.WriteMsr(0x830, ((ulong)i << 32) | 0x4608));
                Assert.Equal(CpuEventKind.StartUp, m.GetVcpu(i).Accept().Kind);
                Assert.Equal(ApicAccessResult.Ok, m.GetVcpu(i).WriteMsr(0x80F, 0x1FF));
            }
        }
    }
}
