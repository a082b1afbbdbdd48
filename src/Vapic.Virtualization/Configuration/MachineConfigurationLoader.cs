using Tomlyn.Parsing;
using Tomlyn.Syntax;
using Vapic.Apic;
using Vapic.Machine;
using Vapic.Virtualization.Compare;
using Vapic.Virtualization.Passthrough;

namespace Vapic.Virtualization.Configuration;

/// <summary>
/// Loads a <see cref="MachineConfiguration"/> from TOML. Every key is checked against the schema of
/// docs/configuration.md: unknown tables and keys, wrong value types, out-of-range values and
/// impossible combinations are errors at the line and column of the offending key or value, with
/// the nearest valid name as a suggestion.
/// </summary>
public static class MachineConfigurationLoader
{
    /// <summary>The top-level keys.</summary>
    public static IReadOnlyList<string> TopLevelKeys { get; } = ["mode"];

    /// <summary>The tables.</summary>
    public static IReadOnlyList<string> Tables { get; } = ["machine", "cost", "passthrough", "workload"];

    /// <summary>The arrays of tables, one table per device: <c>[[devices.msi]]</c> and <c>[[devices.ioapic]]</c>.</summary>
    public static IReadOnlyList<string> DeviceTables { get; } = ["devices.msi", "devices.ioapic"];

    /// <summary>The keys of <c>[machine]</c>.</summary>
    public static IReadOnlyList<string> MachineKeys { get; } =
    [
        "vcpus", "apic_ids", "force_x2apic", "ioapic_version", "vendor", "tsc_offset", "extended_destination_id",
        "max_physical_address_bits", "tsc_frequency_hz", "apic_timer_frequency_hz",
    ];

    /// <summary>The keys of a <c>[[devices.msi]]</c> table.</summary>
    public static IReadOnlyList<string> MsiDeviceKeys { get; } = ["name", "vector", "target", "delivery", "period_ns", "start_ns", "count", "trigger"];

    /// <summary>The keys of a <c>[[devices.ioapic]]</c> table.</summary>
    public static IReadOnlyList<string> IoApicDeviceKeys { get; } =
        ["name", "vector", "target", "delivery", "period_ns", "start_ns", "count", "pin", "trigger", "polarity"];

    /// <summary>The keys of <c>[passthrough]</c>.</summary>
    public static IReadOnlyList<string> PassthroughKeys { get; } = ["host_cpus", "pinning", "intercept_thermal", "intercept_icr_read"];

    /// <summary>The keys of <c>[workload]</c>.</summary>
    public static IReadOnlyList<string> WorkloadKeys { get; } = ["kind", "rounds", "duration_ns", "x2apic", "halt_idle"];

    /// <summary>The vendors <c>[machine] vendor</c> takes.</summary>
    public static IReadOnlyList<string> Vendors { get; } = ["intel", "amd"];

    /// <summary>Reads and loads the file at <paramref name="path"/>; an unreadable file is an error at 1:1.</summary>
    public static ConfigurationLoadResult Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ConfigurationLoadResult.Failure(new ConfigurationError(path, 1, 1, $"cannot read the file: {e.Message}"));
        }

        return Parse(text, path);
    }

    /// <summary>Loads the TOML <paramref name="text"/>; <paramref name="sourceName"/> names it in errors.</summary>
    public static ConfigurationLoadResult Parse(string text, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(sourceName);
        try
        {
            return ConfigurationLoadResult.Success(new Reader(sourceName).Read(text));
        }
        catch (ConfigurationException e)
        {
            return ConfigurationLoadResult.Failure(e.Error);
        }
    }

    /// <summary>The name in <paramref name="candidates"/> nearest to <paramref name="name"/> (edit distance, ignoring case), or null when none is close.</summary>
    public static string? Suggest(string name, IEnumerable<string> candidates)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(candidates);
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in candidates)
        {
            int distance = EditDistance(name.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }

        // Close enough to be a typo: at most a third of the longer name differs.
        return best is not null && bestDistance <= Math.Max(2, Math.Max(name.Length, best.Length) / 3) ? best : null;
    }

    /// <summary>
    /// The valid APIC timer frequency nearest to <paramref name="frequencyHz"/>: one that divides
    /// 10^9, so one bus cycle is a whole number of ns (as KVM_CAP_X86_APIC_BUS_CYCLES_NS); with
    /// <paramref name="wholeRoundPeriod"/> also one whose bus cycle divides the round period
    /// (<see cref="CompareWorkloadOptions.RoundPeriodNs"/>), as the timer workloads need. Ties go
    /// to the higher frequency.
    /// </summary>
    public static long NearestApicTimerFrequency(long frequencyHz, bool wholeRoundPeriod)
    {
        long best = MachineOptions.DefaultFrequencyHz;
        long bestDistance = long.MaxValue;

        // 10^9 = 2^9 × 5^9: its divisors are 2^a × 5^b.
        for (long twos = 1; twos <= 512; twos *= 2)
        {
            for (long cycleNs = twos; cycleNs <= MachineOptions.DefaultFrequencyHz && MachineOptions.DefaultFrequencyHz % cycleNs == 0; cycleNs *= 5)
            {
                if (wholeRoundPeriod && CompareWorkloadOptions.RoundPeriodNs % cycleNs != 0)
                {
                    continue;
                }

                long candidate = MachineOptions.DefaultFrequencyHz / cycleNs;
                if (candidate < MachineOptions.MinApicTimerFrequencyHz)
                {
                    continue;
                }

                long distance = Math.Abs(candidate - frequencyHz);
                if (distance < bestDistance || (distance == bestDistance && candidate > best))
                {
                    best = candidate;
                    bestDistance = distance;
                }
            }
        }

        return best;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    // Carries an error out of the nested checks; never escapes Parse.
    private sealed class ConfigurationException(ConfigurationError error) : Exception(error.Message)
    {
        public ConfigurationError Error { get; } = error;
    }

    private sealed class Reader(string sourceName)
    {
        private KeyValueSyntax? _x2ApicKey;
        private bool _x2Apic = true;
        private CompareWorkloadKind _workloadKind = CompareWorkloadKind.Mixed;

        // The vectors and IOAPIC pins of the devices read so far: the index of the device.
        private readonly Dictionary<byte, int> _deviceVectors = [];
        private readonly Dictionary<int, int> _devicePins = [];

        public MachineConfiguration Read(string text)
        {
            DocumentSyntax document = SyntaxParser.Parse(text, sourceName, validate: true);
            foreach (DiagnosticMessage diagnostic in document.Diagnostics)
            {
                if (diagnostic.Kind == DiagnosticMessageKind.Error)
                {
                    throw Fail(diagnostic.Span, diagnostic.Message);
                }
            }

            KeyValueSyntax? mode = null;
            foreach (KeyValueSyntax item in document.KeyValues)
            {
                string key = KeyOf(item);
                if (key == "mode")
                {
                    mode = item;
                }
                else if (Tables.Contains(key))
                {
                    throw Fail(item.Key!, $"'{key}' is a table: write it as [{key}]");
                }
                else if (key == "devices")
                {
                    throw Fail(item.Key!, "'devices' holds the device lists: write each device as a [[devices.msi]] or [[devices.ioapic]] table");
                }
                else
                {
                    throw Unknown(item.Key!, $"top-level key '{key}'", key, [.. TopLevelKeys, .. Tables]);
                }
            }

            var tables = new Dictionary<string, TableSyntax>(StringComparer.Ordinal);
            var deviceTables = new List<TableArraySyntax>();
            foreach (TableSyntaxBase table in document.Tables)
            {
                string name = table.Name is null ? string.Empty : NameOf(table.Name);
                SyntaxNode where = table.Name ?? (SyntaxNode)table;
                if (table is TableArraySyntax array)
                {
                    if (DeviceTables.Contains(name))
                    {
                        deviceTables.Add(array);
                        continue;
                    }

                    if (Tables.Contains(name))
                    {
                        throw Fail(where, $"[{name}] is one table, not an array of tables: write it as [{name}]");
                    }

                    throw Unknown(where, $"array of tables [[{name}]]", name, DeviceTables);
                }

                if (table is not TableSyntax plain)
                {
                    throw Fail(where, $"[{name}] is not part of the schema (tables: {string.Join(", ", Tables)})");
                }

                if (DeviceTables.Contains(name))
                {
                    throw Fail(where, $"devices are an array of tables: write [[{name}]], one per device");
                }

                if (name == "devices")
                {
                    throw Fail(where, "[devices] holds no keys: write each device as a [[devices.msi]] or [[devices.ioapic]] table");
                }

                if (!Tables.Contains(name))
                {
                    throw Unknown(where, $"table [{name}]", name, Tables);
                }

                tables[name] = plain;
            }

            if (mode is null)
            {
                throw new ConfigurationException(new ConfigurationError(sourceName, 1, 1,
                    $"the key 'mode' is required (modes: {string.Join(", ", ModeRegistry.Available)})"));
            }

            string modeName = StringOf(mode);
            if (!ModeRegistry.IsAvailable(modeName))
            {
                string? suggestion = Suggest(modeName, ModeRegistry.Available);
                throw Fail(mode.Value!, $"unknown mode '{modeName}'{DidYouMean(suggestion)} (modes: {string.Join(", ", ModeRegistry.Available)})");
            }

            // [workload] first: the machine checks depend on whether the guest uses x2APIC.
            CompareWorkloadOptions workload = ReadWorkload(tables.GetValueOrDefault("workload"));
            if (modeName == "savic" && !_x2Apic)
            {
                // Secure AVIC guests run x2APIC only: the xAPIC MMIO page is not accelerated and
                // the guest must use the x2APIC MSR interface (virtualization-reference, Secure AVIC).
                throw Fail(_x2ApicKey!.Value!, "mode 'savic' needs an x2APIC guest: Secure AVIC has no xAPIC interface; set x2apic = true or pick another mode");
            }

            (MachineOptions machine, KeyValueSyntax? vcpusKey) = ReadMachine(tables.GetValueOrDefault("machine"));
            if (machine.VcpuCount is < CompareWorkloadOptions.MinVcpus or > CompareWorkloadOptions.MaxVcpus)
            {
                SyntaxNode where = vcpusKey?.Value ?? (SyntaxNode?)tables.GetValueOrDefault("machine")?.Name ?? mode;
                throw Fail(where, $"vcpus must be between {CompareWorkloadOptions.MinVcpus} and {CompareWorkloadOptions.MaxVcpus} (the built-in workloads), not {machine.VcpuCount}");
            }

            workload = workload with { VcpuCount = machine.VcpuCount };
            CostModel cost = ReadCost(tables.GetValueOrDefault("cost"));
            PassthroughOptions? passthrough = null;
            if (tables.TryGetValue("passthrough", out TableSyntax? passthroughTable))
            {
                if (modeName != "passthrough")
                {
                    throw Fail(passthroughTable.Name!, $"[passthrough] configures the host of mode 'passthrough', but the mode is '{modeName}'");
                }

                passthrough = ReadPassthrough(passthroughTable, machine.VcpuCount);
            }
            else if (modeName == "passthrough")
            {
                passthrough = PassthroughOptions.Default;
            }

            if (deviceTables.Count != 0)
            {
                workload = workload with { Devices = ReadDevices(deviceTables, machine, workload.EffectiveDurationNs) };
            }

            // Everything was checked at its position; this catches what only the whole can break.
            string? error = (workload with { Machine = machine }).Validate();
            if (error is not null)
            {
                throw Fail(deviceTables.Count != 0 ? deviceTables[0].Name! : (SyntaxNode?)tables.GetValueOrDefault("machine")?.Name ?? mode, error);
            }

            return new MachineConfiguration(sourceName, machine, modeName, cost, passthrough, workload);
        }

        private CompareWorkloadOptions ReadWorkload(TableSyntax? table)
        {
            var options = new CompareWorkloadOptions { Workload = CompareWorkloadKind.Mixed };
            if (table is null)
            {
                return options;
            }

            KeyValueSyntax? rounds = null;
            KeyValueSyntax? duration = null;
            foreach (KeyValueSyntax item in Items(table, WorkloadKeys))
            {
                switch (KeyOf(item))
                {
                    case "kind":
                        string kind = StringOf(item);
                        if (!CompareWorkloads.TryParse(kind, out CompareWorkloadKind parsed))
                        {
                            throw Fail(item.Value!, $"unknown workload '{kind}'{DidYouMean(Suggest(kind, CompareWorkloads.Names))} (workloads: {string.Join(", ", CompareWorkloads.Names)})");
                        }

                        options = options with { Workload = parsed };
                        _workloadKind = parsed;
                        break;
                    case "rounds":
                        rounds = item;
                        options = options with { Rounds = (int)IntegerOf(item, 1, CompareWorkloadOptions.MaxRounds) };
                        break;
                    case "duration_ns":
                        duration = item;
                        options = options with { DurationNs = IntegerOf(item, CompareWorkloadOptions.RoundPeriodNs, CompareWorkloadOptions.MaxDurationNs) };
                        break;
                    case "x2apic":
                        _x2ApicKey = item;
                        _x2Apic = BooleanOf(item);
                        options = options with { UseX2Apic = _x2Apic };
                        break;
                    case "halt_idle":
                        options = options with { HaltIdle = BooleanOf(item) };
                        break;
                }
            }

            if (rounds is not null && duration is not null)
            {
                throw Fail(duration.Key!, "give either rounds or duration_ns, not both");
            }

            string? error = (options with { VcpuCount = CompareWorkloadOptions.MinVcpus }).Validate();
            if (error is not null)
            {
                throw Fail(table.Name!, error);
            }

            return options;
        }

        private (MachineOptions Machine, KeyValueSyntax? Vcpus) ReadMachine(TableSyntax? table)
        {
            var machine = new MachineOptions { VcpuCount = CompareWorkloadOptions.DefaultVcpus };
            if (table is null)
            {
                return (machine, null);
            }

            KeyValueSyntax? vcpus = null;
            KeyValueSyntax? apicIds = null;
            KeyValueSyntax? forceX2Apic = null;
            KeyValueSyntax? extendedDestination = null;
            foreach (KeyValueSyntax item in Items(table, MachineKeys))
            {
                switch (KeyOf(item))
                {
                    case "vcpus":
                        vcpus = item;
                        machine = machine with { VcpuCount = (int)IntegerOf(item, long.MinValue, long.MaxValue, allowAnyInt: true) };
                        break;
                    case "apic_ids":
                        apicIds = item;
                        break;
                    case "force_x2apic":
                        forceX2Apic = item;
                        machine = machine with { ForceX2Apic = BooleanOf(item) };
                        break;
                    case "ioapic_version":
                        long version = IntegerOf(item, 0, 0xFF);
                        if (version is not (0x11 or 0x20))
                        {
                            throw Fail(item.Value!, $"ioapic_version must be 0x11 or 0x20 (82093AA / ICH with EOI register), not 0x{version:x}");
                        }

                        machine = machine with { IoApicVersion = (byte)version };
                        break;
                    case "vendor":
                        string vendor = StringOf(item);
                        machine = vendor switch
                        {
                            "intel" => machine with { CpuVendor = CpuVendor.Intel },
                            "amd" => machine with { CpuVendor = CpuVendor.Amd },
                            _ => throw Fail(item.Value!, $"unknown vendor '{vendor}'{DidYouMean(Suggest(vendor, Vendors))} (vendors: intel, amd)"),
                        };
                        break;
                    case "tsc_offset":
                        machine = machine with { TscOffset = IntegerOf(item, long.MinValue, long.MaxValue) };
                        break;
                    case "extended_destination_id":
                        extendedDestination = item;
                        machine = machine with { ExtendedDestinationId = BooleanOf(item) };
                        break;
                    case "max_physical_address_bits":
                        machine = machine with { MaxPhysicalAddressBits = (int)IntegerOf(item, 36, 52) };
                        break;
                    case "tsc_frequency_hz":
                        long tsc = IntegerOf(item, long.MinValue, long.MaxValue);
                        if (tsc is < MachineOptions.MinTscFrequencyHz or > MachineOptions.MaxTscFrequencyHz)
                        {
                            long nearest = Math.Clamp(tsc, MachineOptions.MinTscFrequencyHz, MachineOptions.MaxTscFrequencyHz);
                            throw Fail(item.Value!, $"tsc_frequency_hz must be between {MachineOptions.MinTscFrequencyHz} (1 MHz) and {MachineOptions.MaxTscFrequencyHz} (100 GHz), not {tsc}; did you mean {nearest}?");
                        }

                        machine = machine with { TscFrequencyHz = tsc };
                        break;
                    case "apic_timer_frequency_hz":
                        machine = machine with { ApicTimerFrequencyHz = ApicTimerFrequencyOf(item) };
                        break;
                }
            }

            if (vcpus is not null && machine.VcpuCount is < 1 or > MachineOptions.MaxVcpus)
            {
                throw Fail(vcpus.Value!, $"vcpus must be between 1 and {MachineOptions.MaxVcpus}, not {machine.VcpuCount}");
            }

            if (forceX2Apic is not null && machine.ForceX2Apic && !_x2Apic)
            {
                throw Fail(_x2ApicKey!.Value!, "a locked-x2APIC machine (force_x2apic = true) cannot run an xAPIC guest: set x2apic = true");
            }

            if (apicIds is not null)
            {
                machine = machine with { ApicIds = ReadApicIds(apicIds, machine.VcpuCount) };
            }

            if (!machine.ExtendedDestinationId && _workloadKind is CompareWorkloadKind.Device or CompareWorkloadKind.Mixed)
            {
                for (int i = 0; i < machine.VcpuCount; i++)
                {
                    if (machine.ApicIdOf(i) > 0xFF)
                    {
                        // The built-in MSIs go to every vCPU (and mixed's IOAPIC line to the last): an
                        // ID above 0xFF needs destination bits 14:8, which only the extended
                        // destination ID carries (lapic-reference §12).
                        throw Fail(extendedDestination!.Value!,
                            $"the {CompareWorkloads.NameOf(_workloadKind)} workload sends device interrupts to every vCPU, but vCPU {i} has APIC ID 0x{machine.ApicIdOf(i):X}, which a device reaches only with extended_destination_id = true");
                    }
                }
            }

            string? error = machine.Validate();
            if (error is not null)
            {
                throw Fail(table.Name!, error);
            }

            return (machine, vcpus);
        }

        // One bus cycle must be a whole number of ns (the frequency divides 10^9, as KVM's
        // KVM_CAP_X86_APIC_BUS_CYCLES_NS); the timer workloads also need the round period to be a
        // whole number of bus cycles, since they program TMICT = round period / bus cycle.
        private long ApicTimerFrequencyOf(KeyValueSyntax item)
        {
            long hz = IntegerOf(item, long.MinValue, long.MaxValue);
            bool timers = _workloadKind is CompareWorkloadKind.Timer or CompareWorkloadKind.Mixed;
            long nearest = NearestApicTimerFrequency(hz, timers);
            string suggestion = $"; did you mean {nearest} ({MachineOptions.DefaultFrequencyHz / nearest} ns)?";
            if (hz is < MachineOptions.MinApicTimerFrequencyHz or > MachineOptions.DefaultFrequencyHz)
            {
                throw Fail(item.Value!, $"apic_timer_frequency_hz must be between {MachineOptions.MinApicTimerFrequencyHz} (1 kHz) and {MachineOptions.DefaultFrequencyHz} (1 GHz), not {hz}{suggestion}");
            }

            if (MachineOptions.DefaultFrequencyHz % hz != 0)
            {
                throw Fail(item.Value!, $"apic_timer_frequency_hz must divide {MachineOptions.DefaultFrequencyHz} (1 GHz), so that one APIC bus cycle is a whole number of ns, not {hz}{suggestion}");
            }

            long cycleNs = MachineOptions.DefaultFrequencyHz / hz;
            if (timers && CompareWorkloadOptions.RoundPeriodNs % cycleNs != 0)
            {
                throw Fail(item.Value!, $"the {CompareWorkloads.NameOf(_workloadKind)} workload programs its timers for the round period ({CompareWorkloadOptions.RoundPeriodNs} ns), which must be a whole number of APIC bus cycles, but {hz} Hz makes {cycleNs} ns cycles{suggestion}");
            }

            return hz;
        }

        private List<DeviceSource> ReadDevices(List<TableArraySyntax> tables, MachineOptions machine, long durationNs)
        {
            var devices = new List<DeviceSource>(tables.Count);
            long firings = 0;
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            int msis = 0;
            int ioApics = 0;
            foreach (TableArraySyntax table in tables)
            {
                string tableName = NameOf(table.Name!);
                DeviceSourceKind kind = tableName == "devices.msi" ? DeviceSourceKind.Msi : DeviceSourceKind.IoApic;
                int index = kind == DeviceSourceKind.Msi ? msis++ : ioApics++;
                DeviceSource device = ReadDevice(table, kind, DeviceSource.DefaultName(kind, index), machine, out DeviceKeys keys);
                SyntaxNode nameAt = (SyntaxNode?)keys.Name?.Value ?? table.Name!;
                if (names.TryGetValue(device.Name, out int sameName))
                {
                    throw Fail(nameAt, $"device name '{device.Name}' is already used by the [[devices.{devices[sameName].KindName}]] at line {Line(tables[sameName])}: names must be unique");
                }

                if (!device.IsNmi)
                {
                    if (_deviceVectors.TryGetValue(device.Vector, out int sameVector))
                    {
                        throw Fail(keys.Vector!.Value!, $"vector 0x{device.Vector:X2} is already device '{devices[sameVector].Name}''s: two devices cannot share a vector{SuggestVector(device.Vector)}");
                    }

                    _deviceVectors.Add(device.Vector, devices.Count);
                }

                if (kind == DeviceSourceKind.IoApic)
                {
                    if (_devicePins.TryGetValue(device.Pin, out int samePin))
                    {
                        throw Fail(keys.Pin!.Value!, $"pin {device.Pin} is already device '{devices[samePin].Name}''s: one device per IOAPIC pin{SuggestPin(device.Pin)}");
                    }

                    _devicePins.Add(device.Pin, devices.Count);
                }

                firings += device.FiringsWithin(durationNs);
                if (firings > CompareWorkloadOptions.MaxDeviceFirings)
                {
                    throw Fail(keys.Period?.Value ?? (SyntaxNode)table.Name!,
                        $"the devices fire {firings} times in the run's {durationNs} ns with this one, more than the {CompareWorkloadOptions.MaxDeviceFirings} a run allows: lengthen period_ns, set count or shorten the run");
                }

                names.Add(device.Name, devices.Count);
                devices.Add(device);
            }

            return devices;
        }

        // The keys a device table gave, for the positions of errors found across devices.
        private sealed record DeviceKeys(KeyValueSyntax? Name, KeyValueSyntax? Vector, KeyValueSyntax? Pin, KeyValueSyntax? Period);

        private DeviceSource ReadDevice(TableArraySyntax table, DeviceSourceKind kind, string defaultName, MachineOptions machine, out DeviceKeys keys)
        {
            bool msi = kind == DeviceSourceKind.Msi;
            string header = msi ? "[[devices.msi]]" : "[[devices.ioapic]]";
            var device = new DeviceSource { Name = defaultName, Kind = kind };
            KeyValueSyntax? nameKey = null;
            KeyValueSyntax? vectorKey = null;
            KeyValueSyntax? targetKey = null;
            KeyValueSyntax? periodKey = null;
            KeyValueSyntax? triggerKey = null;
            KeyValueSyntax? pinKey = null;
            foreach (KeyValueSyntax item in Items(table, msi ? MsiDeviceKeys : IoApicDeviceKeys))
            {
                switch (KeyOf(item))
                {
                    case "name":
                        nameKey = item;
                        string name = StringOf(item);
                        if (name.Length == 0)
                        {
                            throw Fail(item.Value!, "name must not be empty");
                        }

                        device = device with { Name = name };
                        break;
                    case "vector":
                        vectorKey = item;
                        long vector = IntegerOf(item, long.MinValue, long.MaxValue);
                        if (DeviceSource.VectorError(vector) is string vectorError)
                        {
                            throw Fail(item.Value!, vectorError + (vector is >= DeviceSource.MinVector and <= DeviceSource.MaxVector ? SuggestVector((byte)vector) : string.Empty));
                        }

                        device = device with { Vector = (byte)vector };
                        break;
                    case "target":
                        targetKey = item;
                        long target = IntegerOf(item, long.MinValue, long.MaxValue);
                        if (target < 0 || target >= machine.VcpuCount)
                        {
                            throw Fail(item.Value!, $"target must be a vCPU index, 0 to {machine.VcpuCount - 1} (the machine has {machine.VcpuCount} vCPUs), not {target}");
                        }

                        device = device with { Target = (int)target };
                        break;
                    case "delivery":
                        string delivery = StringOf(item);
                        device = delivery switch
                        {
                            "fixed" => device with { Delivery = DeliveryMode.Fixed },
                            "lowest-priority" => device with { Delivery = DeliveryMode.LowestPriority },
                            "nmi" => device with { Delivery = DeliveryMode.Nmi },
                            _ => throw Fail(item.Value!, $"unknown delivery '{delivery}'{DidYouMean(Suggest(delivery, DeviceSource.DeliveryNames))} (deliveries: {string.Join(", ", DeviceSource.DeliveryNames)})"),
                        };
                        break;
                    case "period_ns":
                        periodKey = item;
                        device = device with { PeriodNs = IntegerOf(item, 1, CompareWorkloadOptions.MaxDurationNs) };
                        break;
                    case "start_ns":
                        long start = IntegerOf(item, long.MinValue, long.MaxValue);
                        if (start < 1)
                        {
                            throw Fail(item.Value!, $"start_ns must be at least 1, not {start}: setup ends at time 0 and devices fire in the measured phase (0, duration]");
                        }

                        if (start > CompareWorkloadOptions.MaxDurationNs)
                        {
                            throw Fail(item.Value!, $"start_ns must be between 1 and {CompareWorkloadOptions.MaxDurationNs}, not {start}");
                        }

                        device = device with { StartNs = start };
                        break;
                    case "count":
                        device = device with { Count = IntegerOf(item, 1, long.MaxValue) };
                        break;
                    case "trigger":
                        triggerKey = item;
                        string trigger = StringOf(item);
                        if (msi && trigger == "level")
                        {
                            throw Fail(item.Value!, "level-triggered MSIs are not modeled: PCI MSI is edge-triggered only (PCI Local Bus Specification, \"Message Signaled Interrupts\"); use trigger = \"edge\" or a [[devices.ioapic]] level line");
                        }

                        string[] triggers = msi ? ["edge"] : ["edge", "level"];
                        if (!triggers.Contains(trigger))
                        {
                            throw Fail(item.Value!, $"unknown trigger '{trigger}'{DidYouMean(Suggest(trigger, triggers))} (triggers: {string.Join(", ", triggers)})");
                        }

                        device = device with { LevelTriggered = trigger == "level" };
                        break;
                    case "pin":
                        pinKey = item;
                        long pin = IntegerOf(item, 0, IoApic.DefaultPinCount - 1);
                        if (pin == CompareWorkload.LevelGsi && _workloadKind == CompareWorkloadKind.Mixed)
                        {
                            throw Fail(item.Value!, $"pin {pin} is the mixed workload's level-triggered line (GSI {CompareWorkload.LevelGsi}){SuggestPin((int)pin)}");
                        }

                        device = device with { Pin = (int)pin };
                        break;
                    case "polarity":
                        string polarity = StringOf(item);
                        device = polarity switch
                        {
                            "high" => device with { ActiveLow = false },
                            "low" => device with { ActiveLow = true },
                            _ => throw Fail(item.Value!, $"unknown polarity '{polarity}'{DidYouMean(Suggest(polarity, ["high", "low"]))} (polarities: high, low)"),
                        };
                        break;
                }
            }

            string which = $"{header} '{device.Name}'";
            if (periodKey is null)
            {
                throw Fail(table.Name!, $"{which} needs period_ns, the time between its firings in ns");
            }

            if (targetKey is null)
            {
                throw Fail(table.Name!, $"{which} needs a target, the index of the vCPU it interrupts (0 to {machine.VcpuCount - 1})");
            }

            if (!msi && pinKey is null)
            {
                throw Fail(table.Name!, $"{which} needs a pin, its IOAPIC input (0 to {IoApic.DefaultPinCount - 1})");
            }

            if (device.IsNmi)
            {
                if (vectorKey is not null)
                {
                    throw Fail(vectorKey.Key!, "an NMI has no vector (NMI delivery ignores the vector field): remove vector or use delivery = \"fixed\"");
                }

                if (device.LevelTriggered)
                {
                    // 82093AA datasheet, delivery mode NMI: treated as edge even if programmed
                    // level, and the entry must be programmed edge-triggered.
                    throw Fail(triggerKey!.Value!, "an IOAPIC entry with NMI delivery must be edge-triggered (82093AA: NMI is always an edge)");
                }
            }
            else if (vectorKey is null)
            {
                throw Fail(table.Name!, $"{which} needs a vector, 0x{DeviceSource.MinVector:X2} to 0x{DeviceSource.MaxVector:X2}");
            }

            uint apicId = machine.ApicIdOf(device.Target);
            if (apicId > 0xFF && !machine.ExtendedDestinationId)
            {
                // MSI address bits 19:12 and RTE bits 63:56 carry 8 destination bits; higher IDs need
                // the extended destination ID (lapic-reference §12).
                throw Fail(targetKey.Value!, $"vCPU {device.Target} has APIC ID 0x{apicId:X}, which a device reaches only through the extended destination ID, but [machine] extended_destination_id = false");
            }

            keys = new DeviceKeys(nameKey, vectorKey, pinKey, periodKey);
            return device;
        }

        // "; did you mean 0x..?": the free vector nearest to vector (not built-in, not another device's).
        private string SuggestVector(byte vector)
        {
            for (int distance = 1; distance <= DeviceSource.MaxVector - DeviceSource.MinVector; distance++)
            {
                foreach (int candidate in (ReadOnlySpan<int>)[vector + distance, vector - distance])
                {
                    if (candidate is >= DeviceSource.MinVector and <= DeviceSource.MaxVector &&
                        DeviceSource.VectorError(candidate) is null &&
                        !_deviceVectors.ContainsKey((byte)candidate))
                    {
                        return $"; did you mean 0x{candidate:X2}?";
                    }
                }
            }

            return string.Empty;
        }

        // "; did you mean N?": the free IOAPIC pin nearest to pin.
        private string SuggestPin(int pin)
        {
            for (int distance = 1; distance < IoApic.DefaultPinCount; distance++)
            {
                foreach (int candidate in (ReadOnlySpan<int>)[pin + distance, pin - distance])
                {
                    if (candidate is >= 0 and < IoApic.DefaultPinCount &&
                        !(candidate == CompareWorkload.LevelGsi && _workloadKind == CompareWorkloadKind.Mixed) &&
                        !_devicePins.ContainsKey(candidate))
                    {
                        return $"; did you mean {candidate}?";
                    }
                }
            }

            return string.Empty;
        }

        private static int Line(SyntaxNode node) => node.Span.Start.Line + 1;

        private uint[] ReadApicIds(KeyValueSyntax item, int vcpuCount)
        {
            if (item.Value is not ArraySyntax array)
            {
                throw WrongType(item, "an array of integers");
            }

            var ids = new List<uint>();
            var seen = new Dictionary<uint, int>();
            foreach (ArrayItemSyntax element in array.Items)
            {
                if (element.Value is not IntegerValueSyntax integer)
                {
                    throw Fail(element.Value ?? (SyntaxNode)element, "APIC IDs must be integers");
                }

                if (integer.Value is < 0 or > MachineOptions.MaxApicId)
                {
                    throw Fail(integer, $"APIC ID {integer.Value} is out of range: 0 to 0x{MachineOptions.MaxApicId:X} (0xFFFFFFFF is the x2APIC broadcast address)");
                }

                uint id = (uint)integer.Value;
                if (seen.TryGetValue(id, out int first))
                {
                    throw Fail(integer, $"APIC ID 0x{id:X} is given to vCPU {first} and to vCPU {ids.Count}: APIC IDs must be unique");
                }

                if (id > 0x7FFF)
                {
                    // The workload's devices (MSI, IOAPIC) reach 15-bit destinations at most
                    // (extended destination ID, lapic-reference §12).
                    throw Fail(integer, $"APIC ID 0x{id:X} is above 0x7FFF, the highest destination an MSI or IOAPIC entry can address");
                }

                if (id > 0xFE && !_x2Apic)
                {
                    // xAPIC destinations are 8 bits and 0xFF is the broadcast: an xAPIC guest cannot
                    // address an ID above 0xFE (SDM "Local APIC ID"; firmware must leave x2APIC on).
                    throw Fail(integer, $"APIC ID 0x{id:X} needs x2APIC (an xAPIC guest addresses IDs 0 to 0xFE only), but [workload] x2apic = false");
                }

                seen.Add(id, ids.Count);
                ids.Add(id);
            }

            if (ids.Count != vcpuCount)
            {
                throw Fail(array, $"{ids.Count} APIC IDs given for {vcpuCount} vCPUs: give one per vCPU");
            }

            return [.. ids];
        }

        private CostModel ReadCost(TableSyntax? table)
        {
            CostModel model = CostModel.Default;
            if (table is null)
            {
                return model;
            }

            foreach (KeyValueSyntax item in Items(table, CostModel.FigureNames))
            {
                string key = KeyOf(item);
                string? error = null;
                model = model.WithOverride(key, IntegerOf(item, 0, long.MaxValue), out error)
                    ?? throw Fail(item.Key!, error ?? $"bad cost figure '{key}'");
            }

            return model;
        }

        private PassthroughOptions ReadPassthrough(TableSyntax table, int vcpuCount)
        {
            var options = new PassthroughOptions();
            KeyValueSyntax? pinning = null;
            foreach (KeyValueSyntax item in Items(table, PassthroughKeys))
            {
                switch (KeyOf(item))
                {
                    case "host_cpus":
                        options = options with { HostCpuCount = (int)IntegerOf(item, 1, PassthroughOptions.MaxHostCpus) };
                        break;
                    case "pinning":
                        pinning = item;
                        if (item.Value is not ArraySyntax array)
                        {
                            throw WrongType(item, "an array of integers");
                        }

                        var pcpus = new List<int>();
                        foreach (ArrayItemSyntax element in array.Items)
                        {
                            if (element.Value is not IntegerValueSyntax integer || integer.Value is < 0 or >= PassthroughOptions.MaxHostCpus)
                            {
                                throw Fail(element.Value ?? (SyntaxNode)element, $"pCPU numbers must be integers from 0 to {PassthroughOptions.MaxHostCpus - 1}");
                            }

                            pcpus.Add((int)integer.Value);
                        }

                        options = options with { Pinning = pcpus };
                        break;
                    case "intercept_thermal":
                        options = options with { InterceptThermal = BooleanOf(item) };
                        break;
                    case "intercept_icr_read":
                        options = options with { InterceptIcrRead = BooleanOf(item) };
                        break;
                }
            }

            string? error = options.Validate(vcpuCount);
            if (error is not null)
            {
                throw Fail((SyntaxNode?)pinning?.Value ?? table.Name!, error);
            }

            return options;
        }

        // The key-value pairs of a table, each key checked against the schema.
        private List<KeyValueSyntax> Items(TableSyntaxBase table, IReadOnlyList<string> keys)
        {
            string name = table.Name is null ? string.Empty : NameOf(table.Name);
            if (table is TableArraySyntax)
            {
                name = $"[{name}]";
            }

            var items = new List<KeyValueSyntax>();
            foreach (KeyValueSyntax item in table.Items)
            {
                string key = KeyOf(item);
                if (!keys.Contains(key))
                {
                    throw Unknown(item.Key!, $"key '{key}' in [{name}]", key, keys);
                }

                items.Add(item);
            }

            return items;
        }

        private string KeyOf(KeyValueSyntax item)
        {
            KeySyntax key = item.Key!;
            if (key.DotKeys.ChildrenCount != 0)
            {
                throw Fail(key, $"dotted key '{NameOf(key)}': write the table as a [table] and the key inside it");
            }

            return NameOf(key);
        }

        private static string NameOf(KeySyntax key)
        {
            string name = key.Key switch
            {
                BareKeySyntax bare => bare.Key?.Text ?? string.Empty,
                StringValueSyntax quoted => quoted.Value ?? string.Empty,
                _ => string.Empty,
            };
            foreach (DottedKeyItemSyntax dotted in key.DotKeys)
            {
                name += "." + dotted.Key switch
                {
                    BareKeySyntax bare => bare.Key?.Text ?? string.Empty,
                    StringValueSyntax quoted => quoted.Value ?? string.Empty,
                    _ => string.Empty,
                };
            }

            return name;
        }

        private string StringOf(KeyValueSyntax item) =>
            item.Value is StringValueSyntax text ? text.Value ?? string.Empty : throw WrongType(item, "a string");

        private bool BooleanOf(KeyValueSyntax item) =>
            item.Value is BooleanValueSyntax boolean ? boolean.Value : throw WrongType(item, "a boolean (true or false)");

        private long IntegerOf(KeyValueSyntax item, long min, long max, bool allowAnyInt = false)
        {
            if (item.Value is not IntegerValueSyntax integer)
            {
                throw WrongType(item, "an integer");
            }

            long value = integer.Value;
            if (allowAnyInt)
            {
                return value is < int.MinValue or > int.MaxValue ? (value < 0 ? int.MinValue : int.MaxValue) : value;
            }

            if (value < min || value > max)
            {
                throw Fail(integer, $"{KeyOf(item)} must be between {min} and {max}, not {value}");
            }

            return value;
        }

        private ConfigurationException WrongType(KeyValueSyntax item, string expected) =>
            Fail(item.Value ?? (SyntaxNode)item, $"{KeyOf(item)} must be {expected}, not {Describe(item.Value)}");

        private static string Describe(ValueSyntax? value) => value switch
        {
            StringValueSyntax => "a string",
            IntegerValueSyntax => "an integer",
            FloatValueSyntax => "a float",
            BooleanValueSyntax => "a boolean",
            ArraySyntax => "an array",
            InlineTableSyntax => "a table",
            DateTimeValueSyntax => "a date-time",
            _ => "nothing",
        };

        private ConfigurationException Unknown(SyntaxNode where, string what, string name, IEnumerable<string> valid) =>
            Fail(where, $"unknown {what}{DidYouMean(Suggest(name, valid))} (valid: {string.Join(", ", valid)})");

        private static string DidYouMean(string? suggestion) => suggestion is null ? string.Empty : $"; did you mean '{suggestion}'?";

        private ConfigurationException Fail(SyntaxNode node, string message) => Fail(node.Span, message);

        // Tomlyn's positions are zero-based; errors are one-based like compilers'.
        private ConfigurationException Fail(SourceSpan span, string message) =>
            new(new ConfigurationError(sourceName, span.Start.Line + 1, span.Start.Column + 1, message));
    }
}
