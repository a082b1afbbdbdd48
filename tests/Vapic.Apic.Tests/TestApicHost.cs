using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>
/// A single-APIC host for unit tests: settable virtual time, a record of every IPI, EOI broadcast
/// and notification, and a loopback that hands IPIs addressed to the sender back to it through
/// <see cref="LocalApic.AcceptInterrupt"/> (what the machine's router would do with one APIC).
/// </summary>
internal sealed class TestApicHost : ILocalApicHost
{
    private LocalApic? _apic;

    /// <summary>Every IPI the APIC sent, in order.</summary>
    public List<InterruptMessage> SentIpis { get; } = [];

    /// <summary>Every EOI broadcast, in order.</summary>
    public List<byte> EoiBroadcasts { get; } = [];

    /// <summary>The number of TimerChanged notifications.</summary>
    public int TimerChangedCount { get; private set; }

    /// <summary>The number of RoutingChanged notifications.</summary>
    public int RoutingChangedCount { get; private set; }

    /// <summary>When true, IPIs that address the sender are accepted by it.</summary>
    public bool Loopback { get; set; } = true;

    /// <summary>
    /// Decides <see cref="ILocalApicHost.AllowLocalInterrupt"/> (LVT, delivery mode, vector); null
    /// (the default) allows every local interrupt, as bare emulation does.
    /// </summary>
    public Func<LvtEntry, DeliveryMode, byte, bool>? LocalInterruptFilter { get; set; }

    /// <inheritdoc/>
    public long Now { get; set; }

    /// <summary>The APIC under test.</summary>
    public LocalApic Apic => _apic ?? throw new InvalidOperationException("No APIC attached.");

    /// <summary>Creates a host and its APIC. Defaults: BSP, ID 0, EOI-broadcast suppression offered (VER 0x0105_0014).</summary>
    public static TestApicHost Create(
        uint id = 0,
        bool bsp = true,
        bool eoiSuppression = true,
        bool x2Apic = false,
        bool locked = false,
        int maxPhysicalAddressBits = 46,
        int busCycleNs = 1,
        int vcpuIndex = 0)
    {
        var host = new TestApicHost();
        host._apic = new LocalApic(host, new LocalApicOptions
        {
            VcpuIndex = vcpuIndex,
            InitialId = id,
            IsBootstrapProcessor = bsp,
            EoiBroadcastSuppression = eoiSuppression,
            StartInX2ApicMode = x2Apic,
            X2ApicLocked = locked,
            MaxPhysicalAddressBits = maxPhysicalAddressBits,
            BusCycleNs = busCycleNs,
        });
        return host;
    }

    /// <summary>Creates a host with a software-enabled APIC (SVR = 0x1FF), the "EN" of the spec's test vectors.</summary>
    public static TestApicHost CreateEnabled(uint id = 0, bool x2Apic = false, bool eoiSuppression = true)
    {
        TestApicHost host = Create(id: id, x2Apic: x2Apic, eoiSuppression: eoiSuppression);
        if (x2Apic)
        {
            host.Wrmsr(0x80F, 0x1FF);
        }
        else
        {
            host.Write(0x0F0, 0x1FF);
        }

        return host;
    }

    public void SendIpi(LocalApic source, in InterruptMessage message)
    {
        SentIpis.Add(message);
        if (Loopback && message.Assert && AddressesSender(source, message))
        {
            source.AcceptInterrupt(message.DeliveryMode, message.Vector, message.LevelTriggered);
        }
    }

    public void BroadcastEoi(LocalApic source, byte vector) => EoiBroadcasts.Add(vector);

    public void TimerChanged(LocalApic apic) => TimerChangedCount++;

    public void RoutingChanged(LocalApic apic) => RoutingChangedCount++;

    public bool AllowLocalInterrupt(LocalApic apic, LvtEntry source, DeliveryMode mode, byte vector) =>
        LocalInterruptFilter?.Invoke(source, mode, vector) ?? true;

    /// <summary>A 32-bit MMIO read at APIC offset <paramref name="offset"/> that must be decoded.</summary>
    public uint Read(int offset)
    {
        Assert.Equal(ApicAccessResult.Ok, Apic.ReadMmio(Apic.MmioBase + (ulong)offset, out uint value));
        return value;
    }

    /// <summary>A 32-bit MMIO write at APIC offset <paramref name="offset"/> that must be decoded.</summary>
    public void Write(int offset, uint value) =>
        Assert.Equal(ApicAccessResult.Ok, Apic.WriteMmio(Apic.MmioBase + (ulong)offset, value));

    /// <summary>An RDMSR that must succeed.</summary>
    public ulong Rdmsr(uint msr)
    {
        Assert.Equal(ApicAccessResult.Ok, Apic.ReadMsr(msr, out ulong value));
        return value;
    }

    /// <summary>A WRMSR that must succeed.</summary>
    public void Wrmsr(uint msr, ulong value) => Assert.Equal(ApicAccessResult.Ok, Apic.WriteMsr(msr, value));

    /// <summary>A WRMSR that must fault.</summary>
    public void WrmsrFaults(uint msr, ulong value) =>
        Assert.Equal(ApicAccessResult.GeneralProtection, Apic.WriteMsr(msr, value));

    /// <summary>An RDMSR that must fault.</summary>
    public void RdmsrFaults(uint msr) => Assert.Equal(ApicAccessResult.GeneralProtection, Apic.ReadMsr(msr, out _));

    /// <summary>Advances virtual time to <paramref name="time"/>, firing the timer at each deadline on the way, as the machine does.</summary>
    public void AdvanceTo(long time)
    {
        while (Apic.TimerDeadline <= time)
        {
            Now = Math.Max(Now, Apic.TimerDeadline);
            Apic.OnTimer();
        }

        Now = time;
    }

    /// <summary>Advances virtual time by <paramref name="delta"/> ns.</summary>
    public void Advance(long delta) => AdvanceTo(Now + delta);

    /// <summary>Sends a Fixed self IPI through the xAPIC ICR (shorthand self, edge).</summary>
    public void SelfIpi(byte vector) => Write(0x300, 0x0004_4000u | vector);

    /// <summary>Puts vector <paramref name="vector"/> in service: self IPI, then acknowledge; asserts it was taken.</summary>
    public void Service(byte vector)
    {
        Assert.True(Apic.AcceptInterrupt(DeliveryMode.Fixed, vector, levelTriggered: false));
        Assert.Equal(vector, Apic.AcknowledgeInterrupt());
    }

    /// <summary>Switches an xAPIC-mode APIC to x2APIC through IA32_APIC_BASE.</summary>
    public void SwitchToX2Apic() => Wrmsr(0x1B, Apic.BaseMsr | (1UL << 10));

    private static bool AddressesSender(LocalApic source, in InterruptMessage message)
    {
        switch (message.Shorthand)
        {
            case DestinationShorthand.Self:
            case DestinationShorthand.AllIncludingSelf:
                return true;
            case DestinationShorthand.AllExcludingSelf:
                return false;
        }

        bool x2Apic = source.Mode == ApicMode.X2Apic;
        uint broadcast = x2Apic ? InterruptMessage.X2ApicBroadcast : InterruptMessage.XApicBroadcast;
        if (message.Destination == broadcast)
        {
            return true;
        }

        if (message.DestinationMode == DestinationMode.Physical)
        {
            return message.Destination == source.Id;
        }

        uint ldr = source.LogicalDestination;
        if (x2Apic)
        {
            return (ldr >> 16) == (message.Destination >> 16) && (ldr & message.Destination & 0xFFFF) != 0;
        }

        // xAPIC flat model (the only one these tests use).
        return ((ldr >> 24) & message.Destination) != 0;
    }
}
