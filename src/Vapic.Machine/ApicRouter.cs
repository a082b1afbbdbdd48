using Vapic.Apic;

namespace Vapic.Machine;

/// <summary>
/// Routes interrupt messages (IPIs, IOAPIC entries, MSIs) to local APICs, in the manner of KVM's
/// APIC map: a physical destination is one array index, logical destinations (xAPIC flat, xAPIC
/// cluster, x2APIC cluster) come from tables that are rebuilt only after an APIC's mode, ID, LDR
/// or DFR changed, and a delivery never allocates.
/// </summary>
/// <remarks>
/// Matching follows SDM "Determining IPI Destination" with the project's adopted choices
/// (lapic-reference §10, A19-A22): an xAPIC-mode target compares 8-bit destinations and treats
/// 0xFF as broadcast in both destination modes; an x2APIC-mode target compares 32-bit
/// destinations and treats 0xFFFF_FFFF as broadcast; an 8-bit 0xFF is not a broadcast for an
/// x2APIC-mode target. Lowest priority arbitrates by vector hashing: the (vector mod n)-th of the n
/// enabled candidates in vCPU order.
/// </remarks>
internal sealed class ApicRouter
{
    private const int DirectIdTableLimit = 1 << 16;

    private readonly Vcpu[] _vcpus;
    private readonly LocalApic[] _apics;
    private readonly MachineCounters _counters;
    private readonly IInterruptVirtualization? _virtualization;
    private readonly int[] _scratch;
    private readonly int[] _stamp;
    private int _generation;
    private bool _dirty = true;

    // Physical xAPIC: the first vCPU whose 8-bit ID is the index, chained through _nextXApic
    // (xAPIC IDs are writable and may alias; every alias accepts, lapic-reference A1).
    private readonly int[] _xapicById = new int[256];
    private readonly int[] _nextXApic;

    // Physical x2APIC: x2APIC IDs are read-only and unique.
    private int[] _x2apicById = [];
    private Dictionary<uint, int>? _x2apicSparse;

    private int[] _xapicMembers = [];   // every vCPU in xAPIC mode, ascending
    private int[] _x2apicMembers = [];  // every vCPU in x2APIC mode, ascending

    // The LAPICs of every vCPU, of _xapicMembers and of _x2apicMembers, for fixed broadcasts.
    private readonly LocalApic.BroadcastGroup _allApics;
    private LocalApic.BroadcastGroup _xapicGroup = new([]);
    private LocalApic.BroadcastGroup _x2apicGroup = new([]);

    // Logical xAPIC: flat model, per LDR bit; cluster model, per (cluster 0..15, member bit 0..3).
    private readonly int[][] _flat = new int[8][];
    private readonly int[][] _cluster = new int[64][];

    // Logical x2APIC: cluster (LDR[31:16]) to the first vCPU of each of the 16 member bits, or
    // -1, chained through _nextX2ApicLogical. The derived LDR keeps only ID bits 19:0, so IDs
    // that differ above bit 19 share an LDR and all of them match.
    private readonly Dictionary<uint, int[]> _x2apicClusters = [];
    private readonly int[] _nextX2ApicLogical;

    public ApicRouter(Vcpu[] vcpus, MachineCounters counters, IInterruptVirtualization? virtualization)
    {
        _vcpus = vcpus;
        _apics = new LocalApic[vcpus.Length];
        for (int i = 0; i < vcpus.Length; i++)
        {
            _apics[i] = vcpus[i].Apic;
        }

        _allApics = new LocalApic.BroadcastGroup(_apics);
        _counters = counters;
        _virtualization = virtualization;
        _scratch = new int[vcpus.Length];
        _stamp = new int[vcpus.Length];
        _nextXApic = new int[vcpus.Length];
        _nextX2ApicLogical = new int[vcpus.Length];
    }


    /// <summary>Marks the tables stale; they are rebuilt before the next delivery.</summary>
    public void Invalidate() => _dirty = true;

    /// <summary>The number of times the tables were rebuilt.</summary>
    public long Rebuilds { get; private set; }

    /// <summary>
    /// Delivers <paramref name="message"/>. Returns the number of LAPICs that accepted it, or -1
    /// when no LAPIC matched its destination.
    /// </summary>
    public int Deliver(in InterruptMessage message)
    {
        if (_dirty)
        {
            Rebuild();
        }

        if (message.DeliveryMode == DeliveryMode.Init && !message.Assert)
        {
            // INIT level de-assert: only Pentium/P6 acted on it (lapic-reference §4).
            _counters.InitDeassertsIgnored++;
            return -1;
        }

        if (_virtualization is null && TryDeliverFixedBroadcast(in message, out int broadcastResult))
        {
            return broadcastResult;
        }

        int count = CollectTargets(in message);
        if (count == 0)
        {
            _counters.NoDestination++;

            return -1;
        }

        if (message.IsLowestPriority &&
            !(message.Shorthand == DestinationShorthand.None &&
              message.DestinationMode == DestinationMode.Physical &&
              message.Destination == InterruptMessage.XApicBroadcast))
        {
            return DeliverLowestPriority(in message, count);
        }

        // Physical 0xFF with lowest priority (or RH) is delivered as a fixed broadcast (KVM).
        DeliveryMode mode = message.DeliveryMode == DeliveryMode.LowestPriority ? DeliveryMode.Fixed : message.DeliveryMode;
        int accepted = 0;
        if (mode == DeliveryMode.Fixed && _virtualization is null)
        {
            // Fixed without a mode attached (broadcasts went to a BroadcastGroup above) walks
            // the LAPICs directly: no per-target delivery-mode dispatch, one array load per target.
            LocalApic[] apics = _apics;
            int[] scratch = _scratch;
            byte vector = message.Vector;
            bool level = message.LevelTriggered;
            for (int i = 0; i < count; i++)
            {
                if (apics[scratch[i]].AcceptInterrupt(DeliveryMode.Fixed, vector, level))
                {
                    accepted++;
                }
            }

            return accepted;
        }

        for (int i = 0; i < count; i++)
        {
            if (AcceptAt(_vcpus[_scratch[i]], mode, in message))
            {
                accepted++;
            }
        }

        return accepted;
    }

    /// <summary>
    /// Delivers a fixed message to every member of a destination set the router keeps as a
    /// <see cref="LocalApic.BroadcastGroup"/>: the shorthands "all including self" and "all
    /// excluding self", and the physical broadcasts 0xFFFF_FFFF (every x2APIC-mode LAPIC) and 0xFF
    /// (every xAPIC-mode LAPIC, and the x2APIC-mode LAPIC whose ID is 0xFF, as
    /// <see cref="CollectTargets"/> has it). The group accepts at its members in one loop, without
    /// the index list and the per-target mode dispatch (a broadcast reaches up to 4,096 LAPICs).
    /// Returns false, delivering nothing, for every other message.
    /// </summary>
    private bool TryDeliverFixedBroadcast(in InterruptMessage message, out int result)
    {
        byte vector = message.Vector;
        bool level = message.LevelTriggered;
        switch (message.Shorthand)
        {
            case DestinationShorthand.AllIncludingSelf when IsPlainFixed(in message):
                result = _allApics.AcceptFixed(0, _allApics.Count, vector, level);
                return true;
            case DestinationShorthand.AllExcludingSelf when IsPlainFixed(in message):
                int self = message.SourceVcpu;
                int n = _allApics.Count;
                if ((uint)self >= (uint)n)
                {
                    result = _allApics.AcceptFixed(0, n, vector, level);
                }
                else if (n == 1)
                {
                    result = NoDestination();
                }
                else
                {
                    result = _allApics.AcceptFixed(0, self, vector, level) +
                        _allApics.AcceptFixed(self + 1, n - self - 1, vector, level);
                }

                return true;
            case DestinationShorthand.None when message.DestinationMode == DestinationMode.Physical:
                if (message.Destination == InterruptMessage.X2ApicBroadcast && IsPlainFixed(in message))
                {
                    result = _x2apicGroup.Count == 0
                        ? NoDestination()
                        : _x2apicGroup.AcceptFixed(0, _x2apicGroup.Count, vector, level);
                    return true;
                }

                // Physical 0xFF is a fixed broadcast to the xAPIC-mode LAPICs even when the message
                // asks for lowest priority or has RH = 1 (lapic-reference §10, KVM); an x2APIC-mode
                // LAPIC reads it as its own physical ID 0xFF (A22).
                if (message.Destination == InterruptMessage.XApicBroadcast &&
                    message.DeliveryMode is DeliveryMode.Fixed or DeliveryMode.LowestPriority)
                {
                    int v = FindX2Apic(InterruptMessage.XApicBroadcast);
                    if (_xapicGroup.Count == 0 && v < 0)
                    {
                        result = NoDestination();
                        return true;
                    }

                    result = _xapicGroup.AcceptFixed(0, _xapicGroup.Count, vector, level);
                    if (v >= 0)
                    {
                        result += _allApics.AcceptFixed(v, 1, vector, level);
                    }

                    return true;
                }

                break;
        }

        result = 0;
        return false;
    }

    private int NoDestination()
    {
        _counters.NoDestination++;
        return -1;
    }

    private static bool IsPlainFixed(in InterruptMessage message) =>
        message.DeliveryMode == DeliveryMode.Fixed && !message.RedirectionHint;

    private int DeliverLowestPriority(in InterruptMessage message, int count)
    {
        int enabled = 0;
        for (int i = 0; i < count; i++)
        {
            int v = _scratch[i];
            LocalApic apic = _vcpus[v].Apic;
            if (apic.Mode != ApicMode.Disabled && apic.SoftwareEnabled)
            {
                _scratch[enabled++] = v;
            }
        }

        if (enabled == 0)
        {
            _counters.LowestPriorityNoCandidate++;

            return 0;
        }

        Span<int> candidates = _scratch.AsSpan(0, enabled);
        candidates.Sort();
        int winner = candidates[message.Vector % enabled];

        // Arbitration is over fixed-class delivery: an RH message with another delivery mode
        // (KVM treats RH as "lowest priority") keeps its own mode at the winner.
        DeliveryMode mode = message.DeliveryMode == DeliveryMode.LowestPriority ? DeliveryMode.Fixed : message.DeliveryMode;
        return AcceptAt(_vcpus[winner], mode, in message) ? 1 : 0;
    }

    private bool AcceptAt(Vcpu vcpu, DeliveryMode mode, in InterruptMessage message)
    {
        switch (mode)
        {
            case DeliveryMode.StartUp:
                if (message.Source != InterruptSource.Ipi && message.Source != InterruptSource.External)
                {
                    _counters.ReservedModeDropped++;
                    return false;
                }

                if (!vcpu.WillRecognizeStartup)
                {
                    // A SIPI to a CPU that does not wait for one is discarded (lapic-reference §4).
                    _counters.StartupsDiscarded++;
                    return false;
                }

                break;
            case DeliveryMode.ExtInt:
                if (message.Source == InterruptSource.Ipi)
                {
                    // ICR delivery mode 111 is reserved: ExtINT is not an IPI.
                    _counters.ReservedModeDropped++;
                    return false;
                }

                break;
            case DeliveryMode.Reserved3:
                _counters.ReservedModeDropped++;
                return false;
        }

        if (_virtualization is null)
        {
            return vcpu.Apic.AcceptInterrupt(mode, message.Vector, message.LevelTriggered);
        }

        if (mode is DeliveryMode.Fixed or DeliveryMode.LowestPriority)
        {
            return _virtualization.DeliverFixed(vcpu, message.Vector, message.LevelTriggered, in message);
        }

        if (!_virtualization.AllowEvent(vcpu, mode, in message))
        {
            // The mode's hardware refuses the injection (Secure AVIC without the NMI allowance):
            // nothing is latched; the mode counts it.
            return false;
        }

        bool accepted = vcpu.Apic.AcceptInterrupt(mode, message.Vector, message.LevelTriggered);
        if (accepted)
        {
            _virtualization.OnEventLatched(vcpu, mode, in message);
        }

        return accepted;
    }

    private int CollectTargets(in InterruptMessage message)
    {
        int n = 0;
        switch (message.Shorthand)
        {
            case DestinationShorthand.Self:
                if ((uint)message.SourceVcpu < (uint)_vcpus.Length)
                {
                    _scratch[n++] = message.SourceVcpu;
                }

                return n;
            case DestinationShorthand.AllIncludingSelf:
                for (int i = 0; i < _vcpus.Length; i++)
                {
                    _scratch[n++] = i;
                }

                return n;
            case DestinationShorthand.AllExcludingSelf:
                for (int i = 0; i < _vcpus.Length; i++)
                {
                    if (i != message.SourceVcpu)
                    {
                        _scratch[n++] = i;
                    }
                }

                return n;
        }

        uint mda = message.Destination;
        if (message.DestinationMode == DestinationMode.Physical)
        {
            if (mda == InterruptMessage.XApicBroadcast)
            {
                n = AddAll(_xapicMembers, n);
            }
            else if (mda < 0xFF)
            {
                for (int v = _xapicById[mda]; v >= 0; v = _nextXApic[v])
                {
                    _scratch[n++] = v;
                }
            }

            if (mda == InterruptMessage.X2ApicBroadcast)
            {
                n = AddAll(_x2apicMembers, n);
            }
            else
            {
                int v = FindX2Apic(mda);
                if (v >= 0)
                {
                    _scratch[n++] = v;
                }
            }

            return n;
        }

        // Logical destination.
        int generation = ++_generation;
        if (mda == InterruptMessage.XApicBroadcast)
        {
            // KVM treats logical 0xFF as broadcast for xAPIC-mode APICs before looking at LDR (A19).
            n = AddAll(_xapicMembers, n);
        }
        else
        {
            uint low = mda & 0xFF;
            for (uint bits = low; bits != 0; bits &= bits - 1)
            {
                n = AddUnique(_flat[System.Numerics.BitOperations.TrailingZeroCount(bits)], n, generation);
            }

            if (mda <= 0xFF)
            {
                int cluster = (int)(mda >> 4);
                for (uint bits = mda & 0xF; bits != 0; bits &= bits - 1)
                {
                    n = AddUnique(_cluster[(cluster << 2) + System.Numerics.BitOperations.TrailingZeroCount(bits)], n, generation);
                }
            }
        }

        if (mda == InterruptMessage.X2ApicBroadcast)
        {
            n = AddAll(_x2apicMembers, n);
        }
        else if (_x2apicClusters.Count != 0 && _x2apicClusters.TryGetValue(mda >> 16, out int[]? members))
        {
            for (uint bits = mda & 0xFFFF; bits != 0; bits &= bits - 1)
            {
                for (int v = members[System.Numerics.BitOperations.TrailingZeroCount(bits)]; v >= 0; v = _nextX2ApicLogical[v])
                {
                    if (_stamp[v] != generation)
                    {
                        _stamp[v] = generation;
                        _scratch[n++] = v;
                    }
                }
            }
        }

        return n;
    }

    private int AddAll(int[] members, int n)
    {
        members.AsSpan().CopyTo(_scratch.AsSpan(n));
        return n + members.Length;
    }

    private int AddUnique(int[] members, int n, int generation)
    {
        foreach (int v in members)
        {
            if (_stamp[v] != generation)
            {
                _stamp[v] = generation;
                _scratch[n++] = v;
            }
        }

        return n;
    }

    private LocalApic.BroadcastGroup MemberGroup(int[] members)
    {
        var apics = new LocalApic[members.Length];
        for (int i = 0; i < members.Length; i++)
        {
            apics[i] = _apics[members[i]];
        }

        return new LocalApic.BroadcastGroup(apics);
    }

    private int FindX2Apic(uint id)
    {
        if (id < (uint)_x2apicById.Length)
        {
            return _x2apicById[id];
        }

        return _x2apicSparse is not null && _x2apicSparse.TryGetValue(id, out int v) ? v : -1;
    }

    private void Rebuild()
    {
        _dirty = false;
        Rebuilds++;
        Array.Fill(_xapicById, -1);
        var xapic = new List<int>();
        var x2apic = new List<int>();
        var flat = new List<int>[8];
        var cluster = new List<int>[64];
        _x2apicClusters.Clear();
        _x2apicSparse = null;
        uint maxX2ApicId = 0;
        for (int v = 0; v < _vcpus.Length; v++)
        {
            LocalApic apic = _vcpus[v].Apic;
            if (apic.Mode == ApicMode.X2Apic)
            {
                x2apic.Add(v);
                maxX2ApicId = Math.Max(maxX2ApicId, apic.Id);
            }
        }

        _x2apicById = new int[x2apic.Count == 0 ? 0 : (int)Math.Min(maxX2ApicId + 1, DirectIdTableLimit)];
        Array.Fill(_x2apicById, -1);

        // Build xAPIC chains from the highest vCPU down so that each chain is ascending.
        for (int v = _vcpus.Length - 1; v >= 0; v--)
        {
            LocalApic apic = _vcpus[v].Apic;
            _nextXApic[v] = -1;
            if (apic.Mode != ApicMode.XApic)
            {
                continue;
            }

            uint id = apic.Id & 0xFF;
            _nextXApic[v] = _xapicById[id];
            _xapicById[id] = v;
        }

        for (int v = 0; v < _vcpus.Length; v++)
        {
            LocalApic apic = _vcpus[v].Apic;
            switch (apic.Mode)
            {
                case ApicMode.XApic:
                {
                    xapic.Add(v);
                    uint logicalId = apic.LogicalDestination >> 24;
                    uint model = apic.DestinationFormat >> 28;
                    if (model == 0xF)
                    {
                        for (uint bits = logicalId; bits != 0; bits &= bits - 1)
                        {
                            (flat[System.Numerics.BitOperations.TrailingZeroCount(bits)] ??= []).Add(v);
                        }
                    }
                    else if (model == 0)
                    {
                        int c = (int)(logicalId >> 4);
                        for (uint bits = logicalId & 0xF; bits != 0; bits &= bits - 1)
                        {
                            (cluster[(c << 2) + System.Numerics.BitOperations.TrailingZeroCount(bits)] ??= []).Add(v);
                        }
                    }

                    // Any other DFR model matches no logical destination (KVM).
                    break;
                }

                case ApicMode.X2Apic:
                {
                    uint id = apic.Id;
                    if (id < (uint)_x2apicById.Length)
                    {
                        _x2apicById[id] = v;
                    }
                    else
                    {
                        (_x2apicSparse ??= [])[id] = v;
                    }

                    break;
                }
            }
        }

        // x2APIC logical chains, built from the highest vCPU down so that each is ascending.
        for (int v = _vcpus.Length - 1; v >= 0; v--)
        {
            _nextX2ApicLogical[v] = -1;
            LocalApic apic = _vcpus[v].Apic;
            if (apic.Mode != ApicMode.X2Apic)
            {
                continue;
            }

            uint ldr = apic.LogicalDestination;
            if (!_x2apicClusters.TryGetValue(ldr >> 16, out int[]? members))
            {
                members = new int[16];
                Array.Fill(members, -1);
                _x2apicClusters[ldr >> 16] = members;
            }

            // The derived LDR has exactly one member bit.
            int bit = System.Numerics.BitOperations.TrailingZeroCount(ldr & 0xFFFF) & 15;
            _nextX2ApicLogical[v] = members[bit];
            members[bit] = v;
        }

        _xapicMembers = [.. xapic];
        _x2apicMembers = [.. x2apic];
        _xapicGroup = MemberGroup(_xapicMembers);
        _x2apicGroup = MemberGroup(_x2apicMembers);
        for (int i = 0; i < 8; i++)
        {
            _flat[i] = flat[i] is null ? [] : [.. flat[i]];
        }

        for (int i = 0; i < 64; i++)
        {
            _cluster[i] = cluster[i] is null ? [] : [.. cluster[i]];
        }
    }
}
