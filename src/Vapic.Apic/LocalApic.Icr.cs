namespace Vapic.Apic;

// The sender side of IPIs: ICR and SELF IPI (spec §10, SDM "Issuing Interprocessor Interrupts",
// "SELF IPI Register"). Routing to the targets is the host's job.
public sealed partial class LocalApic
{
    /// <summary>
    /// x2APIC ICR WRMSR: reserved bits 13, 17:16, 31:20 fault; delivery status (bit 12) is ignored
    /// and stored as 0 (spec A5); the 64-bit value is stored and the IPI sent at once.
    /// </summary>
    private ApicAccessResult WriteX2ApicInterruptCommand(ulong value)
    {
        uint low = (uint)value;
        if ((low & InterruptCommand.ReservedBits) != 0)
        {
            return ApicAccessResult.GeneralProtection;
        }

        _regs.InterruptCommandLow = low & ~InterruptCommand.DeliveryStatus;
        _regs.InterruptCommandHigh = (uint)(value >> 32);
        SendInterruptCommand(_regs.InterruptCommandLow, _regs.InterruptCommandHigh);
        return ApicAccessResult.Ok;
    }

    /// <summary>
    /// Sends the IPI described by ICR <paramref name="low"/> to <paramref name="destination"/>.
    /// Delivery modes 011 and 111 are not IPIs (the ICR lists them reserved; ExtINT cannot be sent)
    /// and go nowhere. A Fixed or lowest-priority vector below 16 sets ESR bit 5 here and the message
    /// still goes out so that each receiver sets bit 6 (spec A9).
    /// </summary>
    private void SendInterruptCommand(uint low, uint destination)
    {
        var mode = (DeliveryMode)((low & InterruptCommand.DeliveryModeMask) >> 8);
        if (mode is DeliveryMode.Reserved3 or DeliveryMode.ExtInt)
        {
            _counters.IpisDroppedReservedMode++;
            return;
        }

        if (mode is DeliveryMode.Fixed or DeliveryMode.LowestPriority && (byte)low < 16)
        {
            RaiseError(ApicRegister.ErrorSendIllegalVector);
        }

        InterruptMessage message = InterruptCommand.ToMessage(low, destination, Options.VcpuIndex);
        _counters.IpisSent++;
        _host.SendIpi(this, in message);
    }

    /// <summary>
    /// SELF IPI (x2APIC MSR 0x83F): the same as an ICR write with shorthand self, Fixed, edge.
    /// </summary>
    private void SendSelfIpi(byte vector)
    {
        if (vector < 16)
        {
            RaiseError(ApicRegister.ErrorSendIllegalVector);
        }

        var message = new InterruptMessage(
            Vector: vector,
            DeliveryMode: DeliveryMode.Fixed,
            DestinationMode: DestinationMode.Physical,
            Destination: Id,
            Shorthand: DestinationShorthand.Self,
            LevelTriggered: false,
            Assert: true,
            RedirectionHint: false,
            Source: InterruptSource.Ipi,
            SourceVcpu: Options.VcpuIndex);
        _counters.IpisSent++;
        _host.SendIpi(this, in message);
    }
}
