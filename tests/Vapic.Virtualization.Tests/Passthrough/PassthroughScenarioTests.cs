using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Passthrough;
using Xunit;

namespace Vapic.Virtualization.Tests.Passthrough;

/// <summary>
/// virtualization-reference §9, the ACRN LAPIC-passthrough vectors TV51-TV57, plus the ICR
/// translation rules of §6.3 that they rely on.
/// </summary>
public class PassthroughScenarioTests
{
    [Fact]
    public void TV51_ApicBaseWriteWithExtd_SwitchesToPassthrough()
    {
        var rig = new PassthroughRig(vcpus: 1, switchToX2Apic: false);
        Assert.False(rig.Mode.IsPassthroughActive(0));

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x1B, 0xFEE0_0D00));

        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.True(rig.Mode.IsPassthroughActive(0));
        Assert.Equal(1, rig.Mode.Counters.BitmapUpdates);
        MsrBitmap bitmap = rig.Mode.GetMsrBitmap(0);
        Assert.True(bitmap.IsReadIntercepted(0x802) && bitmap.IsReadIntercepted(0x80D) && bitmap.IsWriteIntercepted(0x830));
        Assert.False(bitmap.IsReadIntercepted(0x808) || bitmap.IsWriteIntercepted(0x80B) || bitmap.IsWriteIntercepted(0x833));
    }

    [Fact]
    public void TV52_ReadOfTheX2ApicId_ExitsAndReturnsTheVirtualId()
    {
        var rig = new PassthroughRig(vcpus: 3);

        for (int i = 0; i < 3; i++)
        {
            var d = rig.Measure();
            Assert.Equal(ApicAccessResult.Ok, rig[i].ReadMsr(0x802, out ulong id));
            Assert.Equal(ApicAccessResult.Ok, rig[i].ReadMsr(0x80D, out ulong ldr));
            d.AssertOnly(ExitReason.MsrRead, 2);
            Assert.Equal((ulong)i, id);
            Assert.Equal(1UL << i, ldr);
            Assert.NotEqual(rig.Host.PhysicalApicId(rig.Host.PcpuOf(i)), (uint)id);
        }

        Assert.Equal(0, rig.Mode.Counters.PhysicalIdentityLeaks);
    }

    [Fact]
    public void TV53_FixedIpiToVirtualId1_IsTranslatedToItsPcpu()
    {
        var rig = new PassthroughRig(vcpus: 2);

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x830, (1UL << 32) | 0xEF));

        d.AssertOnly(ExitReason.MsrWrite, 1);
        // vCPU 1 is on pCPU 3, physical ID 0x16: the hypervisor writes (0x16 << 32) | 0xEF.
        Assert.Equal(0x0000_0016_0000_00EFUL, rig.Mode.PhysicalInterruptCommand(0));
        Assert.Equal([new PhysicalIpi(1, 0x16, 0xEF, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr)], d.NewIpis());
        Assert.True(rig[1].Apic.Irr.Get(0xEF));
        Assert.Equal(1, rig.Mode.Counters.TrappedIcrWrites);
    }

    [Fact]
    public void TV54_AllExcludingSelf_BecomesThreeUnicastsToThisVmOnly()
    {
        var rig = new PassthroughRig(vcpus: 4);

        var d = rig.Measure();
        rig.SendIpi(0, 0x000C_00F0, 0);

        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal(
            [
                new PhysicalIpi(1, 0x16, 0xF0, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr),
                new PhysicalIpi(1, 0x1A, 0xF0, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr),
                new PhysicalIpi(1, 0x1E, 0xF0, DeliveryMode.Fixed, PhysicalIpiOrigin.GuestIcr),
            ],
            d.NewIpis());
        Assert.Equal(1, rig.Mode.Counters.ShorthandsExpanded);
        for (int pcpu = 0; pcpu < rig.Host.CpuCount; pcpu += 2)
        {
            Assert.Equal(0, rig.Host.IpisReceived(pcpu));
        }

        // Shorthand cleared and re-sent in physical mode: no bit of the guest's shorthand reaches the bus.
        Assert.Equal(0x0000_001E_0000_00F0UL, rig.Mode.PhysicalInterruptCommand(0));
    }

    [Fact]
    public void TV55_LogicalIcrWhileAPeerIsInXApic_IsDeliveredAsEmulationDoes()
    {
        // ACRN raises #GP here; the model delivers within the VM so that every mode agrees (documented deviation).
        var rig = new PassthroughRig(vcpus: 2, switchToX2Apic: false);
        rig.Write(1, 0x0D0, 0x0200_0000); // vCPU 1: xAPIC flat logical ID 0x02
        rig.SwitchToX2Apic(0);

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x830, (0x02UL << 32) | 0x847));

        Assert.Equal(1, d.Exits(ExitReason.MsrWrite));
        Assert.Equal(1, d.Exits(ExitReason.ExternalInterrupt)); // emulated vLAPIC target kicked
        Assert.Equal(0, d.PhysicalIpis);
        Assert.True(rig[1].Apic.Irr.Get(0x47));
        Assert.Equal(1, rig.Mode.Counters.LogicalResolved);
        Assert.Equal(1, rig.Mode.Counters.LogicalWithXApicPeers);
        Assert.Equal(1, rig.Mode.Counters.EmulatedTargets);
    }

    [Fact]
    public void TV56_InitThenTwoSipis_AreEmulatedAndTheSecondIsIgnored()
    {
        var rig = new PassthroughRig(vcpus: 2);

        var d = rig.Measure();
        rig.SendIpi(0, 0x4500, 1);
        Assert.Equal(CpuEventKind.Init, rig[1].Accept().Kind);
        Assert.Equal(VcpuRunState.WaitForSipi, rig[1].RunState);
        rig.SendIpi(0, 0x469A, 1);
        Assert.Equal(new CpuEvent(CpuEventKind.StartUp, 0x9A), rig[1].Accept());
        rig.SendIpi(0, 0x469A, 1);
        Assert.Equal(CpuEventKind.None, rig[1].Accept().Kind);

        Assert.Equal(0x9A000UL, rig[1].EntryPoint);
        Assert.Equal(VcpuRunState.Running, rig[1].RunState);
        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(2, rig.Mode.Counters.InitSipiEmulated);
        Assert.Equal(3, rig.Mode.Counters.TrappedIcrWrites);

        // INIT keeps x2APIC mode (SDM), and the passthrough with it.
        Assert.True(rig.Mode.IsPassthroughActive(1));
    }

    [Theory]
    [InlineData(0L, 0x12345UL, 0x12345UL, 0L)]
    [InlineData(0x1000L, 0x12345UL, 0x11345UL, 1L)]
    [InlineData(0x1000L, 0x1000UL, 1UL, 1L)]  // v − offset = 0 would disarm: 1 instead
    [InlineData(0x1000L, 0UL, 0UL, 1L)]       // 0 disarms
    public void TV57_TscDeadlineWrite_WithAndWithoutOffset(long offset, ulong guestDeadline, ulong physicalDeadline, long exits)
    {
        var rig = new PassthroughRig(vcpus: 1, tscOffset: offset);
        rig.Write(0, 0x320, 0x4_0031);

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x6E0, guestDeadline));

        Assert.Equal(exits, d.TotalExits);
        Assert.Equal(physicalDeadline, rig.Host.PhysicalTscDeadline(rig.Host.PcpuOf(0)));
    }

    [Fact]
    public void TscDeadline_AtAScaledTscRate_IsInterceptedAndArmedAtTheInstantTheGuestTscReachesIt()
    {
        // A 2.5 GHz guest TSC on a host whose TSC counts virtual ns: TSC scaling, so even with offset 0
        // the guest's deadline is not the host's and the MSR stays intercepted.
        var rig = new PassthroughRig(vcpus: 1, tscFrequencyHz: 2_500_000_000);
        Assert.True(rig.Mode.IsPassthroughActive(0));
        Assert.True(rig.Mode.GetMsrBitmap(0).IsWriteIntercepted(0x6E0));
        rig.Write(0, 0x320, 0x4_0031);
        rig.Machine.Advance(1000);
        Assert.Equal(ApicAccessResult.Ok, rig[0].ReadMsr(0x10, out ulong tsc));
        Assert.Equal((ulong)(rig.Machine.Now * 5 / 2), tsc);

        // 2501 ticks ahead: ceil(2501 / 2.5) = 1001 ns later.
        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x6E0, tsc + 2501));
        Assert.Equal(1L, d.TotalExits);
        Assert.Equal((ulong)(rig.Machine.Now + 1001), rig.Host.PhysicalTscDeadline(rig.Host.PcpuOf(0)));

        // A deadline already reached fires at the write; the physical one is in the past.
        Assert.Equal(ApicAccessResult.Ok, rig[0].WriteMsr(0x6E0, tsc - 1));
        Assert.Equal(1UL, rig.Host.PhysicalTscDeadline(rig.Host.PcpuOf(0)));
    }

    [Fact]
    public void NmiToAHaltedPassthroughVcpu_ResumesItInTheGuest()
    {
        var rig = new PassthroughRig(vcpus: 2);
        rig[1].SetHostState(VcpuHostState.Halted);

        // A device NMI (MSI, delivery mode NMI) to vCPU 1: a physical NMI to its pCPU, which resumes
        // it from HLT inside the guest (HLT exiting is off) without a host wake-up.
        var d = rig.Measure();
        Assert.Equal(MsiDecodeResult.Ok, rig.Machine.SendMsi(Msi.EncodeAddress(1, DestinationMode.Physical, redirectionHint: false), Msi.EncodeData(0, DeliveryMode.Nmi, levelTriggered: false)));
        Assert.Equal(VcpuHostState.Running, rig[1].HostState);
        Assert.Equal(0L, d.TotalExits);
        Assert.Equal(1, d.PhysicalIpis);
        Assert.Equal(CpuEventKind.Nmi, rig[1].Accept().Kind);
    }

    [Fact]
    public void IcrWithReservedBits_FaultsAndSendsNothing()
    {
        var rig = new PassthroughRig(vcpus: 2);

        var d = rig.Measure();
        Assert.Equal(ApicAccessResult.GeneralProtection, rig[0].WriteMsr(0x830, (1UL << 32) | 0x2041));

        d.AssertOnly(ExitReason.MsrWrite, 1);
        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(1, rig.Mode.Counters.IcrFaults);
    }

    [Fact]
    public void SmiIpi_NeverReachesAPcpu_TheGuestStillSeesIt()
    {
        var rig = new PassthroughRig(vcpus: 2);

        var d = rig.Measure();
        rig.SendIpi(0, 0x200, 1);

        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(1, rig.Mode.Counters.SmiRefused);
        Assert.Equal(CpuEventKind.Smi, rig[1].Accept().Kind);
    }

    [Fact]
    public void DestinationOutsideTheVm_SendsNothing()
    {
        var rig = new PassthroughRig(vcpus: 2);

        // 0x10 is pCPU 0's physical ID (another VM's), 0x16 is vCPU 1's own pCPU: neither is a virtual ID.
        var d = rig.Measure();
        rig.SendIpi(0, 0x41, 0x10);
        rig.SendIpi(0, 0x41, 0x16);

        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(2, rig.Mode.Counters.IcrWithoutTargetInVm);
        Assert.Equal(0, rig.Host.BlockedIpis);
    }

    [Fact]
    public void ReservedDeliveryModes_AreRefused()
    {
        var rig = new PassthroughRig(vcpus: 2);

        var d = rig.Measure();
        rig.SendIpi(0, 0x341, 1);
        rig.SendIpi(0, 0x741, 1);

        Assert.Equal(0, d.PhysicalIpis);
        Assert.Equal(2, rig.Mode.Counters.ReservedModesRefused);
    }

    [Fact]
    public void LowestPriority_IsArbitratedInTheVmAndSentAsOneUnicast()
    {
        var rig = new PassthroughRig(vcpus: 3);

        var d = rig.Measure();
        rig.SendIpi(0, 0x0000_0941, 0x0000_0007); // lowest priority, logical cluster 0, vCPUs 0-2

        IReadOnlyList<PhysicalIpi> sent = d.NewIpis();
        PhysicalIpi only = Assert.Single(sent);
        Assert.Equal(DeliveryMode.Fixed, only.Mode);
        Assert.True(rig.Host.TryFindPcpu(only.DestinationPhysicalId, out int pcpu));
        Assert.True(rig.Host.IsOwnedByVm(pcpu));
    }

    [Fact]
    public void IcrReadBack_ShowsThePhysicalDestinationUnlessIntercepted()
    {
        var open = new PassthroughRig(vcpus: 2);
        open.SendIpi(0, 0x41, 1);
        Assert.Equal(ApicAccessResult.Ok, open[0].ReadMsr(0x830, out ulong value));
        Assert.Equal((1UL << 32) | 0x41, value); // the model returns the guest's value...
        Assert.Equal(1, open.Mode.Counters.PhysicalIcrReadbacks); // ...but hardware would show 0x16 << 32

        var closed = new PassthroughRig(vcpus: 2, options: new PassthroughOptions { InterceptIcrRead = true });
        closed.SendIpi(0, 0x41, 1);
        var d = closed.Measure();
        Assert.Equal(ApicAccessResult.Ok, closed[0].ReadMsr(0x830, out _));
        d.AssertOnly(ExitReason.MsrRead, 1);
        Assert.Equal(0, closed.Mode.Counters.PhysicalIcrReadbacks);
    }
}
