using CsCheck;
using Vapic.Trace.Replay;
using Xunit;

namespace Vapic.Trace.Tests.Replay;

/// <summary>
/// Hostile input never crashes the replay: random command sequences and random mutations of
/// well-formed traces end in one of the three outcomes, never in an exception.
/// </summary>
public class ReplayRobustnessTests
{
    private static readonly string[] s_cpuCommands =
    [
        "read", "write", "rdmsr", "wrmsr", "rdcr8", "wrcr8", "accept", "state", "lint",
    ];

    private static readonly ulong[] s_interestingAddresses =
    [
        0xFEE00000, 0xFEE00020, 0xFEE00030, 0xFEE00080, 0xFEE000B0, 0xFEE000D0, 0xFEE000E0, 0xFEE000F0,
        0xFEE00280, 0xFEE00300, 0xFEE00310, 0xFEE00320, 0xFEE00350, 0xFEE00360, 0xFEE00370, 0xFEE00380,
        0xFEE00390, 0xFEE003E0, 0xFEE003F0, 0xFEC00000, 0xFEC00010, 0xFEC00040, 0xFED40000,
    ];

    private static readonly ulong[] s_interestingMsrs =
    [
        0x10, 0x1B, 0xBD, 0x10A, 0x6E0, 0x802, 0x803, 0x808, 0x80A, 0x80B, 0x80D, 0x80F, 0x828,
        0x830, 0x832, 0x835, 0x836, 0x837, 0x838, 0x839, 0x83E, 0x83F, 0x900, 0xC00,
    ];

    private static readonly ulong[] s_interestingValues =
    [
        0, 1, 0xFF, 0x100, 0x1FF, 0x11FF, 0x4000, 0x4500, 0x4608, 0xC4031, 0x84031, 0x44031, 0x4400,
        0x20030, 0x40030, 0x10000, 0xFFFFFFFF, 0xFEE00900, 0xFEE00800, 0xFEE00C00, 0xFEE00D00,
        0xFEE00100, 0xFEE00500, 0xFFFFFFFF_00004041, 0x1_0000_0000, ulong.MaxValue,
    ];

    private static Gen<string> CpuLine(int vcpus) =>
        Gen.Select(Gen.Int[0, vcpus - 1], Gen.OneOf(s_cpuCommands), Gen.OneOf(s_interestingAddresses),
                   Gen.OneOf(s_interestingMsrs), Gen.OneOf(s_interestingValues), Gen.Int[0, 2])
            .Select((cpu, cmd, addr, msr, value, pick) => cmd switch
            {
                "read" => $"{cpu} read 0x{addr:x}",
                "write" => $"{cpu} write 0x{addr:x} 0x{value & 0xFFFFFFFF:x}",
                "rdmsr" => $"{cpu} rdmsr 0x{msr:x}",
                "wrmsr" => $"{cpu} wrmsr 0x{msr:x} 0x{value:x}",
                "rdcr8" => $"{cpu} rdcr8",
                "wrcr8" => $"{cpu} wrcr8 0x{value & 0x1F:x}",
                "lint" => $"{cpu} lint {pick & 1} {(pick == 0 ? "high" : pick == 1 ? "low" : "pulse")}",
                "state" => $"{cpu} state",
                _ => $"{cpu} accept",
            });

    private static Gen<string> DeviceLine =>
        Gen.Select(Gen.Int[0, 5], Gen.Int[0, 23], Gen.OneOf(s_interestingValues), Gen.UInt, Gen.Int[1, 100_000])
            .Select((kind, gsi, value, random, ns) => kind switch
            {
                0 => $"ioapic write 0x{0x10 + (gsi * 2):x} 0x{value & 0xFFFFFFFF:x}",
                1 => $"ioapic read 0x{random & 0xFF:x}",
                2 => $"irq {gsi} {(random % 3 == 0 ? "high" : random % 3 == 1 ? "low" : "pulse")}",
                3 => $"msi 0x{0xFEE00000 | (random & 0xFFFFC):x} 0x{random & 0xFFFF:x}",
                _ => $"time +{ns}",
            });

    private static Gen<string> Trace =>
        Gen.Int[1, 6].SelectMany(vcpus =>
            Gen.Frequency((4, (IGen<string>)CpuLine(vcpus)), (2, DeviceLine))
                .Array[1, 120]
                .Select(lines => $"machine vcpus={vcpus}\n" + string.Join('\n', lines) + "\n"));

    [Fact]
    public void RandomTracesNeverThrowAndReplayDeterministically()
    {
        Trace.Sample(text =>
        {
            var session = new ReplaySession(TextWriter.Null, quiet: true);
            FileReplayResult a = session.RunText("random.trace", text, ReplayMode.Available);
            FileReplayResult b = session.RunText("random.trace", text, ReplayMode.Available);
            return a.Outcome == b.Outcome
                && a.Runs.Count == b.Runs.Count
                && (a.Runs.Count == 0 || a.Runs[0].Observations.AsSpan().SequenceEqual(b.Runs[0].Observations));
        }, iter: 400);
    }

    [Fact]
    public void MutatedTextNeverThrows()
    {
        const string seed = """
            machine vcpus=2 ids=0,5 ioapic-version=0x20
            0 write 0xfee000f0 0x1ff   # enable
            0 read 0xfee00030 = 0x01050014
            0 wrmsr 0x1b 0xfee00d00
            0 rdmsr 0x80d = 0x1
            ioapic write 0x10 0x8031
            irq 3 pulse
            msi 0xfee05000 0x4041
            time +1_000
            1 accept = none
            0 wrcr8 3
            """;
        Gen.Select(Gen.Int[0, seed.Length - 1], Gen.Char, Gen.Int[0, 2]).Array[1, 8].Sample(edits =>
        {
            var chars = new List<char>(seed);
            foreach (var (pos, ch, op) in edits)
            {
                int p = Math.Min(pos, chars.Count);
                if (op == 0 && p < chars.Count)
                {
                    chars[p] = ch;
                }
                else if (op == 1)
                {
                    chars.Insert(p, ch);
                }
                else if (p < chars.Count)
                {
                    chars.RemoveAt(p);
                }
            }

            FileReplayResult r = new ReplaySession(TextWriter.Null, quiet: true)
                .RunText("mutated.trace", new string([.. chars]), ReplayMode.Available);
            return Enum.IsDefined(r.Outcome);
        }, iter: 2000);
    }
}
