using Vapic.Apic;
using Vapic.Machine;

namespace Vapic.Virtualization.Nested;

/// <summary>
/// The built-in nested scenarios of <c>vapic nested</c>. Each builds a one-vCPU machine under a
/// mode, lets L1 set up an L2 and runs a fixed L2 workload that sends eight interrupts to the
/// guest and handles each one (take it, EOI it), then drains what is left. A run reports what L2
/// saw, the exits, the inhibits and how many interrupts arrived.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>backed</c>: L1 asks for full APIC virtualization for L2 (TPR shadow, APIC-access
/// page, APIC-register virtualization, virtual-interrupt delivery, posted interrupts) with an
/// APIC-access page in L1 RAM; L1 posts the interrupts to L2.</item>
/// <item><c>unbacked-hole</c>: the same, but the APIC-access address is a hole in L1's memory.</item>
/// <item><c>unbacked-l1-apic</c>: the same, but the APIC-access address is L1's own APIC at
/// 0xFEE00000, and L1 is servicing a device interrupt (vector 0x30) when it enters L2.</item>
/// <item><c>l2-direct-access</c>: L1 asks for no APIC virtualization and maps L1's APIC page into
/// L2 one-to-one (BitVisor); a device sends the interrupts to the vCPU and L2 takes and EOIs them
/// itself, every other one while the vCPU is preempted.</item>
/// </list>
/// </remarks>
public static class NestedScenarios
{
    /// <summary>Where L2 expects its APIC (and where L1's EPT maps it from).</summary>
    public const ulong L2ApicAddress = 0xFEE0_0000;

    /// <summary>The APIC-access address of <c>backed</c>: an L1 RAM page.</summary>
    public const ulong BackedApicAccessAddress = 0x0010_0000;

    /// <summary>The APIC-access address of <c>unbacked-hole</c>: above L1's 2 GiB of RAM, nothing there.</summary>
    public const ulong HoleApicAccessAddress = 0xC000_0000;

    /// <summary>The virtual-APIC page L1 gives L2.</summary>
    public const ulong VirtualApicAddress = 0x0010_1000;

    /// <summary>L1's posted-interrupt descriptor for L2.</summary>
    public const ulong DescriptorAddress = 0x0010_2000;

    /// <summary>L1's posted-interrupt notification vector.</summary>
    public const byte L1NotificationVector = 0xF2;

    /// <summary>The vector of every interrupt the workloads send.</summary>
    public const byte GuestVector = 0x41;

    /// <summary>The device interrupt L1 is servicing when it enters L2 in <c>unbacked-l1-apic</c>.</summary>
    public const byte L1Vector = 0x30;

    /// <summary>How many interrupts each workload sends.</summary>
    public const int InterruptCount = 8;

    /// <summary>The APIC ID L1 puts in L2's virtual-APIC page (L1's own is 0).</summary>
    public const uint L2ApicId = 0x0100_0000;

    private const uint ApicIdOffset = 0x020;
    private const uint TaskPriorityOffset = 0x080;
    private const uint EoiOffset = 0x0B0;
    private const uint SpuriousVectorOffset = 0x0F0;
    private const uint CurrentCountOffset = 0x390;

    /// <summary>The scenario names, in the order <c>vapic nested</c> lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["backed", "unbacked-hole", "unbacked-l1-apic", "l2-direct-access"];

    /// <summary>Whether <paramref name="name"/> is a built-in scenario.</summary>
    public static bool IsKnown(string name) => Names.Contains(name, StringComparer.Ordinal);

    /// <summary>The quirk a scenario is compared against when none is named: the one its problem is about.</summary>
    public static NestedQuirks ComparisonQuirks(string scenario) => scenario == "l2-direct-access"
        ? NestedQuirks.L2PassthroughNoInhibit
        : NestedQuirks.NestedApicAccessClear;

    /// <summary>Runs <paramref name="scenario"/> with <paramref name="quirks"/> under <paramref name="mode"/> (not yet attached).</summary>
    /// <exception cref="ArgumentException">The scenario is unknown or the mode is already attached.</exception>
    public static NestedScenarioResult Run(string scenario, NestedQuirks quirks, VirtualizationMode mode)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(mode);
        if (!IsKnown(scenario))
        {
            throw new ArgumentException($"unknown nested scenario '{scenario}' (scenarios: {string.Join(", ", Names)})", nameof(scenario));
        }

        var run = new ScenarioRun(scenario, quirks, mode);
        return run.Execute();
    }

    /// <summary>One run: the machine, the nested model, and the transcript.</summary>
    private sealed class ScenarioRun
    {
        private readonly string _scenario;
        private readonly VirtualizationMode _mode;
        private readonly VirtualMachine _machine;
        private readonly NestedVmx _nested;
        private readonly List<string> _transcript = [];
        private long _sent;
        private long _delivered;
        private bool _eoiShown;

        public ScenarioRun(string scenario, NestedQuirks quirks, VirtualizationMode mode)
        {
            _scenario = scenario;
            _mode = mode;
            _machine = new VirtualMachine(new MachineOptions { VcpuCount = 1 }, mode);
            _nested = new NestedVmx(mode, quirks);
        }

        private Vcpu Cpu => _machine.GetVcpu(0);

        public NestedScenarioResult Execute()
        {
            // L1 software-enables its APIC (SVR = 0x1FF).
            Cpu.WriteMmio(LocalApic.DefaultBase + SpuriousVectorOffset, 0x1FF);
            VmEntryResult entry = _scenario == "l2-direct-access" ? RunDirectAccess() : RunVirtualized();
            ReportDirectAccess();
            return new NestedScenarioResult(
                _scenario,
                _mode.Name,
                _nested.Quirks,
                entry,
                _nested.GetInternalError(0),
                _transcript,
                _nested.Counters,
                _mode.Ledger,
                _mode.Inhibits.Reasons,
                _sent,
                _delivered);
        }

        private VmEntryResult RunVirtualized()
        {
            ulong apicAccess = _scenario switch
            {
                "backed" => BackedApicAccessAddress,
                "unbacked-hole" => HoleApicAccessAddress,
                _ => L2ApicAddress,
            };

            if (_scenario == "unbacked-l1-apic")
            {
                // L1 is in the middle of servicing a device interrupt when it enters L2.
                _machine.SendMsi(0xFEE0_0000, L1Vector);
                CpuEvent taken = Cpu.Accept();
                _transcript.Add($"L1 takes its device interrupt: {taken}; L1's ISR holds 0x{L1Vector:x2}");
            }

            Vmcs12 vmcs12 = _nested.GetVmcs12(0);
            vmcs12.Controls = Vmcs12Controls.UseTprShadow | Vmcs12Controls.VirtualizeApicAccesses | Vmcs12Controls.ApicRegisterVirtualization |
                Vmcs12Controls.VirtualInterruptDelivery | Vmcs12Controls.ProcessPostedInterrupts | Vmcs12Controls.EnableEpt |
                Vmcs12Controls.ExternalInterruptExiting | Vmcs12Controls.AcknowledgeInterruptOnExit;
            vmcs12.ApicAccessAddress = apicAccess;
            vmcs12.VirtualApicAddress = VirtualApicAddress;
            vmcs12.PostedInterruptDescriptorAddress = DescriptorAddress;
            vmcs12.PostedInterruptNotificationVector = L1NotificationVector;
            _nested.L2Translation.Map(L2ApicAddress, apicAccess);
            _nested.L1Memory.Write32(VirtualApicAddress + ApicIdOffset, L2ApicId);
            _transcript.Add($"L1: vmcs12 virtualizes L2's APIC; APIC-access address 0x{apicAccess:x} ({Describe(_nested.L1Memory.KindOf(apicAccess))}), " +
                $"virtual-APIC page 0x{VirtualApicAddress:x}, L2's APIC ID 0x{L2ApicId:x8}");

            VmEntryResult entry = Launch();
            if (entry.Outcome != VmEntryOutcome.EnteredL2)
            {
                return entry;
            }

            L2Read(ApicIdOffset, "APIC ID");
            L2Read(TaskPriorityOffset, "TPR");
            L2Write(TaskPriorityOffset, 0x10, "TPR");
            L2Read(CurrentCountOffset, "timer current count");
            for (int i = 0; i < InterruptCount; i++)
            {
                NestedPostResult post = _nested.PostToL2(0, GuestVector);
                if (post.Outcome != NestedPostOutcome.Posted)
                {
                    _transcript.Add($"L1 posts 0x{GuestVector:x2} to L2: {post.Outcome}");
                    return entry;
                }

                _sent++;
                HandleVirtualInterrupt();
            }

            while (HandleVirtualInterrupt())
            {
            }

            ReportL1Apic();
            return entry;
        }

        private VmEntryResult RunDirectAccess()
        {
            Vmcs12 vmcs12 = _nested.GetVmcs12(0);
            vmcs12.Controls = Vmcs12Controls.EnableEpt;
            _transcript.Add("L1: vmcs12 asks for no APIC virtualization; L1's EPT maps L2's 0xfee00000 to L1's own APIC page");
            VmEntryResult entry = Launch();
            if (entry.Outcome != VmEntryOutcome.EnteredL2)
            {
                return entry;
            }

            L2Read(ApicIdOffset, "APIC ID");
            L2Write(TaskPriorityOffset, 0, "TPR");
            for (int i = 0; i < InterruptCount; i++)
            {
                if (i % 2 == 1)
                {
                    // The host deschedules the vCPU; the interrupt arrives while it is not in guest mode.
                    Cpu.SetHostState(VcpuHostState.Preempted);
                }

                if (_machine.SendMsi(0xFEE0_0000, GuestVector) == MsiDecodeResult.Ok)
                {
                    _sent++;
                }

                HandleDirectInterrupt();
            }

            while (HandleDirectInterrupt())
            {
            }

            return entry;
        }

        private VmEntryResult Launch()
        {
            VmEntryResult entry = _nested.VmLaunch(0);
            _transcript.Add($"L1 VMLAUNCH: {entry}");
            if (entry.Outcome == VmEntryOutcome.EnteredL2 && _nested.GetVmcs02(0)!.Adjustments != Vmcs02Adjustments.None)
            {
                _transcript.Add($"L0 built vmcs02 with adjustments: {_nested.GetVmcs02(0)!.Adjustments}");
            }

            return entry;
        }

        /// <summary>L2 takes a virtual interrupt (virtual-interrupt delivery) and EOIs it through its APIC page.</summary>
        private bool HandleVirtualInterrupt()
        {
            if (!_nested.TryL2Accept(0, out int vector) || vector < 0)
            {
                return false;
            }

            _delivered++;
            L2Write(EoiOffset, 0, "EOI", quiet: true);
            return true;
        }

        /// <summary>L2 takes the vCPU's interrupt itself (no external-interrupt exiting) and EOIs it through L1's APIC page.</summary>
        private bool HandleDirectInterrupt()
        {
            CpuEvent taken = Cpu.Accept();
            if (taken.Kind != CpuEventKind.Fixed)
            {
                return false;
            }

            _delivered++;
            L2Write(EoiOffset, 0, "EOI", quiet: true);
            return true;
        }

        private void L2Read(uint offset, string register)
        {
            L2AccessResult result = _nested.L2Read(0, L2ApicAddress + offset);
            _transcript.Add($"L2 reads its {register} at 0x{L2ApicAddress + offset:x}: {result}");
        }

        private void L2Write(uint offset, uint value, string register, bool quiet = false)
        {
            L2AccessResult result = _nested.L2Write(0, L2ApicAddress + offset, value);
            if (!quiet || (!_eoiShown && result.Target is L2AccessTarget.L1Apic or L2AccessTarget.Hole or L2AccessTarget.L1Mmio))
            {
                _eoiShown |= quiet;
                string what = result.Outcome == L2AccessOutcome.Completed ? $"written ({L2AccessResult.Describe(result.Target)})" : result.ToString();
                _transcript.Add($"L2 writes 0x{value:x} to its {register} at 0x{L2ApicAddress + offset:x}: {what}");
            }
        }

        private void ReportL1Apic()
        {
            LocalApic apic = Cpu.Apic;
            string isr = _scenario == "unbacked-l1-apic"
                ? apic.Isr.Get(L1Vector) ? $"its vector 0x{L1Vector:x2} still in service" : $"its vector 0x{L1Vector:x2} no longer in service (L2's EOI reached L1's APIC)"
                : apic.Isr.IsEmpty ? "nothing in service" : $"vector 0x{apic.Isr.Highest():x2} in service";
            _transcript.Add($"L1's own APIC afterwards: TPR 0x{apic.TaskPriority:x2}, {isr}");
        }

        private void ReportDirectAccess()
        {
            NestedCounters counters = _nested.Counters;
            if (counters.DirectAccessesWhileAccelerated == 0)
            {
                return;
            }

            if (_mode.Inhibits.Contains(ApicvInhibit.L2PassthroughAccess))
            {
                _transcript.Add($"L0 saw L2 touch L1's APIC page while {_mode.Name} accelerated L1's APIC: set l2-passthrough-access, emulated from then on");
            }
            else
            {
                _transcript.Add($"L0 emulated {counters.DirectAccessesWhileAccelerated} L2 accesses to L1's APIC page behind {_mode.Name}'s back; " +
                    $"{counters.EoisLost} EOIs never reached the vector in service");
            }
        }

        private static string Describe(L1MemoryKind kind) => kind switch
        {
            L1MemoryKind.Ram => "L1 RAM",
            L1MemoryKind.L1Apic => "L1's own APIC",
            L1MemoryKind.Mmio => "L1 device MMIO",
            _ => "a hole",
        };
    }
}

/// <summary>The result of one run of a built-in nested scenario.</summary>
/// <param name="Scenario">The scenario name.</param>
/// <param name="Mode">The mode L0 ran L1 in.</param>
/// <param name="Quirks">The quirks in effect.</param>
/// <param name="Entry">How L1's VMLAUNCH ended.</param>
/// <param name="InternalError">Why L0 stopped the vCPU (at the entry, or later when it had to read L1's descriptor), or null.</param>
/// <param name="Transcript">What L1 did and what L2 saw, one line per step.</param>
/// <param name="Counters">Nested exits and where L2's accesses went.</param>
/// <param name="Ledger">The exits and events the mode accounted for L1's vCPU (L2's emulated accesses included).</param>
/// <param name="Inhibits">The inhibit reasons set at the end.</param>
/// <param name="InterruptsSent">Interrupts sent to the guest (posted to L2, or sent by a device to the vCPU L2 runs on).</param>
/// <param name="InterruptsDelivered">Interrupts L2 took.</param>
public sealed record NestedScenarioResult(
    string Scenario,
    string Mode,
    NestedQuirks Quirks,
    VmEntryResult Entry,
    NestedInternalError? InternalError,
    IReadOnlyList<string> Transcript,
    NestedCounters Counters,
    ExitLedger Ledger,
    ApicvInhibitMask Inhibits,
    long InterruptsSent,
    long InterruptsDelivered)
{
    /// <summary><c>ok</c>, or <c>internal-error</c> when L0 stopped the vCPU.</summary>
    public string Outcome => InternalError is null ? "ok" : "internal-error";

    /// <summary>The internal error's message, or null.</summary>
    public string? Error => InternalError?.Message;

    /// <summary>Whether L2 reached L1 MMIO (L1's APIC or another L1 device) directly.</summary>
    public bool L2TouchedL1Mmio => Counters.L2TouchedL1Mmio;

    /// <summary>Interrupts sent that L2 never took.</summary>
    public long InterruptsLost => InterruptsSent - InterruptsDelivered;

    /// <summary>The names of <see cref="Inhibits"/> (e.g. <c>l2-passthrough-access</c>), in numeric order.</summary>
    public IReadOnlyList<string> InhibitNames => [.. ApicvInhibitSet.Enumerate(Inhibits).Select(InhibitName)];

    /// <summary>The lower-case, hyphenated name of <paramref name="reason"/> (<c>L2PassthroughAccess</c> → <c>l2-passthrough-access</c>).</summary>
    public static string InhibitName(ApicvInhibit reason)
    {
        string name = reason.ToString();
        var builder = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c) && i > 0)
            {
                builder.Append('-');
            }

            builder.Append(char.ToLowerInvariant(c));
        }

        return builder.ToString();
    }
}
