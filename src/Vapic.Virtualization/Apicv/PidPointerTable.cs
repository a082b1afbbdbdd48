namespace Vapic.Virtualization.Apicv;

/// <summary>
/// The PID-pointer table of IPI virtualization (virtualization-reference §2.8): entries indexed
/// by guest physical APIC ID that point to the target vCPU's posted-interrupt descriptor. As in
/// KVM, every vCPU gets a valid entry at its initial APIC ID when it is created, and the
/// last-PID-pointer-index field is the highest such ID. Guests that change their IDs inhibit
/// APICv (APIC_ID_MODIFIED), so the table never has to follow them.
/// </summary>
public sealed class PidPointerTable
{
    private const uint DenseLimit = 1 << 16;

    private readonly PostedInterruptDescriptor?[] _dense;
    private readonly Dictionary<uint, PostedInterruptDescriptor>? _sparse;

    internal PidPointerTable(ReadOnlySpan<uint> apicIds, PostedInterruptDescriptor[] descriptors)
    {
        uint last = 0;
        foreach (uint id in apicIds)
        {
            last = Math.Max(last, id);
        }

        LastIndex = last;
        Count = apicIds.Length;
        if (last < DenseLimit)
        {
            _dense = new PostedInterruptDescriptor?[last + 1];
            for (int i = 0; i < apicIds.Length; i++)
            {
                _dense[apicIds[i]] = descriptors[i];
            }
        }
        else
        {
            // Sparse x2APIC IDs (up to 0xFFFF_FFFE) would make a dense table absurd; lookups stay allocation-free.
            _dense = [];
            _sparse = new Dictionary<uint, PostedInterruptDescriptor>(apicIds.Length);
            for (int i = 0; i < apicIds.Length; i++)
            {
                _sparse[apicIds[i]] = descriptors[i];
            }
        }
    }

    /// <summary>An empty table (before the mode is attached).</summary>
    internal static PidPointerTable Empty { get; } = new([], []);

    /// <summary>Last PID-pointer index (VMCS field 0x0008): the highest valid APIC ID.</summary>
    public uint LastIndex { get; }

    /// <summary>The number of valid entries (one per vCPU).</summary>
    public int Count { get; }

    /// <summary>
    /// The descriptor at <paramref name="apicId"/>, or null when the index is beyond
    /// <see cref="LastIndex"/> or the entry is not valid (bit 0 clear).
    /// </summary>
    public PostedInterruptDescriptor? this[uint apicId]
    {
        get
        {
            if (apicId > LastIndex || Count == 0)
            {
                return null;
            }

            if (_sparse is not null)
            {
                return _sparse.TryGetValue(apicId, out PostedInterruptDescriptor? d) ? d : null;
            }

            return _dense[apicId];
        }
    }
}
