using Vapic.Virtualization.Apicv;
using Vapic.Virtualization.Nested;
using Xunit;

namespace Vapic.Virtualization.Tests.Nested;

/// <summary>
/// L2's APIC accesses when the APIC-access page is in L1 RAM: virtualized against the virtual-APIC
/// page L1 gave it, or an exit to L1 (SDM "Virtualizing Memory-Mapped APIC Accesses",
/// "Virtual-Interrupt Delivery", "Posted-Interrupt Processing"; virtualization-reference §2.4-§2.7
/// and TV05-TV16 applied to L2).
/// </summary>
public sealed class L2ApicVirtualizationTests
{
    private const ulong L2Apic = NestedRig.L1ApicBase;
    private const ulong Page = NestedRig.VirtualApicPage;

    private static NestedRig Launch(Vmcs12Controls? controls = null)
    {
        var rig = new NestedRig(new ApicvMode());
        rig.VirtualizeApic(NestedRig.ApicAccessPage);
        if (controls is { } c)
        {
            rig.Vmcs12.Controls = c;
        }

        Assert.Equal(VmEntryOutcome.EnteredL2, rig.Nested.VmLaunch(0).Outcome);
        return rig;
    }

    private static uint Vap(NestedRig rig, uint offset) => rig.Nested.L1Memory.Read32(Page + offset);

    [Theory]
    [InlineData(0x020u)]
    [InlineData(0x030u)]
    [InlineData(0x080u)]
    [InlineData(0x0B0u)]
    [InlineData(0x0D0u)]
    [InlineData(0x0E0u)]
    [InlineData(0x0F0u)]
    [InlineData(0x100u)]
    [InlineData(0x170u)]
    [InlineData(0x180u)]
    [InlineData(0x200u)]
    [InlineData(0x270u)]
    [InlineData(0x280u)]
    [InlineData(0x300u)]
    [InlineData(0x310u)]
    [InlineData(0x320u)]
    [InlineData(0x370u)]
    [InlineData(0x380u)]
    [InlineData(0x3E0u)]
    public void RegisterVirtualization_ServesListedReadsFromTheVirtualApicPage(uint offset)
    {
        NestedRig rig = Launch();
        rig.Nested.L1Memory.Write32(Page + offset, 0xA5A5_0000 | offset);

        L2AccessResult result = rig.Nested.L2Read(0, L2Apic + offset);

        Assert.Equal(L2AccessOutcome.Completed, result.Outcome);
        Assert.Equal(L2AccessTarget.VirtualApicPage, result.Target);
        Assert.Equal(0xA5A5_0000 | offset, result.Value);
        Assert.Equal(0, rig.Nested.Counters.TotalL1Exits);
    }

    [Theory]
    [InlineData(0x090u)] // APR
    [InlineData(0x0A0u)] // PPR
    [InlineData(0x0C0u)] // RRD
    [InlineData(0x2F0u)] // CMCI
    [InlineData(0x390u)] // current count (TV05)
    [InlineData(0x3F0u)]
    [InlineData(0x304u)] // not inside one 4-byte register window (TV07)
    public void RegisterVirtualization_OtherReadsExitToL1WithTheOffset(uint offset)
    {
        NestedRig rig = Launch();

        L2AccessResult result = rig.Nested.L2Read(0, L2Apic + offset);

        Assert.Equal(L2AccessOutcome.L1Exit, result.Outcome);
        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, offset), result.Exit);
        Assert.Equal(1, rig.Nested.Counters.L1Exits(L1ExitReason.ApicAccess));
    }

    [Fact]
    public void WithoutRegisterVirtualization_OnlyTprReadsAreVirtualized()
    {
        NestedRig rig = Launch(Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.EnableEpt);
        rig.Nested.L1Memory.Write32(Page + 0x80, 0x40);

        Assert.Equal(0x40u, rig.Nested.L2Read(0, L2Apic + 0x80).Value);
        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, 0x20), rig.Nested.L2Read(0, L2Apic + 0x20).Exit);
        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, 0x10B0), rig.Nested.L2Write(0, L2Apic + 0xB0, 0).Exit);
    }

    [Fact]
    public void WithoutTprShadow_EveryAccessToTheApicAccessPageExits()
    {
        NestedRig rig = Launch(Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.EnableEpt);

        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, 0x80), rig.Nested.L2Read(0, L2Apic + 0x80).Exit);
        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, 0x1080), rig.Nested.L2Write(0, L2Apic + 0x80, 0x20).Exit);
    }

    [Fact]
    public void Tv08_VirtualizedWriteThatNeedsL1_IsStoredThenExitsTrapLike()
    {
        NestedRig rig = Launch();

        L2AccessResult result = rig.Nested.L2Write(0, L2Apic + 0x380, 1000);

        Assert.Equal(new L1Exit(L1ExitReason.ApicWrite, 0x380), result.Exit);
        Assert.Equal(L2AccessTarget.VirtualApicPage, result.Target);
        Assert.Equal(1000u, Vap(rig, 0x380));
    }

    [Fact]
    public void Tv09_WriteNotVirtualized_ExitsAndLeavesThePageAlone()
    {
        NestedRig rig = Launch(Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.VirtualInterruptDelivery |
            Vmcs12Controls.ExternalInterruptExiting | Vmcs12Controls.EnableEpt);

        L2AccessResult result = rig.Nested.L2Write(0, L2Apic + 0x380, 1000);

        Assert.Equal(new L1Exit(L1ExitReason.ApicAccess, 0x1380), result.Exit);
        Assert.Equal(0u, Vap(rig, 0x380));
    }

    [Fact]
    public void Tv13_IcrHighKeepsByte3()
    {
        NestedRig rig = Launch();

        Assert.Equal(L2AccessOutcome.Completed, rig.Nested.L2Write(0, L2Apic + 0x310, 0xAABB_CCDD).Outcome);
        Assert.Equal(0xAA00_0000u, Vap(rig, 0x310));
    }

    [Fact]
    public void Tv10_Tv16_Tv14_SelfIpiDeliveryAndEoiVirtualization()
    {
        NestedRig rig = Launch();

        Assert.Equal(L2AccessOutcome.Completed, rig.Nested.L2Write(0, L2Apic + 0x300, 0x0004_0031).Outcome);
        Assert.Equal(0x0002_0000u, Vap(rig, 0x210));
        Assert.Equal(0x31, rig.Vmcs12.RequestingVirtualInterrupt);

        Assert.True(rig.Nested.TryL2Accept(0, out int vector));
        Assert.Equal(0x31, vector);
        Assert.Equal(0x0002_0000u, Vap(rig, 0x110));
        Assert.Equal(0u, Vap(rig, 0x210));
        Assert.Equal(0x31, rig.Vmcs12.ServicingVirtualInterrupt);
        Assert.Equal(0x30u, Vap(rig, 0xA0));
        Assert.Equal(0, rig.Vmcs12.RequestingVirtualInterrupt);

        Assert.Equal(L2AccessOutcome.Completed, rig.Nested.L2Write(0, L2Apic + 0xB0, 0).Outcome);
        Assert.Equal(0u, Vap(rig, 0x110));
        Assert.Equal(0, rig.Vmcs12.ServicingVirtualInterrupt);
        Assert.Equal(0u, Vap(rig, 0xA0));
        Assert.Equal(0, rig.Nested.Counters.TotalL1Exits);
    }

    [Fact]
    public void Tv11_SelfIpiWithVectorBelow16_ExitsApicWrite()
    {
        NestedRig rig = Launch();

        Assert.Equal(new L1Exit(L1ExitReason.ApicWrite, 0x300), rig.Nested.L2Write(0, L2Apic + 0x300, 0x0004_0005).Exit);
        Assert.Equal(0, rig.Vmcs12.RequestingVirtualInterrupt);
    }

    [Fact]
    public void Tv15_EoiOfAVectorInTheEoiExitBitmap_ExitsToL1AfterVirtualization()
    {
        NestedRig rig = Launch();
        rig.Vmcs12.SetEoiExit(0x40, true);
        rig.Nested.PostToL2(0, 0x40);
        rig.Nested.PostToL2(0, 0x31);
        Assert.True(rig.Nested.TryL2Accept(0, out int first));
        Assert.Equal(0x40, first);

        L2AccessResult eoi = rig.Nested.L2Write(0, L2Apic + 0xB0, 0);

        Assert.Equal(new L1Exit(L1ExitReason.EoiInduced, 0x40), eoi.Exit);
        Assert.Equal(0, rig.Vmcs12.ServicingVirtualInterrupt);
        Assert.True(rig.Nested.TryL2Accept(0, out int second));
        Assert.Equal(0x31, second);
    }

    [Fact]
    public void Tv17_RequestInTheSameClassAsVppr_IsNotDelivered()
    {
        NestedRig rig = Launch();
        rig.Nested.L2Write(0, L2Apic + 0x80, 0x40);
        rig.Nested.PostToL2(0, 0x45);

        Assert.True(rig.Nested.TryL2Accept(0, out int vector));
        Assert.Equal(-1, vector);
        Assert.Equal(0x45, rig.Vmcs12.RequestingVirtualInterrupt);
    }

    [Fact]
    public void Tv01_Tv02_TprBelowThresholdWithoutVid_ExitsTrapLike()
    {
        NestedRig rig = Launch(Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.EnableEpt);
        rig.Vmcs12.TprThreshold = 5;

        Assert.Equal(new L1Exit(L1ExitReason.TprBelowThreshold, 0), rig.Nested.L2Write(0, L2Apic + 0x80, 0x30).Exit);
        Assert.Equal(0x30u, Vap(rig, 0x80));
        Assert.Equal(L2AccessOutcome.Completed, rig.Nested.L2Write(0, L2Apic + 0x80, 0x5F).Outcome);
        Assert.Equal(0x5Fu, Vap(rig, 0x80));
    }

    [Fact]
    public void TprWrite_ClearsBytes3To1AndVirtualizesPpr()
    {
        NestedRig rig = Launch();

        rig.Nested.L2Write(0, L2Apic + 0x80, 0xFFFF_FF27);

        Assert.Equal(0x27u, Vap(rig, 0x80));
        Assert.Equal(0x27u, Vap(rig, 0xA0));
    }

    [Fact]
    public void Tv22_NestedPostedInterrupt_ReachesVirrWithoutAnyExit()
    {
        NestedRig rig = Launch();
        long l0Exits = rig.Mode.Ledger.TotalExits;

        NestedPostResult post = rig.Nested.PostToL2(0, 0x61);

        Assert.Equal(NestedPostOutcome.Posted, post.Outcome);
        Assert.Equal(0x0000_0002u, Vap(rig, 0x230));
        Assert.Equal(0x61, rig.Vmcs12.RequestingVirtualInterrupt);
        Assert.Equal(0u, rig.Nested.L1Memory.Read32(NestedRig.Descriptor + 12));
        Assert.Equal(0u, rig.Nested.L1Memory.Read32(NestedRig.Descriptor + 32) & 1);
        Assert.Equal(l0Exits, rig.Mode.Ledger.TotalExits);
        Assert.Equal(0, rig.Nested.Counters.TotalL1Exits);
    }

    [Fact]
    public void PostWithoutPostedInterruptProcessing_StaysInTheDescriptor()
    {
        NestedRig rig = Launch(Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.VirtualInterruptDelivery |
            Vmcs12Controls.ExternalInterruptExiting | Vmcs12Controls.EnableEpt);

        Assert.Equal(NestedPostOutcome.Pending, rig.Nested.PostToL2(0, 0x61).Outcome);
        Assert.Equal(0x0000_0002u, rig.Nested.L1Memory.Read32(NestedRig.Descriptor + 12));
        Assert.Equal(1u, rig.Nested.L1Memory.Read32(NestedRig.Descriptor + 32));
        Assert.Equal(0u, Vap(rig, 0x230));
    }
}
