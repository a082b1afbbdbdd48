using CsCheck;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Avic;
using Vapic.Virtualization.Nested;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// No interrupt is lost when L2 uses L1's APIC page directly (virtualization-reference §4.4): on a
/// two-vCPU machine vCPU 0 runs an L2 that L1 gives its APIC page (no APIC virtualization), and
/// random sequences of L2 register reads, TPR writes and EOIs, device MSIs and IPIs from vCPU 1,
/// host-state changes and accepts run under every mode and under plain emulation. By default every
/// step sees the same thing in every mode, the inhibit is set exactly where L1's APIC was
/// accelerated when L2 first touched it, and after draining every interrupt sent was taken exactly
/// once or merged into one still pending. Under the quirk, a mode without an APIC-access page still
/// loses nothing, and an accelerated one differs from emulation only after an EOI it lost.
/// </summary>
public sealed class NestedNoLostInterruptProperties
{
    private enum OpKind : byte
    {
        Msi,
        Ipi,
        HostState,
        L2Read,
        L2Tpr,
        L2Eoi,
        Accept,
    }

    private readonly record struct Op(OpKind Kind, int A, int B)
    {
        public override string ToString() => $"{Kind}({A}, {B})";
    }

    private static readonly byte[] s_vectors = [0x31, 0x41, 0x42, 0x51, 0x61, 0xE1];

    // Registers L2 reads through L1's page: ID, version, TPR, PPR, LDR, SVR, ISR, TMR and IRR words, current count.
    private static readonly uint[] s_readOffsets = [0x020, 0x030, 0x080, 0x0A0, 0x0D0, 0x0F0, 0x110, 0x120, 0x130, 0x170, 0x190, 0x210, 0x220, 0x230, 0x270, 0x390];

    private static readonly Gen<OpKind> s_kinds = Gen.Frequency(
        (5, OpKind.Msi), (3, OpKind.Ipi), (3, OpKind.HostState), (3, OpKind.L2Read), (1, OpKind.L2Tpr), (4, OpKind.L2Eoi), (6, OpKind.Accept));

    private static readonly Gen<Op> s_op = Gen.Select(s_kinds, Gen.Int[0, 255], Gen.Int[0, 15], (kind, a, b) => new Op(kind, a, b));

    private static readonly string[] s_modes = ["apicv", "apicv-no-ipiv", "apicv-tpr-shadow", "avic", "passthrough", "emulated"];

    [Fact]
    public void ByDefault_EveryModeTakesWhatEmulationTakes_AndNothingIsLost() =>
        Gen.Select(Gen.Int[0, s_modes.Length - 1].Select(i => s_modes[i]), s_op.Array[1, 120])
            .Sample((mode, ops) => CompareDefault(mode, ops), iter: 400, time: 5);

    [Fact]
    public void UnderTheQuirk_OnlyAnAcceleratedModeLoses_AndOnlyAfterALostEoi() =>
        Gen.Select(Gen.Int[0, s_modes.Length - 1].Select(i => s_modes[i]), s_op.Array[1, 120])
            .Sample((mode, ops) => CompareQuirk(mode, ops), iter: 400, time: 5);

    private static void CompareDefault(string mode, Op[] ops)
    {
        var subject = new Driver(CreateMode(mode), NestedQuirks.None);
        var reference = new Driver(new EmulatedMode(), NestedQuirks.None);
        bool touched = false;
        for (int step = 0; step < ops.Length; step++)
        {
            string a = subject.Run(ops[step]);
            string e = reference.Run(ops[step]);
            Assert.True(a == e, $"{mode}, step {step} {ops[step]}: saw {a}, emulation saw {e}");
            touched |= ops[step].Kind is OpKind.L2Read or OpKind.L2Tpr or OpKind.L2Eoi;
        }

        bool honors = (subject.Mode.Inhibits.VendorMask & ApicvInhibitMask.L2PassthroughAccess) != 0;
        Assert.Equal(honors && touched, subject.Mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess));
        Assert.Equal(honors && touched ? 1 : 0, subject.Nested.Counters.DirectAccessesWhileAccelerated);

        List<CpuEvent> drainedSubject = subject.Drain();
        List<CpuEvent> drainedReference = reference.Drain();
        Assert.Equal(drainedReference, drainedSubject);
        Assert.Equal(reference.FixedTaken, subject.FixedTaken);
        Assert.Equal(0, subject.Nested.Counters.EoisLost);

        // Exactly once: every interrupt sent was taken, or merged into one that was already pending.
        LocalApicCounters counters = reference.Machine.GetVcpu(0).Apic.Counters;
        Assert.Equal(reference.Sent, reference.FixedTaken + counters.Merged);
        Assert.True(reference.Machine.GetVcpu(0).Apic.Irr.IsEmpty);
    }

    private static void CompareQuirk(string mode, Op[] ops)
    {
        VirtualizationMode created = CreateMode(mode);
        var subject = new Driver(created, NestedQuirks.L2PassthroughNoInhibit);
        var reference = new Driver(new EmulatedMode(), NestedQuirks.L2PassthroughNoInhibit);
        for (int step = 0; step < ops.Length; step++)
        {
            string a = subject.Run(ops[step]);
            string e = reference.Run(ops[step]);
            if (subject.Nested.Counters.EoisLost == 0)
            {
                Assert.True(a == e, $"{mode}, step {step} {ops[step]}: saw {a}, emulation saw {e} before any EOI was lost");
            }
        }

        Assert.False(subject.Mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess));
        subject.Drain();
        reference.Drain();
        if ((created.Inhibits.VendorMask & ApicvInhibitMask.L2PassthroughAccess) == 0)
        {
            Assert.Equal(0, subject.Nested.Counters.EoisLost);
        }

        if (subject.Nested.Counters.EoisLost == 0)
        {
            Assert.Equal(reference.FixedTaken, subject.FixedTaken);
        }
        else
        {
            Assert.True(subject.FixedTaken < reference.FixedTaken || subject.Machine.GetVcpu(0).Apic.Isr.Count > 0);
        }
    }

    private static VirtualizationMode CreateMode(string name) => name switch
    {
        "apicv" => new ApicvMode(),
        "apicv-no-ipiv" => new ApicvMode(ApicvFeatures.WithoutIpiVirtualization),
        "apicv-tpr-shadow" => new ApicvMode(ApicvFeatures.TprShadowOnly),
        "avic" => new AvicMode(),
        "passthrough" => new PassthroughMode(),
        _ => new EmulatedMode(),
    };

    /// <summary>vCPU 0 runs the L2; vCPU 1 is an L1 vCPU that sends IPIs.</summary>
    private sealed class Driver
    {
        public Driver(VirtualizationMode mode, NestedQuirks quirks)
        {
            Mode = mode;
            Machine = new VirtualMachine(new MachineOptions { VcpuCount = 2 }, mode);
            Machine.GetVcpu(0).WriteMmio(LocalApic.DefaultBase + 0xF0, 0x1FF);
            Machine.GetVcpu(1).WriteMmio(LocalApic.DefaultBase + 0xF0, 0x1FF);
            Nested = new NestedVmx(mode, quirks);
            Nested.GetVmcs12(0).Controls = Vmcs12Controls.EnableEpt;
            Assert.Equal(VmEntryOutcome.EnteredL2, Nested.VmLaunch(0).Outcome);
        }

        public VirtualizationMode Mode { get; }

        public VirtualMachine Machine { get; }

        public NestedVmx Nested { get; }

        public long Sent { get; private set; }

        public long FixedTaken { get; private set; }

        public string Run(Op op)
        {
            Vcpu l2Cpu = Machine.GetVcpu(0);
            byte vector = s_vectors[op.A % s_vectors.Length];
            switch (op.Kind)
            {
                case OpKind.Msi:
                    Machine.SendMsi(0xFEE0_0000, vector);
                    Sent++;
                    return "";
                case OpKind.Ipi:
                    Machine.GetVcpu(1).WriteMmio(LocalApic.DefaultBase + 0x310, 0);
                    Machine.GetVcpu(1).WriteMmio(LocalApic.DefaultBase + 0x300, vector);
                    Sent++;
                    return "";
                case OpKind.HostState:
                    l2Cpu.SetHostState((VcpuHostState)(op.B % 3));
                    return "";
                case OpKind.L2Read:
                    return Nested.L2Read(0, LocalApic.DefaultBase + s_readOffsets[op.B % s_readOffsets.Length]).ToString();
                case OpKind.L2Tpr:
                    return Nested.L2Write(0, LocalApic.DefaultBase + 0x80, (uint)(op.B & 7) << 4).ToString();
                case OpKind.L2Eoi:
                    return Nested.L2Write(0, LocalApic.DefaultBase + 0xB0, 0).ToString();
                default:
                {
                    CpuEvent taken = l2Cpu.Accept();
                    if (taken.Kind == CpuEventKind.Fixed)
                    {
                        FixedTaken++;
                    }

                    return taken.ToString();
                }
            }
        }

        /// <summary>L2 lowers its TPR, then takes and EOIs everything left.</summary>
        public List<CpuEvent> Drain()
        {
            var taken = new List<CpuEvent>();
            Nested.L2Write(0, LocalApic.DefaultBase + 0x80, 0);
            for (int guard = 0; guard < 1024; guard++)
            {
                CpuEvent e = Machine.GetVcpu(0).Accept();
                if (e.Kind == CpuEventKind.None)
                {
                    break;
                }

                taken.Add(e);
                if (e.Kind == CpuEventKind.Fixed)
                {
                    FixedTaken++;
                    Nested.L2Write(0, LocalApic.DefaultBase + 0xB0, 0);
                }
            }

            // Whatever is still in service (EOIs the guest never wrote) is ended too, then taken.
            for (int guard = 0; guard < 256 && !Machine.GetVcpu(0).Apic.Isr.IsEmpty; guard++)
            {
                Nested.L2Write(0, LocalApic.DefaultBase + 0xB0, 0);
                CpuEvent e = Machine.GetVcpu(0).Accept();
                if (e.Kind == CpuEventKind.Fixed)
                {
                    taken.Add(e);
                    FixedTaken++;
                }
            }

            return taken;
        }
    }
}
