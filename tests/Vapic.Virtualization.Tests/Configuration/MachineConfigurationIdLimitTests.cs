using Vapic.Virtualization.Configuration;
using Xunit;

namespace Vapic.Virtualization.Tests.Configuration;

public class MachineConfigurationIdLimitTests
{
    [Fact]
    public void ApicIdAboveTheDeviceDestinationRangeIsRejectedAtItsValue()
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse("mode = \"emulated\"\n[machine]\nvcpus = 2\napic_ids = [0, 0x8000]\n", "big.toml");
        Assert.False(result.Succeeded);
        Assert.Equal((4, 16), (result.Error!.Line, result.Error.Column));
        Assert.Contains("0x7FFF", result.Error.Message);
    }

    [Fact]
    public void ConfiguredApicIdsReachTheWorkload()
    {
        ConfigurationLoadResult result = MachineConfigurationLoader.Parse(
            "mode = \"apicv\"\n[machine]\nvcpus = 4\napic_ids = [0, 1, 0x100, 0x101]\n[workload]\nkind = \"mixed\"\nrounds = 3\n", "ids.toml");
        Assert.True(result.Succeeded, result.Error?.ToString());
        var comparison = result.Configuration!.Run();
        Assert.Empty(comparison.Failures);
        Assert.Equal(comparison.ExpectedInterrupts, Assert.Single(comparison.Modes).InterruptsDelivered);
    }
}
