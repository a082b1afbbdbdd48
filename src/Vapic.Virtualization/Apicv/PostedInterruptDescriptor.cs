using Vapic.Apic;

namespace Vapic.Virtualization.Apicv;

/// <summary>
/// One vCPU's posted-interrupt descriptor (SDM "Posted-Interrupt Processing"; the SN/NV/NDST
/// layout of VT-d and KVM <c>struct pi_desc</c>, virtualization-reference §2.7). The PIR holds
/// fixed interrupts the target has not yet merged into its virtual IRR; beside it the model
/// keeps each held vector's trigger mode, which KVM writes to TMR at posting time and the model
/// applies when the vector is merged.
/// </summary>
public sealed class PostedInterruptDescriptor
{
    /// <summary>KVM <c>POSTED_INTR_VECTOR</c>: the notification vector while the vCPU runs or is preempted.</summary>
    public const byte PostedInterruptVector = 0xF2;

    /// <summary>KVM <c>POSTED_INTR_WAKEUP_VECTOR</c>: the notification vector while the vCPU is blocked in HLT.</summary>
    public const byte WakeupVector = 0xF1;

    private InterruptBitmap _pir;
    private InterruptBitmap _levelTriggered;

    internal PostedInterruptDescriptor(int vcpuIndex, uint hostApicId)
    {
        VcpuIndex = vcpuIndex;
        NotificationDestination = hostApicId;
    }

    /// <summary>The vCPU this descriptor belongs to.</summary>
    public int VcpuIndex { get; }

    /// <summary>PIR, bits 255:0: one request bit per vector.</summary>
    public ref readonly InterruptBitmap Pir => ref _pir;

    /// <summary>For each vector held in <see cref="Pir"/>, whether it was posted level-triggered (sets TMR when merged).</summary>
    public ref readonly InterruptBitmap LevelTriggered => ref _levelTriggered;

    /// <summary>ON, bit 256 (outstanding notification): a notification was sent or is implied and the PIR is not yet merged.</summary>
    public bool OutstandingNotification { get; internal set; }

    /// <summary>SN, bit 257 (suppress notification): set while the vCPU is preempted so senders only set PIR.</summary>
    public bool SuppressNotification { get; internal set; }

    /// <summary>NV, bits 279:272: the physical vector of the notification IPI.</summary>
    public byte NotificationVector { get; internal set; } = PostedInterruptVector;

    /// <summary>NDST, bits 319:288: the host APIC ID of the pCPU the vCPU runs (or last ran) on.</summary>
    public uint NotificationDestination { get; internal set; }

    /// <summary>Sets PIR bit <paramref name="vector"/> with its trigger mode; returns true if it was already set (the post coalesces).</summary>
    internal bool Request(byte vector, bool levelTriggered)
    {
        // A repeated post keeps the latest trigger mode, as a second acceptance rewrites TMR.
        _levelTriggered.Assign(vector, levelTriggered);
        return _pir.Set(vector);
    }

    /// <summary>Test-and-set of ON; returns its previous value.</summary>
    internal bool TestAndSetOutstandingNotification()
    {
        bool was = OutstandingNotification;
        OutstandingNotification = true;
        return was;
    }

    /// <summary>Empties the PIR and clears ON (after the requests were merged into the virtual IRR).</summary>
    internal void Clear()
    {
        _pir.ClearAll();
        _levelTriggered.ClearAll();
        OutstandingNotification = false;
    }
}
