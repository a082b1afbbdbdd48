using System.Text;
using CsCheck;
using Vapic.Apic.SavedState;
using Xunit;

namespace Vapic.Apic.Tests.SavedState;

/// <summary>
/// Save at a random point, restore into a fresh APIC whose clock reads something else entirely,
/// and run the same remaining operations on both: every result, register read (TMCCT included),
/// IPI, EOI broadcast and timer expiry (relative to the save instant, to the nanosecond) agrees.
/// </summary>
public sealed class LocalApicSavedStateProperties
{
    private static readonly byte[] s_vectors = [0x20, 0x31, 0x40, 0x41, 0x55, 0x61, 0x70, 0x80, 0xC4, 0xFF, 0x05];

    private static readonly int[] s_writableOffsets =
        [0x020, 0x080, 0x0B0, 0x0D0, 0x0E0, 0x0F0, 0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x3E0];

    private static readonly int[] s_readableOffsets =
    [
        0x020, 0x030, 0x080, 0x0A0, 0x0D0, 0x0E0, 0x0F0, 0x100, 0x110, 0x120, 0x130, 0x140, 0x150, 0x160, 0x170,
        0x180, 0x190, 0x1A0, 0x1B0, 0x1C0, 0x1D0, 0x1E0, 0x1F0, 0x200, 0x210, 0x220, 0x230, 0x240, 0x250, 0x260, 0x270,
        0x280, 0x300, 0x310, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3E0,
    ];

    private enum Kind : byte
    {
        Write,
        Timer,
        Accept,
        Acknowledge,
        Lint,
        Advance,
        Base,
        TscOffset,
        TscDeadline,
        ReadAll,
        ClearEvents,
        LevelLint0,
    }

    private readonly record struct Op(Kind Kind, uint A, uint B, uint C);

    private readonly record struct Setup(uint Id, bool X2Apic, bool Locked, bool Suppression, int BusCycleNs, bool Enable);

    private static readonly Gen<Op> s_op = Gen.Select(
        Gen.Frequency(
            (10, Gen.Const(Kind.Write)),
            (9, Gen.Const(Kind.Timer)),
            (6, Gen.Const(Kind.Accept)),
            (5, Gen.Const(Kind.Acknowledge)),
            (2, Gen.Const(Kind.Lint)),
            (7, Gen.Const(Kind.Advance)),
            (2, Gen.Const(Kind.Base)),
            (1, Gen.Const(Kind.TscOffset)),
            (3, Gen.Const(Kind.TscDeadline)),
            (2, Gen.Const(Kind.ReadAll)),
            (1, Gen.Const(Kind.ClearEvents)),
            (1, Gen.Const(Kind.LevelLint0))),
        Gen.UInt, Gen.UInt, Gen.UInt,
        (k, a, b, c) => new Op(k, a, b, c));

    private static readonly Gen<Setup> s_setup = Gen.Select(
        Gen.Frequency((3, Gen.UInt[0, 0xFE]), (1, Gen.UInt[0, 0xFFFF_FFFE])), Gen.Int[0, 3], Gen.Bool, Gen.Int[1, 3], Gen.Int[0, 7],
        (id, x2, suppression, bus, enable) => new Setup(id, x2 >= 2, x2 == 3, suppression, bus, enable != 0));

    [Fact]
    public void RestoreAtAnotherTime_ContinuesExactlyLikeTheUninterruptedApic() =>
        Gen.Select(s_setup, s_op.Array[2, 120], Gen.Double[0, 1], Gen.Long[-1_000_000, 1L << 50])
            .Sample((setup, ops, splitFraction, clockShift) =>
            {
                int split = (int)(splitFraction * ops.Length);
                TestApicHost original = Create(setup);
                var prefixLog = new StringBuilder();
                for (int i = 0; i < split; i++)
                {
                    Run(original, ops[i], prefixLog, 0);
                }

                LocalApicState saved = original.Apic.Save();
                long savedAt = original.Now;

                TestApicHost restored = Create(setup);
                restored.Now = Math.Max(0, savedAt + clockShift);
                SavedStateResult result = restored.Apic.Restore(saved);
                Assert.True(result.IsSuccess, result.ToString());
                Assert.Equal(saved, restored.Apic.Save());

                var expected = new StringBuilder();
                var actual = new StringBuilder();
                long restoredAt = restored.Now;
                for (int i = split; i < ops.Length; i++)
                {
                    Run(original, ops[i], expected, savedAt);
                    Run(restored, ops[i], actual, restoredAt);
                }

                Assert.Equal(expected.ToString(), actual.ToString());
                Assert.Equal(original.Apic.Save(), restored.Apic.Save());
            }, iter: 1000);

    private static TestApicHost Create(Setup s)
    {
        TestApicHost host = TestApicHost.Create(id: s.Id, x2Apic: s.X2Apic, locked: s.Locked, eoiSuppression: s.Suppression, busCycleNs: s.BusCycleNs);
        host.Loopback = true;
        if (s.Enable)
        {
            // As a guest does first: SVR = 0x1FF, software-enabled.
            Assert.Equal(ApicAccessResult.Ok, WriteRegister(host.Apic, 0x0F0, 0x1FF, 0));
        }

        return host;
    }

    /// <summary>Runs one operation and logs what a guest or the platform could observe, with times relative to <paramref name="origin"/>.</summary>
    private static void Run(TestApicHost host, Op op, StringBuilder log, long origin)
    {
        LocalApic apic = host.Apic;
        int ipis = host.SentIpis.Count;
        int eois = host.EoiBroadcasts.Count;
        switch (op.Kind)
        {
            case Kind.Write:
                {
                    int offset = s_writableOffsets[op.A % (uint)s_writableOffsets.Length];
                    uint value = offset switch
                    {
                        0x300 => (op.B & 0x000C_CF00) | Vector(op.C) | ((op.B & 3) == 0 ? 0 : 0x4_0000u), // mostly self IPIs
                        0x320 or 0x330 or 0x340 or 0x350 or 0x360 or 0x370 => (op.B & 0x0007_E700) | Vector(op.C),
                        0x380 => op.B % 4000,
                        0x0F0 => (op.B & 0x1300) | 0xFF | ((op.B & 7) == 0 ? 0 : 0x100u),
                        _ => op.B,
                    };
                    log.AppendLine($"write {offset:x3} {value:x8} {WriteRegister(apic, offset, value, op.C)}");
                    break;
                }

            case Kind.Timer:
                {
                    uint mode = (op.A % 4) << 17;
                    uint masked = (op.A & 0x30) == 0 ? 0x1_0000u : 0;
                    log.Append($"timer {WriteRegister(apic, 0x320, mode | masked | Vector(op.C), 0)} ");
                    log.Append($"{WriteRegister(apic, 0x3E0, op.B & 0xB, 0)} ");
                    if (mode == 2u << 17)
                    {
                        ulong tsc = (ulong)(host.Now + apic.TscOffset);
                        log.AppendLine($"{apic.WriteMsr(0x6E0, tsc + ((op.B >> 8) % 8000) - 500)} next {Relative(apic.TimerDeadline, origin)}");
                    }
                    else
                    {
                        log.AppendLine($"{WriteRegister(apic, 0x380, 1 + ((op.B >> 8) % 3000), 0)}");
                    }
                    break;
                }

            case Kind.Accept:
                {
                    var mode = (DeliveryMode)((op.A % 10) switch { < 5 => 0u, 5 => 1u, 6 => 4u, 7 => 2u, 8 => 5u, _ => 6u });
                    log.AppendLine($"accept {mode} {apic.AcceptInterrupt(mode, Vector(op.B), (op.C & 1) != 0)}");
                    break;
                }

            case Kind.Acknowledge:
                log.AppendLine($"ack {apic.AcknowledgeInterrupt()}");
                if ((op.A & 1) == 0)
                {
                    log.AppendLine($"eoi {WriteRegister(apic, 0x0B0, 0, 0)}");
                }

                break;
            case Kind.Lint:
                apic.SetLint((int)(op.A & 1), (op.B & 1) != 0);
                log.AppendLine($"lint {op.A & 1} {op.B & 1}");
                break;
            case Kind.Advance:
                {
                    long target = host.Now + (op.A % 3 == 0 ? op.B % 20_000 : op.B % 2_000);
                    while (apic.TimerDeadline <= target)
                    {
                        host.Now = Math.Max(host.Now, apic.TimerDeadline);
                        log.AppendLine($"expiry at {host.Now - origin}");
                        apic.OnTimer();
                    }

                    host.Now = target;
                    log.AppendLine($"now {host.Now - origin} tmcct {apic.CurrentCount} next {Relative(apic.TimerDeadline, origin)}");
                    break;
                }

            case Kind.Base:
                {
                    ulong value = (apic.BaseMsr & ~0xC00UL) | ((ulong)(op.A % 4) << 10);
                    log.AppendLine($"base {value:x} {apic.WriteMsr(0x1B, value)}");
                    break;
                }

            case Kind.TscOffset:
                // A WRMSR to IA32_TSC as the vCPU performs it: the offset makes the TSC read the value now.
                apic.TscOffset = (op.A % 100_000) - host.Now;
                log.AppendLine($"tsc write {op.A % 100_000} next {Relative(apic.TimerDeadline, origin)}");
                break;
            case Kind.TscDeadline:
                {
                    ulong tsc = (ulong)(host.Now + apic.TscOffset);
                    ulong deadline = op.A % 5 == 0 ? 0 : tsc + (op.B % 8000) - 1000;
                    log.AppendLine($"tsc deadline {deadline - tsc} {apic.WriteMsr(0x6E0, deadline)} next {Relative(apic.TimerDeadline, origin)}");
                    break;
                }

            case Kind.ReadAll:
                log.Append($"read mode {apic.Mode} base {apic.BaseMsr:x} ppr {apic.ProcessorPriority:x} events {apic.PendingEvents} sipi {apic.StartupVector:x} ");
                log.Append($"tsc {apic.TscOffset + host.Now} deadline-msr {(apic.ReadMsr(0x6E0, out ulong d) == ApicAccessResult.Ok ? d : 0)} ");
                foreach (int offset in s_readableOffsets)
                {
                    log.Append($"{offset:x3}={ReadRegister(apic, offset)} ");
                }

                log.AppendLine();
                break;
            case Kind.LevelLint0:
                log.Append($"level lint0 {WriteRegister(apic, 0x350, 0x8000u | Vector(op.A), 0)} ");
                apic.SetLint(0, (op.B & 3) != 0);
                log.AppendLine($"{apic.IsLintAsserted(0)}");
                break;
            case Kind.ClearEvents:
                apic.ClearPendingEvents((ApicEvents)(op.A & 0x1F));
                log.AppendLine("clear events");
                break;
        }

        for (int i = ipis; i < host.SentIpis.Count; i++)
        {
            log.AppendLine($"  ipi {host.SentIpis[i]}");
        }

        for (int i = eois; i < host.EoiBroadcasts.Count; i++)
        {
            log.AppendLine($"  eoi broadcast {host.EoiBroadcasts[i]:x2}");
        }
    }

    private static string Relative(long deadline, long origin) => deadline == long.MaxValue ? "none" : (deadline - origin).ToString();

    private static byte Vector(uint raw) => s_vectors[raw % (uint)s_vectors.Length];

    private static ApicAccessResult WriteRegister(LocalApic apic, int offset, uint value, uint high)
    {
        if (apic.Mode == ApicMode.X2Apic)
        {
            uint msr = 0x800 + (uint)(offset >> 4);
            return offset switch
            {
                0x300 => apic.WriteMsr(msr, ((ulong)high << 32) | value),
                0x310 or 0x020 or 0x0D0 or 0x0E0 => apic.WriteMsr(msr, value),
                0x0B0 or 0x280 => apic.WriteMsr(msr, 0),
                _ => apic.WriteMsr(msr, value & (offset == 0x380 ? 0xFFFF_FFFF : offset == 0x3E0 ? 0xBu : 0x0007_E7FFu)),
            };
        }

        return apic.WriteMmio(apic.MmioBase + (ulong)offset, value);
    }

    private static string ReadRegister(LocalApic apic, int offset)
    {
        ApicAccessResult r = apic.Mode == ApicMode.X2Apic
            ? apic.ReadMsr(0x800 + (uint)(offset >> 4), out ulong value)
            : ReadMmio(apic, offset, out value);
        return r == ApicAccessResult.Ok ? value.ToString("x") : r.ToString();
    }

    private static ApicAccessResult ReadMmio(LocalApic apic, int offset, out ulong value)
    {
        ApicAccessResult r = apic.ReadMmio(apic.MmioBase + (ulong)offset, out uint v);
        value = v;
        return r;
    }
}
