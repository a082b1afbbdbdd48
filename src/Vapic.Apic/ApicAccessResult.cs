namespace Vapic.Apic;

/// <summary>
/// The outcome of a guest access to an interrupt-controller register. Guest-reachable paths
/// report errors through this value and never throw.
/// </summary>
public enum ApicAccessResult : byte
{
    /// <summary>The access completed (a write may have been ignored as the architecture says).</summary>
    Ok,

    /// <summary>The guest receives #GP; nothing in the device changed.</summary>
    GeneralProtection,

    /// <summary>
    /// The device does not decode this address (globally disabled APIC, x2APIC mode, outside the
    /// window): the page behaves as unbacked memory, reads are not serviced and writes are dropped.
    /// </summary>
    Unmapped,
}
