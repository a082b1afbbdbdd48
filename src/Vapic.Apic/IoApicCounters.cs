namespace Vapic.Apic;

/// <summary>
/// Statistics of one IOAPIC. They describe what the device did, are not guest-visible, and are not
/// cleared by <see cref="IoApic.Reset"/>.
/// </summary>
public sealed class IoApicCounters
{
    /// <summary>Messages handed to <see cref="IIoApicHost.Deliver"/>, whatever their outcome.</summary>
    public long MessagesSent { get; internal set; }

    /// <summary>Rising edges on a masked edge-triggered pin; they are lost, not latched.</summary>
    public long EdgesLostMasked { get; internal set; }

    /// <summary>Assertions of an edge-triggered pin whose line was already asserted (no new edge).</summary>
    public long EdgesCoalesced { get; internal set; }

    /// <summary>Assertions of a level-triggered pin while Remote IRR was set (the interrupt was still outstanding).</summary>
    public long LevelCoalesced { get; internal set; }

    /// <summary>Level messages that every matching local APIC refused, so Remote IRR stayed clear.</summary>
    public long LevelRefused { get; internal set; }

    /// <summary>Messages sent because an EOI (or the end of a storm deferral) found the line still asserted.</summary>
    public long Redelivered { get; internal set; }

    /// <summary>Messages sent by a redirection-entry write (typically unmasking an asserted level pin).</summary>
    public long DeliveredOnEntryWrite { get; internal set; }

    /// <summary>Times the interrupt-storm guard deferred a re-delivery.</summary>
    public long StormDeferrals { get; internal set; }

    /// <summary>Messages not sent because the entry used reserved delivery mode 011 or 110 (A25).</summary>
    public long ReservedModeDropped { get; internal set; }

    /// <summary>EOI messages received from local APICs through <see cref="IoApic.EndOfInterrupt"/>.</summary>
    public long EoiBroadcasts { get; internal set; }

    /// <summary>Writes to the EOI register at base + 0x40 that took effect (version 0x20).</summary>
    public long EoiRegisterWrites { get; internal set; }

    /// <summary>Writes to base + 0x40 on a version 0x11 IOAPIC, which has no EOI register.</summary>
    public long EoiRegisterWritesIgnored { get; internal set; }
}
