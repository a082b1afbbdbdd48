using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// A hostile guest under passthrough: random ICR values (reserved bits, every delivery mode,
/// shorthand and destination mode, destinations aimed at the host's physical IDs), random MSR
/// reads and writes anywhere (reserved bits included, the APIC base and the TSC among them),
/// random MSIs, on random host shapes. After every step: nothing was ever sent to a pCPU outside
/// the VM, every ID and LDR read returned the virtual value and never a physical one, every MSR
/// access exited exactly when the vCPU's bitmap said so, the model did not throw, and the guest saw
/// exactly what it sees under emulation.
/// </summary>
public class PassthroughSecurityProperties
{
    private enum OpKind : byte
    {
        Icr,
        Msr,
        IdentityRead,
        Mmio,
        Msi,
        Accept,
        HostState,
        Time,
    }

    private readonly record struct Op(OpKind Kind, int Cpu, uint Number, ulong Value, bool Write);

    private readonly record struct Config(int Vcpus, bool ForceX2Apic, int SwitchMask, int ExtraHostCpus, int PinSeed, long TscOffset, bool Thermal, bool IcrRead);

    private static readonly uint[] s_interestingMsrs = [0x10, 0x1B, 0x3B, 0x6E0, 0xBD, 0x10A, 0x802, 0x803, 0x80B, 0x80D, 0x80F, 0x830, 0x833, 0x838, 0x83F, 0x900, 0xBFF];

    private static readonly Gen<uint> s_hostileDestination = Gen.OneOf(
        Gen.UInt,                                                        // anything
        Gen.Int[0, 24].Select(p => PassthroughHost.PhysicalApicIdOf(p)), // a physical ID of the host
        Gen.UInt[0, 7],                                                  // a virtual ID, maybe
        Gen.Const(0xFFFF_FFFFu),                                         // broadcast
        Gen.UInt[0, 0xFFFF].Select(c => (c << 16) | 0xFFFF));            // every member of a logical cluster

    private static readonly Gen<ulong> s_hostileIcr = Gen.OneOf(
        Gen.ULong,
        Gen.Select(s_hostileDestination, Gen.Int[0, 7], Gen.Bool, Gen.Int[0, 3], Gen.Byte, Gen.Bool, Gen.Bool)
           .Select((destination, mode, logical, shorthand, vector, level, trigger) =>
               ((ulong)destination << 32) | (uint)(vector | (mode << 8) | (logical ? 0x800 : 0) | (level ? 0x4000 : 0) | (trigger ? 0x8000 : 0) | (shorthand << 18))));

    private static readonly Gen<Op> s_op = Gen.Frequency(
        (10, Gen.Select(Gen.Int[0, 7], s_hostileIcr, Gen.Bool).Select((cpu, icr, mmio) => new Op(OpKind.Icr, cpu, 0, icr, mmio))),
        (8, Gen.Select(Gen.Int[0, 7], Gen.OneOf(Gen.Int[0, s_interestingMsrs.Length - 1].Select(i => s_interestingMsrs[i]), Gen.UInt[0x800, 0x8FF], Gen.UInt), Gen.OneOf(Gen.ULong, Gen.ULong[0, 0x1FF], Gen.Const(0xFEE0_0C00UL), Gen.Const(0xFEE0_0D00UL)), Gen.Bool)
           .Select((cpu, msr, value, write) => new Op(OpKind.Msr, cpu, msr, value, write))),
        (4, Gen.Select(Gen.Int[0, 7], Gen.Bool).Select((cpu, ldr) => new Op(OpKind.IdentityRead, cpu, ldr ? 0x80Du : 0x802u, 0, false))),
        (2, Gen.Select(Gen.Int[0, 7], Gen.UInt[0, 0x3FF], Gen.UInt, Gen.Bool).Select((cpu, offset, value, write) => new Op(OpKind.Mmio, cpu, offset << 2, value, write))),
        (3, Gen.Select(Gen.UInt[0, 0xF_FFFF], Gen.UInt).Select((address, data) => new Op(OpKind.Msi, 0, address, data, false))),
        (4, Gen.Int[0, 7].Select(cpu => new Op(OpKind.Accept, cpu, 0, 0, false))),
        (2, Gen.Select(Gen.Int[0, 7], Gen.Int[0, 2]).Select((cpu, state) => new Op(OpKind.HostState, cpu, (uint)state, 0, false))),
        (1, Gen.ULong[0, 5000].Select(ns => new Op(OpKind.Time, 0, 0, ns, false))));

    private static readonly Gen<Config> s_config =
        Gen.Select(Gen.Int[1, 6], Gen.Frequency((1, Gen.Const(true)), (3, Gen.Const(false))), Gen.Int[0, 63], Gen.Int[0, 6], Gen.Int[0, 1000], Gen.OneOf(Gen.Const(0L), Gen.Long), Gen.Bool, Gen.Bool)
           .Select((n, force, mask, extra, seed, offset, thermal, icrRead) => new Config(n, force, mask, extra, seed, offset, thermal, icrRead));

    [Fact]
    public void HostileGuestNeverEscapesNorSeesAPhysicalId() =>
        Gen.Select(s_config, s_op.Array[1, 120])
           .Sample((config, ops) => new Pair(config).Run(ops), iter: 400, time: 10);

    private sealed class Pair
    {
        private readonly Config _config;
        private readonly PassthroughMode _mode;
        private readonly VirtualMachine _p;
        private readonly VirtualMachine _e;
        private readonly HashSet<ulong> _physicalIds = [];
        private readonly HashSet<ulong> _physicalLdrs = [];

        public Pair(Config config)
        {
            _config = config;
            int n = config.Vcpus;
            int hostCpus = n + config.ExtraHostCpus;

            // A random placement: the VM's pCPUs scattered over the host.
            int[] pinning = [.. Enumerable.Range(0, hostCpus).OrderBy(p => ((p * 7919) + config.PinSeed) % 1009).Take(n)];
            _mode = new PassthroughMode(new PassthroughOptions
            {
                HostCpuCount = hostCpus,
                Pinning = pinning,
                InterceptThermal = config.Thermal,
                InterceptIcrRead = config.IcrRead,
            });
            var options = new MachineOptions { VcpuCount = n, ForceX2Apic = config.ForceX2Apic, TscOffset = config.TscOffset };
            _p = new VirtualMachine(options, _mode);
            _e = new VirtualMachine(options, new EmulatedMode());
            for (int pcpu = 0; pcpu < hostCpus; pcpu++)
            {
                _physicalIds.Add(_mode.Host.PhysicalApicId(pcpu));
                _physicalLdrs.Add(_mode.Host.PhysicalLogicalId(pcpu));
            }

            for (int i = 0; i < n; i++)
            {
                if ((config.SwitchMask & (1 << i)) != 0)
                {
                    foreach (VirtualMachine m in new[] { _p, _e })
                    {
                        Vcpu v = m.GetVcpu(i);
                        if (v.Apic.Mode == ApicMode.XApic)
                        {
                            Assert.Equal(ApicAccessResult.Ok, v.WriteMsr(0x1B, v.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable));
                        }
                    }
                }
            }
        }

        public void Run(Op[] ops)
        {
            for (int step = 0; step < ops.Length; step++)
            {
                Apply(ops[step], $"step {step} {ops[step]}");
                AssertNoEscape($"step {step} {ops[step]}");
            }
        }

        private void Apply(Op op, string where)
        {
            int cpu = op.Cpu % _config.Vcpus;
            Vcpu p = _p.GetVcpu(cpu), e = _e.GetVcpu(cpu);
            switch (op.Kind)
            {
                case OpKind.Icr:
                    if (op.Write && p.Apic.Mode == ApicMode.XApic)
                    {
                        // The same hostile value through the xAPIC window: high then low.
                        ulong window = p.Apic.MmioBase;
                        Same(where, p.WriteMmio(window + 0x310, (uint)(op.Value >> 32)), e.WriteMmio(window + 0x310, (uint)(op.Value >> 32)));
                        Same(where, p.WriteMmio(window + 0x300, (uint)op.Value), e.WriteMmio(window + 0x300, (uint)op.Value));
                    }
                    else
                    {
                        CheckedMsrWrite(p, e, 0x830, op.Value, where);
                    }

                    break;
                case OpKind.Msr:
                    if (op.Write)
                    {
                        CheckedMsrWrite(p, e, op.Number, op.Value, where);
                    }
                    else
                    {
                        CheckedMsrRead(p, e, op.Number, where);
                    }

                    break;
                case OpKind.IdentityRead:
                    CheckedMsrRead(p, e, op.Number, where);
                    if (p.Apic.Mode == ApicMode.XApic)
                    {
                        ulong offset = op.Number == 0x802 ? 0x20UL : 0xD0UL;
                        ApicAccessResult r = p.ReadMmio(p.Apic.MmioBase + offset, out uint value);
                        Same(where, r, e.ReadMmio(e.Apic.MmioBase + offset, out uint expected));
                        Assert.Equal(expected, value);
                    }

                    break;
                case OpKind.Mmio:
                {
                    ulong address = 0xFEE0_0000UL + op.Number;
                    if (op.Write)
                    {
                        Same(where, p.WriteMmio(address, (uint)op.Value), e.WriteMmio(address, (uint)op.Value));
                    }
                    else
                    {
                        Same(where, p.ReadMmio(address, out uint a), e.ReadMmio(address, out uint b));
                        Assert.Equal(b, a);
                    }

                    break;
                }

                case OpKind.Msi:
                    Assert.Equal(_e.SendMsi(0xFEE0_0000UL | op.Number, (uint)op.Value), _p.SendMsi(0xFEE0_0000UL | op.Number, (uint)op.Value));
                    break;
                case OpKind.Accept:
                    Assert.Equal(e.Accept(), p.Accept());
                    break;
                case OpKind.HostState:
                    p.SetHostState((VcpuHostState)op.Number);
                    e.SetHostState((VcpuHostState)op.Number);
                    break;
                case OpKind.Time:
                    _p.Advance((long)op.Value);
                    _e.Advance((long)op.Value);
                    break;
            }
        }

        private void CheckedMsrRead(Vcpu p, Vcpu e, uint msr, string where)
        {
            bool passthrough = _mode.IsPassthroughActive(p.Index);
            bool intercepted = _mode.GetMsrBitmap(p.Index).IsReadIntercepted(msr);
            long exits = _mode.Ledger.ExitsOf(ExitReason.MsrRead);

            ApicAccessResult r = p.ReadMsr(msr, out ulong value);
            Same(where, r, e.ReadMsr(msr, out ulong expected));
            Assert.Equal(expected, value);

            if (passthrough)
            {
                Assert.True(intercepted == (_mode.Ledger.ExitsOf(ExitReason.MsrRead) == exits + 1), $"{where}: exit does not follow the bitmap for RDMSR 0x{msr:x}");
            }

            if (msr is 0x802 or 0x80D && r == ApicAccessResult.Ok)
            {
                // The virtual value, derived from the configured ID, never a physical one.
                uint virtualId = _p.Options.ApicIdOf(p.Index);
                Assert.Equal(msr == 0x802 ? virtualId : ApicRegister.DeriveX2ApicLogicalId(virtualId), value);
                Assert.DoesNotContain(value, msr == 0x802 ? _physicalIds : _physicalLdrs);
                Assert.True(!passthrough || intercepted, $"{where}: identity read passed through");
            }
        }

        private void CheckedMsrWrite(Vcpu p, Vcpu e, uint msr, ulong value, string where)
        {
            bool passthrough = _mode.IsPassthroughActive(p.Index);
            bool intercepted = _mode.GetMsrBitmap(p.Index).IsWriteIntercepted(msr);
            long exits = _mode.Ledger.ExitsOf(ExitReason.MsrWrite);

            Same(where, p.WriteMsr(msr, value), e.WriteMsr(msr, value));
            if (passthrough)
            {
                Assert.True(intercepted == (_mode.Ledger.ExitsOf(ExitReason.MsrWrite) == exits + 1), $"{where}: exit does not follow the bitmap for WRMSR 0x{msr:x}");
                Assert.True(msr != 0x830 || intercepted, $"{where}: ICR write passed through");
            }
        }

        private static void Same(string where, ApicAccessResult passthrough, ApicAccessResult emulated) =>
            Assert.True(passthrough == emulated, $"{where}: passthrough {passthrough}, emulation {emulated}");

        private void AssertNoEscape(string where)
        {
            PassthroughHost host = _mode.Host;
            Assert.True(host.BlockedIpis == 0, $"{where}: a translation aimed outside the VM");
            Assert.Equal(0, _mode.Counters.PhysicalIdentityLeaks);
            Assert.Equal(0, _mode.Counters.UntranslatedIcrWrites);
            if (_config.IcrRead)
            {
                Assert.Equal(0, _mode.Counters.PhysicalIcrReadbacks);
            }

            for (int pcpu = 0; pcpu < host.CpuCount; pcpu++)
            {
                Assert.True(host.IsOwnedByVm(pcpu) || host.IpisReceived(pcpu) == 0, $"{where}: pCPU {pcpu} of another VM received an IPI");
            }

            foreach (PhysicalIpi ipi in host.RecentIpis())
            {
                Assert.True(host.TryFindPcpu(ipi.DestinationPhysicalId, out int destination) && host.IsOwnedByVm(destination), $"{where}: {ipi}");
                Assert.True(ipi.SourcePcpu == -1 || host.IsOwnedByVm(ipi.SourcePcpu), $"{where}: {ipi}");
                Assert.True(ipi.Mode is DeliveryMode.Fixed or DeliveryMode.Nmi, $"{where}: {ipi}");
            }

            for (int i = 0; i < _config.Vcpus; i++)
            {
                LocalApic a = _p.GetVcpu(i).Apic, b = _e.GetVcpu(i).Apic;
                Assert.True(a.Irr == b.Irr && a.Isr == b.Isr && a.Tmr == b.Tmr && a.PendingEvents == b.PendingEvents && a.BaseMsr == b.BaseMsr, $"{where}: vCPU {i} differs from emulation");
                if (_mode.IsPassthroughActive(i))
                {
                    MsrBitmap bitmap = _mode.GetMsrBitmap(i);
                    Assert.True(bitmap.IsReadIntercepted(0x802) && bitmap.IsReadIntercepted(0x80D) && bitmap.IsWriteIntercepted(0x830), $"{where}: vCPU {i} bitmap lost a required intercept");
                }
            }
        }
    }
}
