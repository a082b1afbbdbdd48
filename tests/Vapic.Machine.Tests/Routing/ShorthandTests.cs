using Vapic.Apic;
using Xunit;
using static Vapic.Machine.Tests.TestGuest;

namespace Vapic.Machine.Tests.Routing;

/// <summary>
/// Every destination shorthand with every delivery mode an ICR can send (lapic-reference.md §10,
/// A11: KVM delivers the combinations the SDM calls invalid as asked; A6: lowest priority is
/// arbitrated; A20: vector hashing over the enabled candidates).
/// </summary>
public sealed class ShorthandTests
{
    private const uint Self = 1;
    private const uint AllIncludingSelf = 2;
    private const uint AllExcludingSelf = 3;

    private static uint IcrLow(uint shorthand, DeliveryMode mode, byte vector) =>
        vector | ((uint)mode << 8) | 0x4000u | (shorthand << 18);

    /// <summary>The CPUs a shorthand names when CPU <paramref name="sender"/> writes the ICR on a 3-CPU machine.</summary>
    private static int[] Named(uint shorthand, int sender) => shorthand switch
    {
        Self => [sender],
        AllIncludingSelf => [0, 1, 2],
        _ => [.. new[] { 0, 1, 2 }.Where(i => i != sender)],
    };

    [Theory]
    [InlineData(Self, DeliveryMode.Fixed)]
    [InlineData(Self, DeliveryMode.LowestPriority)]
    [InlineData(Self, DeliveryMode.Smi)]
    [InlineData(Self, DeliveryMode.Nmi)]
    [InlineData(Self, DeliveryMode.Init)]
    [InlineData(AllIncludingSelf, DeliveryMode.Fixed)]
    [InlineData(AllIncludingSelf, DeliveryMode.LowestPriority)]
    [InlineData(AllIncludingSelf, DeliveryMode.Smi)]
    [InlineData(AllIncludingSelf, DeliveryMode.Nmi)]
    [InlineData(AllIncludingSelf, DeliveryMode.Init)]
    [InlineData(AllExcludingSelf, DeliveryMode.Fixed)]
    [InlineData(AllExcludingSelf, DeliveryMode.LowestPriority)]
    [InlineData(AllExcludingSelf, DeliveryMode.Smi)]
    [InlineData(AllExcludingSelf, DeliveryMode.Nmi)]
    [InlineData(AllExcludingSelf, DeliveryMode.Init)]
    public void Shorthand_DeliversEveryModeAsAsked(uint shorthand, DeliveryMode mode)
    {
        foreach (int sender in new[] { 0, 1 })
        {
            VirtualMachine machine = NewMachine(3);
            machine.StartAllAps();
            machine.EnableAll();
            const byte vector = 0x42;

            // The destination field is ignored with a shorthand: point it somewhere else entirely.
            machine.GetVcpu(sender).SendXApicIpi(0x0700_0000, IcrLow(shorthand, mode, vector));

            int[] named = Named(shorthand, sender);
            int[] receivers = mode == DeliveryMode.LowestPriority
                ? [named[vector % named.Length]] // every named CPU is enabled: (vector mod n)-th in vCPU order
                : named;
            CpuEvent expected = mode switch
            {
                DeliveryMode.Fixed or DeliveryMode.LowestPriority => Fixed(vector),
                DeliveryMode.Smi => Smi,
                DeliveryMode.Nmi => Nmi,
                _ => Init,
            };

            for (int i = 0; i < 3; i++)
            {
                Vcpu cpu = machine.GetVcpu(i);
                Assert.Equal(receivers.Contains(i) ? expected : None, cpu.Accept());
                Assert.Equal(None, cpu.Accept());
            }

            if (mode == DeliveryMode.Init)
            {
                // After INIT the BSP runs from its reset vector; the APs wait for SIPI (A17).
                for (int i = 0; i < 3; i++)
                {
                    VcpuRunState state = receivers.Contains(i) && i != 0 ? VcpuRunState.WaitForSipi : VcpuRunState.Running;
                    Assert.Equal(state, machine.GetVcpu(i).RunState);
                }
            }
        }
    }

    [Theory]
    [InlineData(Self, new int[0])]
    [InlineData(AllIncludingSelf, new[] { 2 })]
    [InlineData(AllExcludingSelf, new[] { 2 })]
    public void ShorthandSipi_StartsOnlyWaitingCpus(uint shorthand, int[] started)
    {
        // CPU0 (BSP) and CPU1 run, CPU2 waits for SIPI.
        VirtualMachine machine = NewMachine(3);
        machine.StartAp(1, 0x10);

        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, IcrLow(shorthand, DeliveryMode.StartUp, 0x9A));

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(started.Contains(i) ? Sipi(0x9A) : None, machine.GetVcpu(i).Accept());
        }

        Assert.Equal(VcpuRunState.Running, machine.GetVcpu(0).RunState);
        Assert.Equal(VcpuRunState.Running, machine.GetVcpu(1).RunState);
        Assert.Equal(0x10000UL, machine.GetVcpu(1).EntryPoint);
        Assert.Equal(started.Contains(2) ? VcpuRunState.Running : VcpuRunState.WaitForSipi, machine.GetVcpu(2).RunState);
    }

    [Theory]
    [InlineData(Self)]
    [InlineData(AllIncludingSelf)]
    [InlineData(AllExcludingSelf)]
    public void ShorthandInitDeassert_IsIgnored(uint shorthand)
    {
        VirtualMachine machine = NewMachine(3);
        machine.StartAllAps();

        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, 0x0000_8500 | (shorthand << 18));

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(None, machine.GetVcpu(i).Accept());
            Assert.Equal(VcpuRunState.Running, machine.GetVcpu(i).RunState);
        }

        Assert.Equal(1, machine.Counters.InitDeassertsIgnored);
    }

    [Theory]
    [InlineData(Self)]
    [InlineData(AllIncludingSelf)]
    [InlineData(AllExcludingSelf)]
    public void ShorthandExtIntAndReservedMode_AreNotSent(uint shorthand)
    {
        VirtualMachine machine = NewMachine(3);
        machine.StartAllAps();
        machine.EnableAll();

        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, IcrLow(shorthand, DeliveryMode.ExtInt, 0x42));
        machine.GetVcpu(0).Write(Reg.InterruptCommandLow, IcrLow(shorthand, DeliveryMode.Reserved3, 0x42));

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(None, machine.GetVcpu(i).Accept());
        }

        Assert.Equal(0, machine.Counters.IpisRouted);
    }

    [Theory]
    [InlineData(Self)]
    [InlineData(AllIncludingSelf)]
    [InlineData(AllExcludingSelf)]
    public void X2ApicShorthands_IgnoreTheDestination(uint shorthand)
    {
        VirtualMachine machine = NewMachine(3, forceX2Apic: true);
        machine.EnableAll();

        machine.GetVcpu(1).SendX2ApicIpi(0xFFFF_FFFF, IcrLow(shorthand, DeliveryMode.Fixed, 0x61));

        Assert.Equal(Named(shorthand, 1), machine.WithIrr(0x61));
    }

    [Fact]
    public void AllExcludingSelf_LowestPriority_ArbitratesAmongOthersOnly()
    {
        // SDM table: lowest priority with all-excluding-self may come back to the sender on some models;
        // KVM (A11, A20) arbitrates among the matched CPUs, which exclude the sender.
        VirtualMachine machine = NewMachine(4);
        machine.EnableAll();

        for (int vector = 0x40; vector < 0x44; vector++)
        {
            machine.GetVcpu(2).Write(Reg.InterruptCommandLow, IcrLow(AllExcludingSelf, DeliveryMode.LowestPriority, (byte)vector));
            int[] candidates = [0, 1, 3];
            Assert.Equal([candidates[vector % 3]], machine.WithIrr(vector));
        }
    }
}
