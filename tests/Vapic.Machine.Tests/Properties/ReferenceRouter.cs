using Vapic.Apic;

namespace Vapic.Machine.Tests.Properties;

/// <summary>
/// What destination matching needs to know about one local APIC, read the way a guest reads it
/// (IA32_APIC_BASE, ID, LDR, DFR, SVR) plus the CPU's run state for SIPI acceptance.
/// </summary>
internal readonly record struct ApicView(
    ApicMode Mode,
    uint Id,
    uint Ldr,
    uint Dfr,
    bool SoftwareEnabled,
    bool Bsp,
    bool WaitsForSipi,
    bool InitPending)
{
    public bool CanTakeFixed => Mode != ApicMode.Disabled && SoftwareEnabled;

    /// <summary>Observes vCPU <paramref name="cpu"/> through RDMSR and MMIO reads.</summary>
    public static ApicView Observe(Vcpu cpu)
    {
        ulong baseMsr = cpu.RdMsr(Msr.ApicBase);
        bool bsp = (baseMsr & (1UL << 8)) != 0;
        bool waits = cpu.RunState == VcpuRunState.WaitForSipi;
        bool initPending = (cpu.Apic.PendingEvents & ApicEvents.Init) != 0;
        switch (baseMsr & (TestGuest.BaseEnable | TestGuest.BaseExtended))
        {
            case TestGuest.BaseEnable:
                return new ApicView(
                    ApicMode.XApic,
                    cpu.Read(Reg.Id) >> 24,
                    cpu.Read(Reg.LogicalDestination),
                    cpu.Read(Reg.DestinationFormat),
                    (cpu.Read(Reg.SpuriousVector) & 0x100) != 0,
                    bsp,
                    waits,
                    initPending);
            case TestGuest.BaseEnable | TestGuest.BaseExtended:
                return new ApicView(
                    ApicMode.X2Apic,
                    (uint)cpu.RdMsr(Msr.X2ApicId),
                    (uint)cpu.RdMsr(Msr.X2ApicLogicalDestination),
                    0,
                    (cpu.RdMsr(Msr.X2ApicSpuriousVector) & 0x100) != 0,
                    bsp,
                    waits,
                    initPending);
            default:
                return new ApicView(ApicMode.Disabled, 0, 0, 0, false, bsp, waits, initPending);
        }
    }

    public static ApicView[] ObserveAll(VirtualMachine machine)
    {
        var views = new ApicView[machine.VcpuCount];
        for (int i = 0; i < views.Length; i++)
        {
            views[i] = Observe(machine.GetVcpu(i));
        }

        return views;
    }
}

/// <summary>What one message is expected to do at each vCPU.</summary>
internal sealed class Expectation(int vcpus)
{
    /// <summary>Fixed-class arrivals (accepted, merged, or dropped for a reason the APIC counts).</summary>
    public readonly int[] FixedArrivals = new int[vcpus];

    /// <summary>SMI/NMI/INIT/ExtINT/SIPI latched at a globally enabled APIC.</summary>
    public readonly int[] Latched = new int[vcpus];

    /// <summary>Non-fixed messages reaching a globally disabled APIC (refused and counted there).</summary>
    public readonly int[] RefusedWhileDisabled = new int[vcpus];

    /// <summary>The vCPUs whose IRR must hold the vector afterwards (fixed, enabled, legal vector).</summary>
    public readonly bool[] SetsIrr = new bool[vcpus];

    /// <summary>True when the message matched no APIC at all (the router reports -1).</summary>
    public bool NoDestination;

    public void Add(Expectation other)
    {
        for (int i = 0; i < FixedArrivals.Length; i++)
        {
            FixedArrivals[i] += other.FixedArrivals[i];
            Latched[i] += other.Latched[i];
            RefusedWhileDisabled[i] += other.RefusedWhileDisabled[i];
            SetsIrr[i] |= other.SetsIrr[i];
        }
    }
}

/// <summary>
/// An independent, deliberately naive router: every APIC is examined on its own with the rules of
/// lapic-reference.md §10 and §12 (SDM "Determining IPI Destination", "Logical Destination Mode",
/// "ICR Operation in x2APIC Mode"; KVM <c>kvm_apic_match_dest</c> with the x2APIC broadcast quirk
/// disabled, A19-A22), with no tables and no caching.
/// </summary>
internal static class ReferenceRouter
{
    /// <summary>Does the APIC described by <paramref name="target"/> match the message destination (no shorthand)?</summary>
    public static bool Matches(in ApicView target, in InterruptMessage message)
    {
        uint mda = message.Destination;
        switch (target.Mode)
        {
            case ApicMode.XApic:
                {
                    // An xAPIC-mode target reads 0xFF as broadcast in both destination modes (A19, A22).
                    if (mda == 0xFF)
                    {
                        return true;
                    }

                    if (message.DestinationMode == DestinationMode.Physical)
                    {
                        return mda == target.Id;
                    }

                    uint logicalId = target.Ldr >> 24;
                    return (target.Dfr >> 28) switch
                    {
                        0xF => (logicalId & mda) != 0,
                        0x0 => (logicalId >> 4) == (mda >> 4) && (logicalId & mda & 0xF) != 0,
                        _ => false, // other DFR models match nothing (KVM)
                    };
                }

            case ApicMode.X2Apic:
                {
                    if (mda == 0xFFFF_FFFF)
                    {
                        return true;
                    }

                    if (message.DestinationMode == DestinationMode.Physical)
                    {
                        return mda == target.Id;
                    }

                    return (target.Ldr >> 16) == (mda >> 16) && (target.Ldr & mda & 0xFFFF) != 0;
                }

            default:
                return false; // a globally disabled APIC takes no message
        }
    }

    /// <summary>The vCPUs a message names, in ascending order (shorthands include disabled APICs).</summary>
    public static List<int> Targets(ApicView[] views, in InterruptMessage message)
    {
        var targets = new List<int>();
        for (int i = 0; i < views.Length; i++)
        {
            bool named = message.Shorthand switch
            {
                DestinationShorthand.Self => i == message.SourceVcpu,
                DestinationShorthand.AllIncludingSelf => true,
                DestinationShorthand.AllExcludingSelf => i != message.SourceVcpu,
                _ => Matches(views[i], message),
            };
            if (named)
            {
                targets.Add(i);
            }
        }

        return targets;
    }

    /// <summary>
    /// Lowest priority (or MSI RH = 1) is arbitrated, except physical 0xFF without a shorthand,
    /// which KVM downgrades to a fixed broadcast.
    /// </summary>
    public static bool IsArbitrated(in InterruptMessage message) =>
        (message.DeliveryMode == DeliveryMode.LowestPriority || message.RedirectionHint) &&
        !(message.Shorthand == DestinationShorthand.None && message.DestinationMode == DestinationMode.Physical && message.Destination == 0xFF);

    /// <summary>The lowest-priority winner: the (vector mod n)-th enabled candidate in vCPU order (A20), or -1.</summary>
    public static int Winner(ApicView[] views, List<int> targets, byte vector)
    {
        var candidates = new List<int>();
        foreach (int i in targets)
        {
            if (views[i].CanTakeFixed)
            {
                candidates.Add(i);
            }
        }

        return candidates.Count == 0 ? -1 : candidates[vector % candidates.Count];
    }

    /// <summary>Computes what <paramref name="message"/> does at each vCPU.</summary>
    public static Expectation Expect(ApicView[] views, in InterruptMessage message)
    {
        var result = new Expectation(views.Length);
        if (message.DeliveryMode == DeliveryMode.Init && !message.Assert)
        {
            return result; // INIT level de-assert has no effect anywhere (lapic-reference §4)
        }

        List<int> targets = Targets(views, message);
        if (targets.Count == 0)
        {
            result.NoDestination = true;
            return result;
        }

        DeliveryMode mode = message.DeliveryMode == DeliveryMode.LowestPriority ? DeliveryMode.Fixed : message.DeliveryMode;
        if (IsArbitrated(message))
        {
            int winner = Winner(views, targets, message.Vector);
            targets.Clear();
            if (winner >= 0)
            {
                targets.Add(winner);
            }
        }

        foreach (int i in targets)
        {
            ApicView view = views[i];
            switch (mode)
            {
                case DeliveryMode.Fixed:
                    result.FixedArrivals[i]++;
                    result.SetsIrr[i] = view.CanTakeFixed && message.Vector >= 16;
                    break;
                case DeliveryMode.StartUp:
                    // Only a CPU waiting for SIPI (or about to, behind a pending INIT) recognizes it.
                    if ((message.Source is InterruptSource.Ipi or InterruptSource.External) &&
                        (view.WaitsForSipi || (view.InitPending && !view.Bsp)))
                    {
                        CountNonFixed(result, view, i);
                    }

                    break;
                case DeliveryMode.ExtInt:
                    if (message.Source != InterruptSource.Ipi)
                    {
                        CountNonFixed(result, view, i);
                    }

                    break;
                case DeliveryMode.Smi:
                case DeliveryMode.Nmi:
                case DeliveryMode.Init:
                    CountNonFixed(result, view, i);
                    break;
            }
        }

        return result;
    }

    private static void CountNonFixed(Expectation result, in ApicView view, int i)
    {
        if (view.Mode == ApicMode.Disabled)
        {
            result.RefusedWhileDisabled[i]++;
        }
        else
        {
            result.Latched[i]++;
        }
    }
}
