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
