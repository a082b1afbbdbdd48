using System.Globalization;
using System.Text;
using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Passthrough;

/// <summary>
/// Which MSRs one vCPU's bitmap intercepts under <see cref="PassthroughMode"/>: the x2APIC range
/// 0x800-0x8FF for read and for write, and the TSC-related MSRs (IA32_TSC_ADJUST 0x3B,
/// IA32_TSC_DEADLINE 0x6E0). This is what <c>vapic msr-bitmap</c> prints.
/// </summary>
/// <param name="Vcpu">The vCPU whose bitmap this is.</param>
/// <param name="GuestInX2Apic">Whether its guest had switched to x2APIC (the passthrough is in effect).</param>
/// <param name="TscOffset">The vCPU's TSC offset when the bitmap was read.</param>
/// <param name="Read">Read-intercepted MSRs of 0x800-0x8FF, ascending.</param>
/// <param name="Write">Write-intercepted MSRs of 0x800-0x8FF, ascending.</param>
/// <param name="TscRead">Read-intercepted TSC-related MSRs, ascending.</param>
/// <param name="TscWrite">Write-intercepted TSC-related MSRs, ascending.</param>
public sealed record PassthroughMsrReport(
    int Vcpu,
    bool GuestInX2Apic,
    long TscOffset,
    IReadOnlyList<uint> Read,
    IReadOnlyList<uint> Write,
    IReadOnlyList<uint> TscRead,
    IReadOnlyList<uint> TscWrite)
{
    /// <summary>The TSC-related MSRs the report lists: IA32_TSC_ADJUST and IA32_TSC_DEADLINE.</summary>
    public static IReadOnlyList<uint> TscMsrs { get; } = [PassthroughMode.TscAdjustMsr, PassthroughMode.TscDeadlineMsr];

    /// <summary>Reads the intercepts of <paramref name="bitmap"/>.</summary>
    public static PassthroughMsrReport FromBitmap(MsrBitmap bitmap, int vcpu, bool guestInX2Apic, long tscOffset)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        var read = new List<uint>();
        var write = new List<uint>();
        for (uint msr = PassthroughMode.X2ApicMsrFirst; msr <= PassthroughMode.X2ApicMsrLast; msr++)
        {
            if (bitmap.IsReadIntercepted(msr))
            {
                read.Add(msr);
            }

            if (bitmap.IsWriteIntercepted(msr))
            {
                write.Add(msr);
            }
        }

        return new PassthroughMsrReport(
            vcpu,
            guestInX2Apic,
            tscOffset,
            read,
            write,
            [.. TscMsrs.Where(bitmap.IsReadIntercepted)],
            [.. TscMsrs.Where(bitmap.IsWriteIntercepted)]);
    }

    /// <summary>
    /// Builds a machine under <see cref="PassthroughMode"/>, boots its APs (INIT, SIPI), switches
    /// every guest LAPIC to x2APIC unless <paramref name="switchToX2Apic"/> is false, and reports
    /// the bitmap of vCPU <paramref name="vcpu"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The machine or passthrough options are invalid, or <paramref name="vcpu"/> is not one of its vCPUs.</exception>
    public static PassthroughMsrReport Build(MachineOptions machine, PassthroughOptions? options, bool switchToX2Apic, int vcpu = 0)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (vcpu < 0 || vcpu >= machine.VcpuCount)
        {
            throw new ArgumentException($"vCPU {vcpu} is not one of the machine's {machine.VcpuCount} vCPUs", nameof(vcpu));
        }

        var mode = new PassthroughMode(options);
        var vm = new VirtualMachine(machine, mode);
        Boot(vm);
        if (switchToX2Apic)
        {
            foreach (Vcpu v in vm.Vcpus)
            {
                if (v.Apic.Mode == ApicMode.XApic)
                {
                    // IA32_APIC_BASE with EXTD set next to EN: xAPIC → x2APIC (SDM "x2APIC State Transitions").
                    v.WriteMsr(ApicBaseMsr.Msr, v.Apic.BaseMsr | ApicBaseMsr.X2ApicEnable);
                }
            }
        }

        Vcpu shown = vm.GetVcpu(vcpu);
        return FromBitmap(mode.GetMsrBitmap(vcpu), vcpu, mode.IsPassthroughActive(vcpu), shown.Apic.TscOffset);
    }

    /// <summary>The BSP software-enables its LAPIC and starts every AP with INIT and SIPI (vector 8), all excluding self.</summary>
    private static void Boot(VirtualMachine vm)
    {
        if (vm.VcpuCount == 1)
        {
            return;
        }

        Vcpu bsp = vm.GetVcpu(0);
        if (bsp.Apic.Mode == ApicMode.X2Apic)
        {
            bsp.WriteMsr(0x80F, 0x1FF);
            bsp.WriteMsr(PassthroughMode.InterruptCommandMsr, 0x000C_4500);
            AcceptOnAps(vm);
            bsp.WriteMsr(PassthroughMode.InterruptCommandMsr, 0x000C_4608);
        }
        else
        {
            ulong window = bsp.Apic.MmioBase;
            bsp.WriteMmio(window + ApicRegister.SpuriousVectorOffset, 0x1FF);
            bsp.WriteMmio(window + ApicRegister.InterruptCommandOffset, 0x000C_4500);
            AcceptOnAps(vm);
            bsp.WriteMmio(window + ApicRegister.InterruptCommandOffset, 0x000C_4608);
        }

        AcceptOnAps(vm);
    }

    private static void AcceptOnAps(VirtualMachine vm)
    {
        for (int i = 1; i < vm.VcpuCount; i++)
        {
            vm.GetVcpu(i).Accept();
        }
    }

    /// <summary>
    /// The report as one line of JSON:
    /// <c>{"read": ["0x802", "0x80d"], "write": ["0x830"], "tsc": {"read": [], "write": []}}</c>
    /// (lower-case hex, ascending).
    /// </summary>
    public string ToJson()
    {
        var json = new StringBuilder();
        json.Append("{\"read\": ");
        AppendList(json, Read);
        json.Append(", \"write\": ");
        AppendList(json, Write);
        json.Append(", \"tsc\": {\"read\": ");
        AppendList(json, TscRead);
        json.Append(", \"write\": ");
        AppendList(json, TscWrite);
        json.Append("}}");
        return json.ToString();
    }

    /// <summary>MSR numbers as ranges where they are consecutive: <c>0x800-0x8ff</c>, <c>0x802, 0x80d</c>, or <c>none</c>.</summary>
    public static string DescribeRanges(IReadOnlyList<uint> msrs)
    {
        ArgumentNullException.ThrowIfNull(msrs);
        if (msrs.Count == 0)
        {
            return "none";
        }

        var text = new StringBuilder();
        for (int i = 0; i < msrs.Count;)
        {
            int j = i;
            while (j + 1 < msrs.Count && msrs[j + 1] == msrs[j] + 1)
            {
                j++;
            }

            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append(Hex(msrs[i]));
            if (j > i)
            {
                text.Append('-').Append(Hex(msrs[j]));
            }

            i = j + 1;
        }

        return text.ToString();
    }

    /// <summary>An MSR number as the report writes it: <c>0x</c> and lower-case hex.</summary>
    public static string Hex(uint msr) => "0x" + msr.ToString("x", CultureInfo.InvariantCulture);

    private static void AppendList(StringBuilder json, IReadOnlyList<uint> msrs)
    {
        json.Append('[');
        for (int i = 0; i < msrs.Count; i++)
        {
            if (i > 0)
            {
                json.Append(", ");
            }

            json.Append('"').Append(Hex(msrs[i])).Append('"');
        }

        json.Append(']');
    }
}
