using CsCheck;
using Vapic.Apic;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// Random sequences of LVT Timer mode changes, DCR writes, TMICT writes, TSC-deadline writes, time
/// advances and TMCCT reads on 1-3 vCPUs, checked against an independent model of lapic-reference.md
/// §9 (A12, A13, A14): expiries are collected by stepping the machine to
/// <see cref="VirtualMachine.NextTimerDeadline"/> and must fall exactly at T0 + k × N × div (with the
/// origin re-based by DCR writes), and TMCCT must read N − (floor((t − T0) / div) mod N).
/// </summary>
/// <remarks>
/// Every access happens at an arbitrary time, except that a DCR write while counting is moved to the
/// next tick boundary: the SDM is silent on a partly elapsed tick and the project's rounding there is
/// its own choice (A13, A14).
/// </remarks>
public sealed class TimerProperties
{
    private enum TimerOpKind
    {
        InitialCount,
        DivideConfiguration,
        LvtTimer,
        TscDeadline,
        Advance,
        ReadCount,
    }

    private readonly record struct TimerOp(TimerOpKind Kind, int Cpu, uint A)
    {
        public static readonly Gen<TimerOp> Generator = Gen.Select(
            Gen.Frequency(
                (4, Gen.Const(TimerOpKind.InitialCount)),
                (3, Gen.Const(TimerOpKind.DivideConfiguration)),
                (3, Gen.Const(TimerOpKind.LvtTimer)),
                (2, Gen.Const(TimerOpKind.TscDeadline)),
                (6, Gen.Const(TimerOpKind.Advance)),
                (5, Gen.Const(TimerOpKind.ReadCount))),
            Gen.Int[0, 2],
            Gen.UInt,
            (k, cpu, a) => new TimerOp(k, cpu, a));
    }

    /// <summary>The model of one APIC timer (lapic-reference §9), written from the reference, not from the code.</summary>
    private sealed class TimerModel
    {
        public int Mode;             // LVT Timer bits 18:17: 0 one-shot, 1 periodic, 2 TSC-deadline
        public bool Masked = true;
        public long InitialCount;    // N
        public long Divisor = 2;     // DCR 0 at RESET: divide by 2
        public bool Counting;
        public long Origin;          // T0, re-based by DCR writes
        public long Next = long.MaxValue;
        public long TscDeadline;     // 0 = disarmed
        public long Expiries;
        public long MaskedExpiries;

        public long Deadline => Mode == 2 ? (TscDeadline == 0 ? long.MaxValue : TscDeadline) : (Counting ? Next : long.MaxValue);

        /// <summary>SDM "Divide Configuration Register": bits 3, 1, 0 select 2, 4, 8, 16, 32, 64, 128, 1.</summary>
        public static long DivisorOf(uint dcr) => ((dcr & 8) >> 1 | (dcr & 3)) switch
        {
            0 => 2,
            1 => 4,
            2 => 8,
            3 => 16,
            4 => 32,
            5 => 64,
            6 => 128,
            _ => 1,
        };

        public uint CurrentCount(long now)
        {
            if (Mode == 2 || !Counting)
            {
                return 0;
            }

            long elapsedTicks = (now - Origin) / Divisor;
            return (uint)(InitialCount - (elapsedTicks % InitialCount));
        }

        public void WriteInitialCount(long now, uint value)
        {
            if (Mode == 2)
            {
                return; // ignored in TSC-deadline mode
            }

            InitialCount = value;
            Counting = value != 0;
            Origin = now;
            Next = Counting ? now + (value * Divisor) : long.MaxValue;
        }

        public void WriteDivideConfiguration(long now, uint dcr)
        {
            long divisor = DivisorOf(dcr);
            if (Counting)
            {
                // A14 (KVM): the remaining count carries over and continues at the new rate.
                long elapsed = now - Origin;
                Assert.Equal(0, elapsed % Divisor);
                long remaining = InitialCount - ((elapsed / Divisor) % InitialCount);
                Next = now + (remaining * divisor);
                Origin = Next - (InitialCount * divisor);
            }

            Divisor = divisor;
        }

        public void WriteLvt(int mode, bool masked)
        {
            if (mode != Mode && (mode == 2 || Mode == 2))
            {
                // Entering or leaving TSC-deadline mode disarms and clears TMICT and IA32_TSC_DEADLINE.
                Counting = false;
                Next = long.MaxValue;
                InitialCount = 0;
                TscDeadline = 0;
            }

            // One-shot <-> periodic keeps counting (A12).
            Mode = mode;
            Masked = masked;
        }

        /// <summary>Returns true when the write fires at once (a deadline already reached).</summary>
        public bool WriteTscDeadline(long now, long value)
        {
            if (Mode != 2)
            {
                return false; // ignored outside TSC-deadline mode
            }

            if (value != 0 && value <= now)
            {
                TscDeadline = 0;
                Expire();
                return true;
            }

            TscDeadline = value;
            return false;
        }

        public void Expire()
        {
            Expiries++;
            MaskedExpiries += Masked ? 1 : 0;
            if (Mode == 2)
            {
                TscDeadline = 0;
            }
            else if (Mode == 1)
            {
                Next += InitialCount * Divisor;
            }
            else
            {
                Counting = false;
                Next = long.MaxValue;
            }
        }
    }

    [Fact]
    public void RandomTimerSequences_ExpireExactlyWhenTheModelSays() =>
        Gen.Select(Gen.Int[1, 3], Gen.Bool.Array[3], TimerOp.Generator.Array[1, 120])
            .Sample(Check, iter: 800);

    private static void Check(int vcpus, bool[] x2apic, TimerOp[] ops)
    {
        var machine = new VirtualMachine(new MachineOptions { VcpuCount = vcpus });
        var models = new TimerModel[vcpus];
        for (int i = 0; i < vcpus; i++)
        {
            Vcpu cpu = machine.GetVcpu(i);
            if (x2apic[i])
            {
                cpu.EnterX2Apic();
            }

            cpu.EnableSoftware();
            models[i] = new TimerModel();
        }

        for (int step = 0; step < ops.Length; step++)
        {
            TimerOp op = ops[step];
            int index = op.Cpu % vcpus;
            Vcpu cpu = machine.GetVcpu(index);
            TimerModel model = models[index];
            string where = $"step {step} {op} at {machine.Now}";
            if (op.Kind == TimerOpKind.DivideConfiguration && model.Counting && (machine.Now - model.Origin) % model.Divisor != 0)
            {
                long ticks = ((machine.Now - model.Origin) / model.Divisor) + 1;
                StepTo(machine, models, model.Origin + (ticks * model.Divisor), where);
            }

            long now = machine.Now;
            long expiriesBefore = cpu.Apic.Counters.TimerExpiries;
            switch (op.Kind)
            {
                case TimerOpKind.InitialCount:
                    {
                        uint count = op.A % 8 == 0 ? 0 : 1 + (op.A >> 3) % 1500;
                        cpu.WriteRegister(Reg.InitialCount, count);
                        model.WriteInitialCount(now, count);
                        break;
                    }

                case TimerOpKind.DivideConfiguration:
                    {
                        // xAPIC drops bit 2; x2APIC would fault on it, so it is only set through MMIO.
                        uint dcr = x2apic[index] ? op.A & 0xB : op.A & 0xF;
                        cpu.WriteRegister(Reg.DivideConfiguration, dcr);
                        model.WriteDivideConfiguration(now, dcr);
                        Assert.Equal(dcr & 0xB, cpu.ReadRegister(Reg.DivideConfiguration));
                        break;
                    }

                case TimerOpKind.LvtTimer:
                    {
                        int mode = (int)(op.A % 3);
                        bool masked = (op.A >> 2) % 4 == 0;
                        uint lvt = (0x30u + (uint)index) | (masked ? 1u << 16 : 0) | ((uint)mode << 17);
                        cpu.WriteRegister(Reg.LvtTimer, lvt);
                        model.WriteLvt(mode, masked);
                        Assert.Equal(lvt, cpu.ReadRegister(Reg.LvtTimer));
                        break;
                    }

                case TimerOpKind.TscDeadline:
                    {
                        long deadline = op.A % 6 == 0 ? 0 : Math.Max(1, now + (long)(op.A % 5000) - 1000);
                        cpu.WrMsr(Msr.TscDeadline, (ulong)deadline);
                        bool firedNow = model.WriteTscDeadline(now, deadline);
                        Assert.True((firedNow ? 1 : 0) == cpu.Apic.Counters.TimerExpiries - expiriesBefore, $"{where}: immediate expiry");
                        break;
                    }

                case TimerOpKind.Advance:
                    StepTo(machine, models, now + (op.A % 6000), where);
                    break;
                case TimerOpKind.ReadCount:
                    {
                        long at = now + (op.A % 600);
                        StepTo(machine, models, at, where);
                        Assert.True(model.CurrentCount(at) == cpu.ReadRegister(Reg.CurrentCount),
                            $"{where}: TMCCT at {at} = {cpu.ReadRegister(Reg.CurrentCount)}, model {model.CurrentCount(at)} (N {model.InitialCount}, div {model.Divisor}, T0 {model.Origin}, mode {model.Mode})");
                        break;
                    }
            }

            // Registers that follow the model directly.
            for (int i = 0; i < vcpus; i++)
            {
                Vcpu c = machine.GetVcpu(i);
                TimerModel m = models[i];
                Assert.True((uint)(m.Mode == 2 ? 0 : m.InitialCount) == c.ReadRegister(Reg.InitialCount), $"{where}: cpu {i} TMICT");
                Assert.True((ulong)(m.Mode == 2 ? m.TscDeadline : 0) == c.RdMsr(Msr.TscDeadline), $"{where}: cpu {i} IA32_TSC_DEADLINE");
                Assert.True(m.Expiries == c.Apic.Counters.TimerExpiries, $"{where}: cpu {i} expiries {c.Apic.Counters.TimerExpiries}, model {m.Expiries}");
                Assert.True(m.MaskedExpiries == c.Apic.Counters.TimerExpiriesMasked, $"{where}: cpu {i} masked expiries");
            }

            Assert.True(MinDeadline(models) == machine.NextTimerDeadline, $"{where}: next deadline {machine.NextTimerDeadline}, model {MinDeadline(models)}");
        }
    }

    private static long MinDeadline(TimerModel[] models)
    {
        long min = long.MaxValue;
        foreach (TimerModel m in models)
        {
            min = Math.Min(min, m.Deadline);
        }

        return min;
    }

    /// <summary>Advances to <paramref name="target"/> one deadline at a time, checking each expiry against the models.</summary>
    private static void StepTo(VirtualMachine machine, TimerModel[] models, long target, string where)
    {
        while (machine.NextTimerDeadline <= target)
        {
            long deadline = machine.NextTimerDeadline;
            Assert.True(MinDeadline(models) == deadline, $"{where}: the machine expires at {deadline}, the model at {MinDeadline(models)}");
            var before = new long[models.Length];
            for (int i = 0; i < models.Length; i++)
            {
                before[i] = machine.GetVcpu(i).Apic.Counters.TimerExpiries;
            }

            machine.AdvanceTo(deadline);
            Assert.Equal(deadline, machine.Now);
            for (int i = 0; i < models.Length; i++)
            {
                bool due = models[i].Deadline == deadline;
                Assert.True((due ? 1 : 0) == machine.GetVcpu(i).Apic.Counters.TimerExpiries - before[i], $"{where}: cpu {i} at {deadline}");
                if (due)
                {
                    models[i].Expire();
                    if (!models[i].Masked)
                    {
                        Assert.True(machine.GetVcpu(i).Apic.Irr.Get(0x30 + i), $"{where}: cpu {i} timer vector not in IRR at {deadline}");
                    }
                }
            }
        }

        Assert.True(MinDeadline(models) > target, $"{where}: the model expects an expiry at {MinDeadline(models)} that the machine does not have");
        machine.AdvanceTo(target);
    }
}
