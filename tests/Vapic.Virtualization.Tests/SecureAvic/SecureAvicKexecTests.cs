using Vapic.Virtualization.SecureAvic;
using Xunit;
using static Vapic.Virtualization.SecureAvic.SecureAvicKexecScenario;

namespace Vapic.Virtualization.Tests.SecureAvic;

/// <summary>
/// The kexec scenario (virtualization-reference §7.6, TV64; K. Shutemov's review of the RFC): a
/// second kernel that knows nothing of Secure AVIC fails to boot cleanly when the first one did not
/// tear Secure AVIC down, and boots cleanly when it did.
/// </summary>
public class SecureAvicKexecTests
{
    [Fact]
    public void TheFirstKernelAllowsItsDeviceAndTimerVectorsOnlyWhereTheyGo()
    {
        SecureAvicKexecResult run = Run(tearDown: true);
        SecureAvicVcpuSnapshot cpu0 = run.FirstKernel[0], cpu1 = run.FirstKernel[1];

        Assert.Equal([TimerVector], cpu0.AllowedVectors);
        Assert.Equal([FirstKernelPinVector, FirstKernelMsiVector, TimerVector], cpu1.AllowedVectors);
        Assert.All(run.FirstKernel, s => Assert.True(s.NmiAllowed));
        Assert.All(run.FirstKernel, s => Assert.DoesNotContain(IpiVector, s.AllowedVectors));
        Assert.Equal(SecureAvicMode.DefaultBackingPageBase | 3, cpu0.ControlMsr);
        Assert.Equal(SecureAvicMode.DefaultBackingPageBase + 0x1000, cpu1.RegisteredGpa);

        // Pin 4 moved from vCPU 0 to vCPU 1: its bit left vCPU 0.
        Assert.Equal((FirstKernelPinVector, 0, 1, false), Assert.Single(run.VectorMoves));
    }

    [Fact]
    public void WhatTheHostileHypervisorTriedAndWhatGotThroughUnderTheFirstKernel()
    {
        SecureAvicDelivery[] first = [.. Run(tearDown: false).Deliveries.Where(d => d.Phase == FirstKernelPhase)];

        // Devices, the timer and the guest IPI all arrive.
        Assert.All(first.Where(d => d.Source != SecureAvicSource.Hypervisor), d => Assert.True(d.GotThrough, d.ToString()));
        Assert.Contains(first, d => d.Source == SecureAvicSource.GuestIpi && d.Vector == IpiVector && d.Allowed is null);

        // The hypervisor gets in exactly what the guest allowed.
        SecureAvicDelivery[] hostile = [.. first.Where(d => d.Source == SecureAvicSource.Hypervisor)];
        Assert.Equal(5, hostile.Length);
        Assert.All(hostile, d => Assert.Equal(d.Allowed, d.GotThrough));
        Assert.Equal(
            [(1, (byte?)FirstKernelPinVector, true), (0, FirstKernelPinVector, false), (0, IpiVector, false), (1, UnusedVector, false), (0, null, true)],
            hostile.Select(d => (d.Vcpu, d.Vector, d.GotThrough)));
    }

    [Fact]
    public void WithoutTeardownTheSecondKernelDoesNotBootCleanly()
    {
        SecureAvicKexecResult run = Run(tearDown: false);

        Assert.False(run.SecondKernelBootsCleanly);

        // Secure AVIC is still on, with the old pages registered and the old allowances.
        Assert.All(run.SecondKernel, s => Assert.NotEqual(0UL, s.ControlMsr & SecureAvicControl.Enable));
        Assert.All(run.SecondKernel, s => Assert.NotNull(s.RegisteredGpa));
        Assert.Equal(run.FirstKernel.Select(s => s.AllowedVectors), run.SecondKernel.Select(s => s.AllowedVectors));

        // Its x2APIC accesses raise #VC it cannot handle: SVR, divide and LVT timer on both vCPUs, the current count once.
        Assert.Equal(7, run.UnhandledVcExceptions);

        // Its own device interrupts are filtered out; the old kernel's vector is still injectable.
        SecureAvicDelivery[] second = [.. run.Deliveries.Where(d => d.Phase == SecondKernelPhase)];
        Assert.Equal(2, run.SecondKernelDevicesLost);
        Assert.All(second.Where(d => d.Source == SecureAvicSource.Device), d => Assert.Equal((false, false), (d.Allowed, d.GotThrough)));
        Assert.Contains(second, d => d.Source == SecureAvicSource.Hypervisor && d.Vector == FirstKernelPinVector && d.GotThrough);
        Assert.Contains(second, d => d.Source == SecureAvicSource.Hypervisor && d.Vector == UnusedVector && !d.GotThrough);
    }

    [Fact]
    public void WithTeardownTheSecondKernelBootsCleanly()
    {
        SecureAvicKexecResult run = Run(tearDown: true);

        Assert.True(run.SecondKernelBootsCleanly);
        Assert.All(run.SecondKernel, s => Assert.Equal((0UL, (ulong?)null, 0, false), (s.ControlMsr, s.RegisteredGpa, s.AllowedVectors.Count, s.NmiAllowed)));
        Assert.Equal(0, run.UnhandledVcExceptions);

        // Nothing filters any more: the second kernel runs as a plain SEV-SNP guest whose APIC the
        // hypervisor emulates, so its devices arrive (and so does anything the hypervisor injects).
        SecureAvicDelivery[] second = [.. run.Deliveries.Where(d => d.Phase == SecondKernelPhase)];
        Assert.All(second, d => Assert.Equal((null, true), (d.Allowed, d.GotThrough)));
    }

    [Fact]
    public void TheScenarioIsDeterministic()
    {
        SecureAvicKexecResult a = Run(tearDown: false), b = Run(tearDown: false);
        Assert.Equal(a.Deliveries, b.Deliveries);
        Assert.Equal(a.UnhandledVcExceptions, b.UnhandledVcExceptions);
    }
}
