using System.Text;
using CsCheck;
using Xunit;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// The machine is a pure function of its inputs: the same operation sequence run twice on fresh
/// machines gives identical access results, accepted events, register contents, times and counters.
/// </summary>
public sealed class DeterminismProperties
{
    [Fact]
    public void SameOperations_GiveIdenticalObservableState() =>
        Gen.Select(MachineSpec.Generator(), Op.Generator.Array[1, 150])
            .Sample((spec, ops) =>
            {
                string first = Run(spec, ops);
                string second = Run(spec, ops);
                if (first != second)
                {
                    string[] a = first.Split('\n');
                    string[] b = second.Split('\n');
                    int line = 0;
                    while (line < a.Length && line < b.Length && a[line] == b[line])
                    {
                        line++;
                    }

                    Assert.Fail($"runs differ at line {line}:\n{(line < a.Length ? a[line] : "<end>")}\n{(line < b.Length ? b[line] : "<end>")}");
                }
            }, iter: 100);

    [Fact]
    public void InterleavedMachines_DoNotInfluenceEachOther()
    {
        // Two machines driven alternately give the same results as each driven alone: no shared state.
        Gen.Select(MachineSpec.Generator(), MachineSpec.Generator(), Op.Generator.Array[1, 60], Op.Generator.Array[1, 60])
            .Sample((specA, specB, opsA, opsB) =>
            {
                string aloneA = Run(specA, opsA);
                string aloneB = Run(specB, opsB);

                var logA = new StringBuilder();
                var logB = new StringBuilder();
                var driverA = new MachineDriver(specA, logA);
                var driverB = new MachineDriver(specB, logB);
                for (int i = 0; i < Math.Max(opsA.Length, opsB.Length); i++)
                {
                    if (i < opsA.Length)
                    {
                        driverA.Run(opsA[i]);
                    }

                    if (i < opsB.Length)
                    {
                        driverB.Run(opsB[i]);
                    }
                }

                logA.Append(driverA.Dump());
                logB.Append(driverB.Dump());
                Assert.Equal(aloneA, logA.ToString());
                Assert.Equal(aloneB, logB.ToString());
            }, iter: 40);
    }

    private static string Run(MachineSpec spec, Op[] ops)
    {
        var log = new StringBuilder();
        var driver = new MachineDriver(spec, log);
        foreach (Op op in ops)
        {
            driver.Run(op);
        }

        log.Append(driver.Dump());
        return log.ToString();
    }
}
