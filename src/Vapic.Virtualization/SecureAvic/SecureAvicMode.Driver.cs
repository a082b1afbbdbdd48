using System.Numerics;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.SecureAvic;

/// <summary>The guest's Secure AVIC driver: setup, teardown, kexec, and the ALLOWED_IRR it derives from what the guest programs.</summary>
public sealed partial class SecureAvicMode
{
    /// <summary>The RTE bits that decide where a vector goes: vector, delivery mode, destination mode, destination (with the extended ID).</summary>
    private const ulong RoutingBits =
        RedirectionEntry.VectorMask | (7UL << RedirectionEntry.DeliveryModeShift) | RedirectionEntry.DestinationModeBit |
        (0xFFUL << RedirectionEntry.DestinationShift) | (0x7FUL << RedirectionEntry.ExtendedDestinationShift);

    // The driver's record of its device vectors (Linux vector.c calls apic->update_vector when it
    // assigns or frees one): per IOAPIC pin the routing bits last seen, the vector allowed for it
    // (0: none) and the vCPUs it is allowed on; per vCPU the vectors its MSIs use.
    private ulong[] _pinRouting = [];
    private byte[] _pinVector = [];
    private bool[] _pinResolved = [];
    private ulong[][] _pinCpus = [];
    private InterruptBitmap[] _msiVectors = [];

    /// <summary>
    /// Runs the driver's setup on <paramref name="vcpu"/> now if it is due (Linux <c>savic_setup</c>,
    /// called when the CPU's LAPIC is set up in x2APIC mode): the guest runs the driver, the
    /// vCPU runs in x2APIC mode and Secure AVIC is not enabled yet.
    /// </summary>
    private void SetUpIfDue(Vcpu vcpu, SecureAvicVcpu state)
    {
        if (!state.Enabled && _kernel == SecureAvicGuestKernel.SecureAvicDriver &&
            vcpu.Apic.Mode == ApicMode.X2Apic && vcpu.RunState == VcpuRunState.Running)
        {
            SetUp(state);
        }
    }

    private void SetUp(SecureAvicVcpu state)
    {
        // 1. The APIC ID comes from the hypervisor (x2APIC MSR reads are intercepted until Secure
        //    AVIC is enabled) and is stored in the page (x2apic_savic_init_backing_page).
        MsrProtocolVmgexit();

        // 2. Register the page's GPA for this CPU (SVM_VMGEXIT_SAVIC, EXITINFO1 = 0, RAX = ~0 for
        //    "self", RBX = GPA), so that the hypervisor keeps it mapped in NPT while the vCPU runs
        //    (else VMRUN fails with VMEXIT_BUSY).
        ulong gpa = state.Page.GuestPhysicalAddress;
        RegistrationVmgexit();
        state.RegisteredGpa = gpa;

        // 3. Enable in the control MSR with a native WRMSR (the guest checked that the hypervisor
        //    does not intercept it): GPA | ALLOWEDNMI | EN, as savic_setup writes it.
        state.ControlMsr = gpa | SecureAvicControl.AllowedNmi | SecureAvicControl.Enable;
        Counters.Setups++;

        // Vectors of sources already routed to this CPU (and its timer) are allowed again.
        ReapplyAllowances(state.Index);
    }

    /// <summary>
    /// The driver's teardown on vCPU <paramref name="vcpu"/> (Linux <c>savic_teardown</c>, called from
    /// <c>disable_local_APIC</c> before kexec or reset), done completely: Secure AVIC disabled in
    /// the control MSR (which clears the NMI allowance), the page unregistered (TV64), and
    /// ALLOWED_IRR and the NMI request cleared, so that nothing the old kernel allowed survives.
    /// </summary>
    public void TearDown(Vcpu vcpu)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        TearDown(_vcpus[vcpu.Index]);
    }

    private void TearDown(SecureAvicVcpu state)
    {
        state.ControlMsr = 0;
        if (state.RegisteredGpa is not null)
        {
            // SVM_VMGEXIT_SAVIC with EXITINFO1 = 1 (savic_unregister_gpa).
            RegistrationVmgexit();
            state.RegisteredGpa = null;
        }

        state.Page.ClearSecureAvicFields();
        Counters.Teardowns++;
    }

    /// <summary>
    /// Kexec: the running kernel stops every CPU, tearing Secure AVIC down on each first when
    /// <paramref name="tearDown"/> is set (and the kernel has the driver), and jumps to a kernel of
    /// kind <paramref name="next"/>. Nothing in the hardware is reset: without the teardown, the
    /// control MSR, the registered pages and ALLOWED_IRR stay as the old kernel left them. The new
    /// kernel has programmed no source yet.
    /// </summary>
    public void Kexec(bool tearDown, SecureAvicGuestKernel next)
    {
        if (tearDown && _kernel == SecureAvicGuestKernel.SecureAvicDriver)
        {
            foreach (SecureAvicVcpu state in _vcpus)
            {
                if (state.Enabled || state.RegisteredGpa is not null)
                {
                    TearDown(state);
                }
            }
        }

        _kernel = next;
        ForgetDriverSources();
    }

    /// <summary>
    /// The guest writes MSR_AMD64_SAVIC_CONTROL on <paramref name="vcpu"/> with a native WRMSR (the
    /// register is not intercepted). Only EN, ALLOWEDNMI and the GPA bits are kept.
    /// </summary>
    public void WriteControlMsr(Vcpu vcpu, ulong value)
    {
        ArgumentNullException.ThrowIfNull(vcpu);
        _vcpus[vcpu.Index].ControlMsr = value & (SecureAvicControl.GpaMask | SecureAvicControl.AllowedNmi | SecureAvicControl.Enable);
    }

    private void RegistrationVmgexit()
    {
        Ledger.Exit(ExitReason.Vmgexit);
        Counters.RegistrationVmgexits++;
    }

    private void AttachDriverSources(VirtualMachine machine)
    {
        int pins = machine.IoApic.PinCount;
        int words = (machine.VcpuCount + 63) >> 6;
        _pinRouting = new ulong[pins];
        _pinVector = new byte[pins];
        _pinResolved = new bool[pins];
        _pinCpus = new ulong[pins][];
        for (int p = 0; p < pins; p++)
        {
            _pinCpus[p] = new ulong[words];
        }

        _msiVectors = new InterruptBitmap[machine.VcpuCount];
        ForgetDriverSources();
    }

    /// <summary>The current kernel has programmed nothing yet: what the IOAPIC holds now is not its own.</summary>
    private void ForgetDriverSources()
    {
        IoApic ioApic = Machine.IoApic;
        for (int p = 0; p < _pinRouting.Length; p++)
        {
            _pinRouting[p] = ioApic.GetRedirectionEntry(p) & RoutingBits;
            _pinVector[p] = 0;
            _pinResolved[p] = false;
            Array.Clear(_pinCpus[p]);
        }

        Array.Clear(_msiVectors);
        foreach (SecureAvicVcpu state in _vcpus)
        {
            state.AllowedTimerVector = -1;
        }
    }

    /// <summary>
    /// Brings the driver's record up to date with the IOAPIC redirection entries the guest
    /// programmed (IOAPIC writes reach the device, not a vCPU hook). A pin whose vector or
    /// destination changed gives up its old allowances — the vector is cleared from ALLOWED_IRR of
    /// the vCPU it left unless another source still uses it there (the fix the RFC lacked) — and
    /// allows its new vector at once on a physical destination; other destinations are allowed on
    /// each vCPU the hypervisor first delivers the pin to.
    /// </summary>
    private void SyncDriverSources()
    {
        if (_kernel != SecureAvicGuestKernel.SecureAvicDriver || _pinRouting.Length == 0)
        {
            return;
        }

        IoApic ioApic = Machine.IoApic;
        for (int p = 0; p < _pinRouting.Length; p++)
        {
            ulong routing = ioApic.GetRedirectionEntry(p) & RoutingBits;
            if (routing != _pinRouting[p])
            {
                Reprogram(p, routing, ioApic.ExtendedDestinationId);
            }
        }
    }

    private void Reprogram(int pin, ulong routing, bool extendedDestinationId)
    {
        byte oldVector = _pinVector[pin];
        _pinRouting[pin] = routing;
        _pinVector[pin] = 0;
        _pinResolved[pin] = false;
        ulong[] cpus = _pinCpus[pin];
        for (int w = 0; w < cpus.Length; w++)
        {
            ulong bits = cpus[w];
            cpus[w] = 0;
            for (; bits != 0; bits &= bits - 1)
            {
                ReleaseIfUnused((w << 6) + BitOperations.TrailingZeroCount(bits), oldVector);
            }
        }

        var entry = new RedirectionEntry(routing);
        if (entry.DeliveryMode is not (DeliveryMode.Fixed or DeliveryMode.LowestPriority) || entry.Vector < 16)
        {
            // NMI, SMI, INIT and ExtINT entries carry no vector; 0-15 are illegal vectors.
            return;
        }

        _pinVector[pin] = entry.Vector;
        if (entry.DestinationMode == DestinationMode.Physical)
        {
            int cpu = FindPhysicalDestination(entry.GetDestination(extendedDestinationId));
            if (cpu >= 0)
            {
                _pinResolved[pin] = true;
                AllowForPin(pin, cpu);
            }
        }
    }

    private int FindPhysicalDestination(uint destination)
    {
        ReadOnlySpan<Vcpu> vcpus = Machine.Vcpus;
        for (int i = 0; i < vcpus.Length; i++)
        {
            LocalApic apic = vcpus[i].Apic;
            if (apic.Mode != ApicMode.Disabled && apic.Id == destination)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// The hypervisor delivers an IOAPIC vector to <paramref name="cpu"/>: every pin programmed with
    /// it whose destination the driver could not name in advance (logical, broadcast) is allowed there.
    /// </summary>
    private void AllowDeliveredIoApicVector(int cpu, byte vector)
    {
        if (_kernel != SecureAvicGuestKernel.SecureAvicDriver || vector < 16)
        {
            return;
        }

        int word = cpu >> 6;
        ulong bit = 1UL << cpu;
        for (int p = 0; p < _pinVector.Length; p++)
        {
            if (_pinVector[p] == vector && !_pinResolved[p] && (_pinCpus[p][word] & bit) == 0)
            {
                AllowForPin(p, cpu);
            }
        }
    }

    /// <summary>
    /// An MSI reaches <paramref name="cpu"/>: the device was programmed by the guest with this
    /// address and data, and the driver allowed the vector on the destination when it did
    /// (the trace's <c>msi</c> command is the first the model sees of that programming).
    /// </summary>
    private void AllowMsiVector(int cpu, byte vector)
    {
        if (_kernel == SecureAvicGuestKernel.SecureAvicDriver && vector >= 16 && !_msiVectors[cpu].Set(vector))
        {
            Allow(cpu, vector);
        }
    }

    private void AllowForPin(int pin, int cpu)
    {
        _pinCpus[pin][cpu >> 6] |= 1UL << cpu;
        Allow(cpu, _pinVector[pin]);
    }

    /// <summary>
    /// The driver's LVT timer write went to the hypervisor, which will request that vector when
    /// its emulated timer fires: the driver allows it (Linux <c>setup_APIC_timer</c>) and gives
    /// up the previous one.
    /// </summary>
    private void UpdateTimerAllowance(Vcpu vcpu, SecureAvicVcpu state)
    {
        byte vector = (byte)vcpu.Apic.GetLvt(LvtEntry.Timer);
        int allowed = vector >= 16 ? vector : -1;
        int previous = state.AllowedTimerVector;
        if (allowed == previous)
        {
            return;
        }

        state.AllowedTimerVector = allowed;
        if (allowed >= 0)
        {
            Allow(state.Index, (byte)allowed);
        }

        if (previous >= 0)
        {
            ReleaseIfUnused(state.Index, (byte)previous);
        }
    }

    private void ReapplyAllowances(int cpu)
    {
        SecureAvicVcpu state = _vcpus[cpu];
        if (state.AllowedTimerVector >= 0)
        {
            Allow(cpu, (byte)state.AllowedTimerVector);
        }

        for (int v = 16; v < 256; v++)
        {
            if (_msiVectors[cpu].Get(v))
            {
                Allow(cpu, (byte)v);
            }
        }

        int word = cpu >> 6;
        ulong bit = 1UL << cpu;
        for (int p = 0; p < _pinVector.Length; p++)
        {
            if (_pinVector[p] != 0 && (_pinCpus[p][word] & bit) != 0)
            {
                Allow(cpu, _pinVector[p]);
            }
        }
    }

    private void Allow(int cpu, byte vector)
    {
        if (_vcpus[cpu].Page.SetAllowed(vector, true))
        {
            Counters.AllowancesGranted++;
        }
    }

    private void ReleaseIfUnused(int cpu, byte vector)
    {
        if (!IsUsed(cpu, vector) && _vcpus[cpu].Page.SetAllowed(vector, false))
        {
            Counters.AllowancesWithdrawn++;
        }
    }

    /// <summary>Whether any source the driver allowed still sends <paramref name="vector"/> to <paramref name="cpu"/>.</summary>
    private bool IsUsed(int cpu, byte vector)
    {
        if (_vcpus[cpu].AllowedTimerVector == vector || _msiVectors[cpu].Get(vector))
        {
            return true;
        }

        int word = cpu >> 6;
        ulong bit = 1UL << cpu;
        for (int p = 0; p < _pinVector.Length; p++)
        {
            if (_pinVector[p] == vector && (_pinCpus[p][word] & bit) != 0)
            {
                return true;
            }
        }

        return false;
    }
}
