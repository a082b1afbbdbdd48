using Vapic.Apic;

namespace Vapic.Machine;

/// <summary>
/// The platform: vCPUs with their local APICs, one IOAPIC, the interrupt router, a virtual
/// clock in nanoseconds and one timer queue for every timer source. Single-threaded and
/// deterministic: the same calls give the same results, bit for bit.
/// </summary>
public sealed partial class VirtualMachine : ILocalApicHost, IIoApicHost
{
    private readonly Vcpu[] _vcpus;
    private readonly ApicRouter _router;
    private readonly TimerQueue _timers;
    private readonly int _ioApicTimerSource;
    private long _now;

    /// <summary>Creates a machine in its power-on state, optionally under a virtualization mode.</summary>
    /// <exception cref="ArgumentException">The options are invalid (see <see cref="MachineOptions.Validate"/>).</exception>
    public VirtualMachine(MachineOptions options, IInterruptVirtualization? virtualization = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }

        Options = options;
        bool startX2Apic = options.ForceX2Apic || options.NeedsX2Apic;
        _vcpus = new Vcpu[options.VcpuCount];
        for (int i = 0; i < _vcpus.Length; i++)
        {
            var apicOptions = new LocalApicOptions
            {
                VcpuIndex = i,
                InitialId = options.ApicIdOf(i),
                IsBootstrapProcessor = i == 0,
                StartInX2ApicMode = startX2Apic,
                X2ApicLocked = options.ForceX2Apic,
                // VER bit 24 is offered iff x2APIC is enumerated (always) and the IOAPIC has an
                // EOI register (lapic-reference §0).
                EoiBroadcastSuppression = options.IoApicVersion == 0x20,
                MaxPhysicalAddressBits = options.MaxPhysicalAddressBits,
                BusCycleNs = options.ApicBusCycleNs,
                TscFrequencyHz = options.TscFrequencyHz,
            };
            _vcpus[i] = new Vcpu(this, i, new LocalApic(this, apicOptions));
        }

        IoApic = new IoApic(this, options.IoApicVersion, IoApic.DefaultPinCount, IoApic.DefaultBase, options.ExtendedDestinationId);
        _router = new ApicRouter(_vcpus, Counters, virtualization);
        _ioApicTimerSource = _vcpus.Length;
        _timers = new TimerQueue(_vcpus.Length + 1);
        Virtualization = virtualization;
        virtualization?.Attach(this);
    }

    /// <summary>The virtualization mode observing this machine, or null for bare emulation without accounting.</summary>
    public IInterruptVirtualization? Virtualization { get; }

    /// <summary>The configuration this machine was built from.</summary>
    public MachineOptions Options { get; }

    /// <summary>The vCPUs in creation order.</summary>
    public ReadOnlySpan<Vcpu> Vcpus => _vcpus;

    /// <summary>The number of vCPUs.</summary>
    public int VcpuCount => _vcpus.Length;

    /// <summary>The IOAPIC (24 pins at 0xFEC00000).</summary>
    public IoApic IoApic { get; }

    /// <summary>Machine-wide counters.</summary>
    public MachineCounters Counters { get; } = new();

    /// <summary>The current virtual time in nanoseconds.</summary>
    public long Now => _now;

    /// <summary>The earliest pending timer deadline, or <see cref="long.MaxValue"/>.</summary>
    public long NextTimerDeadline => _timers.NextDeadline;

    /// <summary>The number of times routing tables were rebuilt.</summary>
    public long RoutingRebuilds => _router.Rebuilds;

    /// <summary>Returns vCPU <paramref name="index"/>.</summary>
    public Vcpu GetVcpu(int index) => _vcpus[index];

    /// <summary>
    /// Advances virtual time by <paramref name="nanoseconds"/>, firing every timer whose deadline
    /// is reached, in time order (ties in vCPU order), each at exactly its deadline.
    /// </summary>
    public void Advance(long nanoseconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nanoseconds);
        AdvanceTo(checked(_now + nanoseconds));
    }

    /// <summary>Advances virtual time to <paramref name="time"/> (not before now), firing due timers.</summary>
    public void AdvanceTo(long time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(time, _now);
        while (_timers.Count != 0 && _timers.NextDeadline <= time)
        {
            int source = _timers.NextSource;
            long deadline = _timers.NextDeadline;
            if (deadline > _now)
            {
                _now = deadline;
            }

            FireTimer(source);
        }

        _now = time;
    }

    /// <summary>Fires every timer that is already due at the current time (e.g. a TSC deadline in the past).</summary>
    public void RunDueTimers()
    {
        while (_timers.Count != 0 && _timers.NextDeadline <= _now)
        {
            FireTimer(_timers.NextSource);
        }
    }

    private void FireTimer(int source)
    {
        if (source == _ioApicTimerSource)
        {
            IoApic.OnTimer();
            _timers.Set(source, IoApic.RetriggerDeadline);
        }
        else
        {
            Vcpu vcpu = _vcpus[source];
            LocalApic apic = vcpu.Apic;
            Counters.TimerExpiries++;
            Virtualization?.OnTimerExpiry(vcpu);

            // OnTimer re-arms or disarms through ILocalApicHost.TimerChanged, which updates the
            // queue; the check only guards against a queue entry the APIC no longer has.
            apic.OnTimer();
            if (_timers.DeadlineOf(source) != apic.TimerDeadline)
            {
                _timers.Set(source, apic.TimerDeadline);
            }
        }
    }

    /// <summary>Asserts or de-asserts IOAPIC input <paramref name="gsi"/>.</summary>
    public void SetIrq(int gsi, bool asserted)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gsi);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(gsi, IoApic.PinCount);
        IoApic.SetLine(gsi, asserted);
    }

    /// <summary>
    /// A device writes <paramref name="data"/> to <paramref name="address"/>: decoded as an MSI
    /// and routed. Returns how the write decoded; a write that is not an interrupt is counted.
    /// </summary>
    public MsiDecodeResult SendMsi(ulong address, uint data)
    {
        MsiDecodeResult result = Msi.TryDecode(address, data, Options.ExtendedDestinationId, out InterruptMessage message);
        switch (result)
        {
            case MsiDecodeResult.Ok:
                Counters.MsisRouted++;
                _router.Deliver(in message);
                break;
            case MsiDecodeResult.ReservedDeliveryMode:
                Counters.MsiReservedMode++;
                break;
            default:
                Counters.MsiNotInterruptAddress++;
                break;
        }

        return result;
    }

    /// <summary>Routes an arbitrary message (for hypervisor-originated injections and tests).</summary>
    public int Deliver(in InterruptMessage message) => _router.Deliver(in message);

    /// <summary>Power-on RESET of the whole machine (time keeps running).</summary>
    public void Reset()
    {
        foreach (Vcpu vcpu in _vcpus)
        {
            vcpu.PowerOnReset();
        }

        IoApic.Reset();
        _router.Invalidate();
    }

    long ILocalApicHost.Now => _now;

    long IIoApicHost.Now => _now;

    void ILocalApicHost.SendIpi(LocalApic source, in InterruptMessage message)
    {
        Counters.IpisRouted++;
        _router.Deliver(in message);
    }

    void ILocalApicHost.BroadcastEoi(LocalApic source, byte vector)
    {
        Counters.EoiBroadcasts++;
        IoApic.EndOfInterrupt(vector);
    }

    void ILocalApicHost.TimerChanged(LocalApic apic)
    {
        // TimerQueue is created after the APICs; APIC constructors may report their reset state.
        _timers?.Set(apic.VcpuIndex, apic.TimerDeadline);
    }

    void ILocalApicHost.RoutingChanged(LocalApic apic) => _router?.Invalidate();

    bool ILocalApicHost.AllowLocalInterrupt(LocalApic apic, LvtEntry source, DeliveryMode mode, byte vector)
    {
        // Bare emulation (every timer benchmark, most tests) answers without another interface call.
        IInterruptVirtualization? virtualization = Virtualization;
        return virtualization is null || virtualization.AllowLocalInterrupt(_vcpus[apic.VcpuIndex], source, mode, vector);
    }

    int IIoApicHost.Deliver(in InterruptMessage message)
    {
        Counters.IoApicMessagesRouted++;
        return _router.Deliver(in message);
    }

    void IIoApicHost.TimerChanged(IoApic ioApic) => _timers?.Set(_ioApicTimerSource, ioApic.RetriggerDeadline);
}
