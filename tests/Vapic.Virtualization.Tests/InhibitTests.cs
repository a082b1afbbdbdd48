using Xunit;

namespace Vapic.Virtualization.Tests;

public class InhibitTests
{
    [Fact]
    public void ReasonOutsideVendorMaskIsRecordedButHasNoEffect()
    {
        var set = new ApicvInhibitSet(ApicvInhibitMask.Vmx);
        set.Update(ApicvInhibit.PitReinject, true);
        Assert.True(set.Contains(ApicvInhibit.PitReinject));
        Assert.True(set.IsActive);
        Assert.Equal(0, set.Toggles);
    }

    [Fact]
    public void ActivationChangesOnlyOnEmptyNonEmptyTransitions()
    {
        var set = new ApicvInhibitSet(ApicvInhibitMask.Svm);
        var seen = new List<bool>();
        set.ActivationChanged += seen.Add;
        set.Update(ApicvInhibit.IrqWindow, true);
        set.Update(ApicvInhibit.PitReinject, true);
        set.Update(ApicvInhibit.IrqWindow, false);
        set.Update(ApicvInhibit.PitReinject, false);
        Assert.Equal([false, true], seen);
        Assert.Equal(2, set.Toggles);
    }

    [Fact]
    public void VendorMasksMatchKvm()
    {
        Assert.Equal(
            ApicvInhibitMask.Disabled | ApicvInhibitMask.Absent | ApicvInhibitMask.HyperV | ApicvInhibitMask.BlockIrq |
            ApicvInhibitMask.PhysicalIdAliased | ApicvInhibitMask.ApicIdModified | ApicvInhibitMask.ApicBaseModified |
            ApicvInhibitMask.L2PassthroughAccess,
            ApicvInhibitMask.Vmx);
        Assert.True((ApicvInhibitMask.Svm & ApicvInhibitMask.Sev) != 0);
        Assert.True((ApicvInhibitMask.Vmx & ApicvInhibitMask.Nested) == 0);
        Assert.Equal(13, (int)ApicvInhibit.L2PassthroughAccess);
    }
}

public class CostModelTests
{
    [Fact]
    public void VmgexitFollowsExitRoundTripUnlessOverridden()
    {
        Assert.Equal(2_400, CostModel.Default.VmgexitRoundTrip);
        CostModel faster = CostModel.Default.WithOverrides("ExitRoundTrip=1000", out _)!;
        Assert.Equal(2_000, faster.VmgexitRoundTrip);
        CostModel pinned = faster.WithOverrides("VmgexitRoundTrip=3000", out _)!;
        Assert.Equal(3_000, pinned.VmgexitRoundTrip);
    }

    [Fact]
    public void UnknownOrNegativeOverridesAreRejected()
    {
        Assert.Null(CostModel.Default.WithOverrides("Bogus=1", out string? e1));
        Assert.Contains("unknown cost figure", e1);
        Assert.Null(CostModel.Default.WithOverrides("ExitRoundTrip=-5", out string? e2));
        Assert.Contains("negative", e2);
        Assert.Null(CostModel.Default.WithOverrides("ExitRoundTrip", out string? e3));
        Assert.NotNull(e3);
    }
}
