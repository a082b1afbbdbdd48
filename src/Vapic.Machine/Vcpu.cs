using Vapic.Apic;

namespace Vapic.Machine;

/// <summary>
/// One virtual CPU as the interrupt architecture sees it: its local APIC, its MP run state
/// (running or waiting for SIPI) and the order in which it takes pending events.
/// </summary>
public sealed partial class Vcpu
{
    /// <summary>IA32_TSC.</summary>
    public const uint MsrTsc = 0x10;

    /// <summary>IA32_XAPIC_DISABLE_STATUS, enumerated by IA32_ARCH_CAPABILITIES bit 21.</summary>
    public const uint MsrXApicDisableStatus = 0xBD;

    /// <summary>IA32_ARCH_CAPABILITIES.</summary>
    public const uint MsrArchCapabilities = 0x10A;

    /// <summary>IA32_ARCH_CAPABILITIES bit 21: XAPIC_DISABLE_STATUS MSR supported.</summary>
    public const ulong ArchCapXApicDisableStatus = 1UL << 21;

    private readonly VirtualMachine _machine;

    internal Vcpu(VirtualMachine machine, int index, LocalApic apic)
    {
        _machine = machine;
        Index = index;
        Apic = apic;
        RunState = apic.IsBootstrapProcessor ? VcpuRunState.Running : VcpuRunState.WaitForSipi;

        // The hypervisor's TSC offset for this vCPU (VMCS TSC offset): guest TSC =
        // floor(Now × TSC frequency / 10^9) + offset (LocalApic.GuestTsc).
        apic.TscOffset = machine.Options.TscOffset;
    }

    /// <summary>The vCPU index, 0-based in creation order.</summary>
    public int Index { get; }

    /// <summary>This CPU's local APIC.</summary>
    public LocalApic Apic { get; }

    /// <summary>Running, or waiting for SIPI after RESET/INIT (SDM "MP Initialization Protocol").</summary>
    public VcpuRunState RunState { get; private set; }

    /// <summary>
    /// Where the CPU (re)started: 0xFFFF_FFF0 after RESET or INIT of the BSP, VV × 0x1000 after a
    /// SIPI with vector VV (real mode, CS = VV &lt;&lt; 8, IP = 0).
    /// </summary>
    public ulong EntryPoint { get; private set; } = 0xFFFF_FFF0;

    /// <summary>The real-mode code segment selector at the entry point (0xF000 after RESET, VV &lt;&lt; 8 after SIPI).</summary>
    public ushort CodeSegment { get; private set; } = 0xF000;

    /// <summary>Takes the highest-priority event pending for this CPU with interrupts enabled.</summary>
    /// <remarks>
    /// Order: SMI, INIT, NMI, ExtINT, then the highest fixed vector above PPR (SDM "Interrupt
    /// priorities"). A CPU waiting for SIPI takes only INIT and then SIPI; everything else stays
    /// pending. INIT resets the LAPIC to its INIT state and drops latched SMI/NMI/ExtINT (as KVM's
    /// vCPU reset does); the BSP restarts at its reset vector and stays running (lapic-reference
    /// A17), an AP waits for SIPI. A SIPI that reaches a running CPU is discarded.
    /// </remarks>
    public CpuEvent Accept()
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return AcceptCore();
        }

        v.OnGuestEntry(this);
        CpuEvent taken = AcceptCore();
        if (taken.Kind != CpuEventKind.None)
        {
            v.OnEventTaken(this, taken);
        }

        return taken;
    }

    private CpuEvent AcceptCore()
    {
        LocalApic apic = Apic;
        ApicEvents pending = apic.PendingEvents;
        if (RunState == VcpuRunState.WaitForSipi)
        {
            if ((pending & ApicEvents.Init) != 0)
            {
                TakeInit();
                return new CpuEvent(CpuEventKind.Init);
            }

            if ((pending & ApicEvents.StartUp) != 0)
            {
                byte vector = apic.StartupVector;
                apic.ClearPendingEvents(ApicEvents.StartUp);
                RunState = VcpuRunState.Running;
                CodeSegment = (ushort)(vector << 8);
                EntryPoint = (ulong)vector << 12;
                _machine.Counters.StartupsTaken++;
                return new CpuEvent(CpuEventKind.StartUp, vector);
            }

            return CpuEvent.None;
        }

        if ((pending & (ApicEvents.StartUp | ApicEvents.Init)) == ApicEvents.StartUp)
        {
            // SDM: a SIPI is only recognized in wait-for-SIPI; a running CPU ignores it (one
            // that arrived behind a pending INIT is kept for the wait-for-SIPI state INIT enters).
            apic.ClearPendingEvents(ApicEvents.StartUp);
            _machine.Counters.StartupsDiscarded++;
            pending &= ~ApicEvents.StartUp;
        }

        if ((pending & ApicEvents.Smi) != 0)
        {
            apic.ClearPendingEvents(ApicEvents.Smi);
            return new CpuEvent(CpuEventKind.Smi);
        }

        if ((pending & ApicEvents.Init) != 0)
        {
            TakeInit();
            return new CpuEvent(CpuEventKind.Init);
        }

        if ((pending & ApicEvents.Nmi) != 0)
        {
            // Taking the NMI runs its handler to IRET (trace format), so NMIs never stay blocked.
            apic.ClearPendingEvents(ApicEvents.Nmi);
            return new CpuEvent(CpuEventKind.Nmi);
        }

        if ((pending & ApicEvents.ExtInt) != 0)
        {
            apic.ClearPendingEvents(ApicEvents.ExtInt);
            return new CpuEvent(CpuEventKind.ExtInt);
        }

        int fixedVector = apic.AcknowledgeInterrupt();
        return fixedVector < 0 ? CpuEvent.None : new CpuEvent(CpuEventKind.Fixed, (byte)fixedVector);
    }

    private void TakeInit()
    {
        LocalApic apic = Apic;

        // A SIPI that arrived while the INIT was pending belongs to the start-up sequence that
        // follows it (INIT-SIPI-SIPI); keep it for an AP, whose next take is the SIPI.
        ApicEvents keep = apic.PendingEvents & ApicEvents.StartUp;
        byte startupVector = apic.StartupVector;
        apic.ClearPendingEvents(ApicEvents.Smi | ApicEvents.Init | ApicEvents.Nmi | ApicEvents.ExtInt | ApicEvents.StartUp);
        apic.Reset(init: true);
        _machine.Counters.InitsTaken++;
        if (apic.IsBootstrapProcessor)
        {
            RunState = VcpuRunState.Running;
            EntryPoint = 0xFFFF_FFF0;
            CodeSegment = 0xF000;
            if (keep != ApicEvents.None)
            {
                _machine.Counters.StartupsDiscarded++;
            }
        }
        else
        {
            RunState = VcpuRunState.WaitForSipi;
            if (keep != ApicEvents.None)
            {
                apic.AcceptInterrupt(DeliveryMode.StartUp, startupVector, levelTriggered: false);
            }
        }
    }

    /// <summary>Whether a SIPI arriving now is recognized: the CPU waits for SIPI, or an INIT that will put it there is pending.</summary>
    internal bool WillRecognizeStartup =>
        RunState == VcpuRunState.WaitForSipi ||
        ((Apic.PendingEvents & ApicEvents.Init) != 0 && !Apic.IsBootstrapProcessor);

    /// <summary>RDMSR from this CPU: the machine-level MSRs, then the APIC's.</summary>
    public ApicAccessResult ReadMsr(uint msr, out ulong value)
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return ReadMsrCore(msr, out value);
        }

        var access = new GuestAccess(GuestAccessKind.MsrRead, msr, 0);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ApicAccessResult result = ReadMsrCore(msr, out value);
        v.AfterAccess(this, access with { Value = value }, result);
        return result;
    }

    /// <summary>WRMSR from this CPU: the machine-level MSRs, then the APIC's.</summary>
    public ApicAccessResult WriteMsr(uint msr, ulong value)
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return WriteMsrCore(msr, value);
        }

        var access = new GuestAccess(GuestAccessKind.MsrWrite, msr, value);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ApicAccessResult result = WriteMsrCore(msr, value);
        v.AfterAccess(this, in access, result);
        return result;
    }

    /// <summary>A 32-bit MMIO read by this CPU: its own LAPIC window first, then the IOAPIC.</summary>
    public ApicAccessResult ReadMmio(ulong address, out uint value)
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return ReadMmioCore(address, out value);
        }

        var access = new GuestAccess(GuestAccessKind.MmioRead, address, 0);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ApicAccessResult result = ReadMmioCore(address, out value);
        v.AfterAccess(this, access with { Value = value }, result);
        return result;
    }

    /// <summary>A 32-bit MMIO write by this CPU: its own LAPIC window first, then the IOAPIC.</summary>
    public ApicAccessResult WriteMmio(ulong address, uint value)
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return WriteMmioCore(address, value);
        }

        var access = new GuestAccess(GuestAccessKind.MmioWrite, address, value);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ApicAccessResult result = WriteMmioCore(address, value);
        v.AfterAccess(this, in access, result);
        return result;
    }

    /// <summary>MOV from CR8: the task-priority class (TPR[7:4]).</summary>
    public ulong ReadCr8()
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return Apic.ReadCr8();
        }

        var access = new GuestAccess(GuestAccessKind.Cr8Read, 8, 0);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ulong value = Apic.ReadCr8();
        v.AfterAccess(this, access with { Value = value }, ApicAccessResult.Ok);
        return value;
    }

    /// <summary>MOV to CR8: sets TPR = value[3:0] &lt;&lt; 4; bits 63:4 set raise #GP.</summary>
    public ApicAccessResult WriteCr8(ulong value)
    {
        IInterruptVirtualization? v = _machine.Virtualization;
        if (v is null)
        {
            return Apic.WriteCr8(value);
        }

        var access = new GuestAccess(GuestAccessKind.Cr8Write, 8, value);
        v.OnGuestEntry(this);
        v.BeforeAccess(this, in access);
        ApicAccessResult result = Apic.WriteCr8(value);
        v.AfterAccess(this, in access, result);
        return result;
    }

    /// <summary>Where the host scheduler has this vCPU (running in guest mode, preempted, halted).</summary>
    public VcpuHostState HostState { get; private set; }

    /// <summary>The host scheduler moves this vCPU (used by workloads to exercise wakeup paths).</summary>
    public void SetHostState(VcpuHostState state)
    {
        VcpuHostState previous = HostState;
        if (previous == state)
        {
            return;
        }

        HostState = state;
        _machine.Virtualization?.OnHostStateChanged(this, previous);
    }

    private ApicAccessResult ReadMsrCore(uint msr, out ulong value)
    {
        switch (msr)
        {
            case MsrTsc:
                value = Apic.GuestTsc(_machine.Now);
                return ApicAccessResult.Ok;
            case MsrArchCapabilities:
                if (_machine.Options.CpuVendor != CpuVendor.Intel)
                {
                    // AMD processors do not implement IA32_ARCH_CAPABILITIES (CPUID.(EAX=7,ECX=0):EDX[29]
                    // is Intel's enumeration of it): RDMSR of an absent MSR raises #GP.
                    value = 0;
                    return ApicAccessResult.GeneralProtection;
                }

                value = _machine.Options.ForceX2Apic ? ArchCapXApicDisableStatus : 0;
                return ApicAccessResult.Ok;
            case MsrXApicDisableStatus:
                // Intel only, and only enumerated with the lock. On AMD the lock is enforced (the
                // APIC base MSR refuses to leave x2APIC) but no architectural MSR reports it.
                if (_machine.Options.ForceX2Apic && _machine.Options.CpuVendor == CpuVendor.Intel)
                {
                    value = 1; // LEGACY_XAPIC_DISABLED
                    return ApicAccessResult.Ok;
                }

                value = 0;
                return ApicAccessResult.GeneralProtection;
            default:
                if (LocalApic.IsApicMsr(msr))
                {
                    return Apic.ReadMsr(msr, out value);
                }

                value = 0;
                return ApicAccessResult.GeneralProtection;
        }
    }

    private ApicAccessResult WriteMsrCore(uint msr, ulong value)
    {
        switch (msr)
        {
            case MsrTsc:
                // Writing the TSC sets this CPU's offset; the TSC-deadline timer follows it.
                Apic.SetGuestTsc(value);
                return ApicAccessResult.Ok;
            case MsrArchCapabilities:
            case MsrXApicDisableStatus:
                // Both are read-only on Intel (and 0xBD does not exist without the lock); neither exists on AMD.
                return ApicAccessResult.GeneralProtection;
            default:
                if (!LocalApic.IsApicMsr(msr))
                {
                    return ApicAccessResult.GeneralProtection;
                }

                ApicAccessResult result = Apic.WriteMsr(msr, value);

                // A TSC deadline that is already due fires at once (trace format "Devices and time").
                _machine.RunDueTimers();
                return result;
        }
    }

    private ApicAccessResult ReadMmioCore(ulong address, out uint value)
    {
        ApicAccessResult r = Apic.ReadMmio(address, out value);
        if (r != ApicAccessResult.Unmapped)
        {
            return r;
        }

        return _machine.IoApic.ReadMmio(address, out value);
    }

    private ApicAccessResult WriteMmioCore(ulong address, uint value)
    {
        ApicAccessResult r = Apic.WriteMmio(address, value);
        if (r != ApicAccessResult.Unmapped)
        {
            _machine.RunDueTimers();
            return r;
        }

        return _machine.IoApic.WriteMmio(address, value);
    }

    /// <summary>Power-on RESET of this CPU and its LAPIC.</summary>
    internal void PowerOnReset()
    {
        Apic.ClearPendingEvents(ApicEvents.Smi | ApicEvents.Init | ApicEvents.Nmi | ApicEvents.ExtInt | ApicEvents.StartUp);
        Apic.Reset(init: false);
        RunState = Apic.IsBootstrapProcessor ? VcpuRunState.Running : VcpuRunState.WaitForSipi;
        EntryPoint = 0xFFFF_FFF0;
        CodeSegment = 0xF000;
    }
}
