namespace Vapic.Machine;

/// <summary>The static configuration of a machine: what the firmware and the board give the guest.</summary>
public sealed record MachineOptions
{
    /// <summary>The largest machine the model supports.</summary>
    public const int MaxVcpus = 4096;

    /// <summary>The highest APIC ID a machine may use (0xFFFF_FFFF is the x2APIC broadcast address).</summary>
    public const uint MaxApicId = 0xFFFF_FFFE;

    /// <summary>Number of vCPUs, 1 to <see cref="MaxVcpus"/>.</summary>
    public int VcpuCount { get; init; } = 1;

    /// <summary>Initial APIC IDs in vCPU order; null means 0..VcpuCount-1.</summary>
    public IReadOnlyList<uint>? ApicIds { get; init; }

    /// <summary>Locked x2APIC (Intel "legacy xAPIC disabled"): every LAPIC leaves RESET and INIT in x2APIC mode and cannot leave it.</summary>
    public bool ForceX2Apic { get; init; }

    /// <summary>IOAPIC version: 0x20 (with EOI register, the default) or 0x11.</summary>
    public byte IoApicVersion { get; init; } = 0x20;

    /// <summary>Decode destination bits 14:8 from MSI address bits 11:5 and RTE bits 55:49 (Linux/KVM extended destination ID).</summary>
    public bool ExtendedDestinationId { get; init; } = true;

    /// <summary>MAXPHYADDR enumerated to the guest.</summary>
    public int MaxPhysicalAddressBits { get; init; } = 46;

    /// <summary>
    /// The CPU vendor the guest sees. It decides which model-specific enumeration exists: Intel has
    /// IA32_ARCH_CAPABILITIES (0x10A) and, with the lock, IA32_XAPIC_DISABLE_STATUS (0xBD); AMD has
    /// neither, so a locked x2APIC is enforced there but not enumerated.
    /// </summary>
    public CpuVendor CpuVendor { get; init; } = CpuVendor.Intel;

    /// <summary>
    /// The initial TSC offset of every vCPU (VMCS TSC offset / VMCB TSC_OFFSET): guest TSC = virtual
    /// time in ns + offset, modulo 2^64. Any value is valid; a guest WRMSR IA32_TSC changes it later.
    /// </summary>
    public long TscOffset { get; init; }

    /// <summary>The default TSC and APIC timer frequency: 1 GHz, one tick per virtual nanosecond (KVM's default bus cycle).</summary>
    public const long DefaultFrequencyHz = 1_000_000_000;

    /// <summary>The lowest TSC frequency accepted: 1 MHz.</summary>
    public const long MinTscFrequencyHz = 1_000_000;

    /// <summary>The highest TSC frequency accepted: 100 GHz.</summary>
    public const long MaxTscFrequencyHz = 100_000_000_000;

    /// <summary>
    /// The lowest APIC timer frequency accepted: 1 kHz. Below it a 32-bit count at divide-by-128
    /// spans more virtual time than the timer's integer re-basing on DCR writes keeps exact.
    /// </summary>
    public const long MinApicTimerFrequencyHz = 1_000;

    /// <summary>
    /// The guest TSC frequency in Hz (what CPUID leaf 0x15 / the TSC scaling ratio presents): guest
    /// TSC = floor(virtual ns × frequency / 10^9) + offset, modulo 2^64. 1 GHz (the default) makes one
    /// TSC tick per virtual nanosecond. IA32_TSC_DEADLINE deadlines are converted at this rate.
    /// </summary>
    public long TscFrequencyHz { get; init; } = DefaultFrequencyHz;

    /// <summary>
    /// The APIC timer (bus) frequency in Hz, before the divide configuration (CPUID leaf 0x15 core
    /// crystal / KVM_CAP_X86_APIC_BUS_CYCLES_NS). One bus cycle must be a whole number of virtual
    /// nanoseconds, as in KVM: the frequency divides 10^9 (1 GHz, 500 MHz, 25 MHz, ...).
    /// </summary>
    public long ApicTimerFrequencyHz { get; init; } = DefaultFrequencyHz;

    /// <summary>Nanoseconds per APIC bus cycle: 10^9 / <see cref="ApicTimerFrequencyHz"/>.</summary>
    public int ApicBusCycleNs => (int)(DefaultFrequencyHz / ApicTimerFrequencyHz);

    /// <summary>Returns the APIC ID of vCPU <paramref name="index"/>.</summary>
    public uint ApicIdOf(int index) => ApicIds is null ? (uint)index : ApicIds[index];

    /// <summary>
    /// Checks the configuration; returns null when valid, otherwise a message saying what is wrong.
    /// </summary>
    public string? Validate()
    {
        if (VcpuCount < 1 || VcpuCount > MaxVcpus)
        {
            return $"vcpus must be between 1 and {MaxVcpus}, not {VcpuCount}";
        }

        if (IoApicVersion is not (0x11 or 0x20))
        {
            return $"ioapic-version must be 0x11 or 0x20, not 0x{IoApicVersion:x}";
        }

        if (MaxPhysicalAddressBits is < 36 or > 52)
        {
            return $"MAXPHYADDR must be between 36 and 52, not {MaxPhysicalAddressBits}";
        }

        if (CpuVendor is not (CpuVendor.Intel or CpuVendor.Amd))
        {
            return $"CPU vendor must be Intel or AMD, not {(int)CpuVendor}";
        }

        if (TscFrequencyHz is < MinTscFrequencyHz or > MaxTscFrequencyHz)
        {
            return $"TSC frequency must be between {MinTscFrequencyHz} and {MaxTscFrequencyHz} Hz, not {TscFrequencyHz}";
        }

        if (ApicTimerFrequencyHz is < MinApicTimerFrequencyHz or > DefaultFrequencyHz || DefaultFrequencyHz % ApicTimerFrequencyHz != 0)
        {
            return $"APIC timer frequency must be between {MinApicTimerFrequencyHz} Hz and 1 GHz and divide 1 GHz (one bus cycle is a whole number of ns), not {ApicTimerFrequencyHz} Hz";
        }

        if (ApicIds is not null)
        {
            if (ApicIds.Count != VcpuCount)
            {
                return $"{ApicIds.Count} APIC IDs given for {VcpuCount} vCPUs";
            }

            var seen = new HashSet<uint>();
            for (int i = 0; i < ApicIds.Count; i++)
            {
                uint id = ApicIds[i];
                if (id > MaxApicId)
                {
                    return $"APIC ID 0x{id:x} of vCPU {i} is the broadcast address";
                }

                if (!seen.Add(id))
                {
                    return $"APIC ID 0x{id:x} is given to more than one vCPU";
                }
            }
        }

        return null;
    }

    /// <summary>True when some APIC ID needs x2APIC (above 0xFE), so firmware leaves every LAPIC in x2APIC mode.</summary>
    public bool NeedsX2Apic
    {
        get
        {
            for (int i = 0; i < VcpuCount; i++)
            {
                if (ApicIdOf(i) > 0xFE)
                {
                    return true;
                }
            }

            return false;
        }
    }
}

/// <summary>The CPU vendor a machine presents, for the vendor-specific MSRs it enumerates.</summary>
public enum CpuVendor : byte
{
    /// <summary>GenuineIntel: IA32_ARCH_CAPABILITIES exists; IA32_XAPIC_DISABLE_STATUS with the lock.</summary>
    Intel,

    /// <summary>AuthenticAMD: neither IA32_ARCH_CAPABILITIES nor IA32_XAPIC_DISABLE_STATUS exists (#GP).</summary>
    Amd,
}
