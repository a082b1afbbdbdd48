namespace Vapic.Apic;

// The Error Status Register latch and LVT Error (spec §8, SDM "Error Handling").
public sealed partial class LocalApic
{
    /// <summary>
    /// Records an error: the bit goes into the hidden pending set only (a later ESR write makes it
    /// visible). A bit that was not already pending raises the LVT Error interrupt if unmasked
    /// (spec U7, Xen <c>vlapic_error</c>); an illegal vector in LVT Error folds in ESR bit 6 and
    /// delivers nothing, so there is no recursion. Errors are recorded even with LVT Error masked.
    /// </summary>
    private void RaiseError(uint bit)
    {
        if ((_regs.PendingErrors & bit) != 0)
        {
            return;
        }

        _regs.PendingErrors |= bit;
        _counters.ErrorsRaised++;

        uint lvt = _regs.Lvt[LvtErrorSlot];
        if (_mode == ApicMode.Disabled || (lvt & LocalVectorTable.Masked) != 0)
        {
            return;
        }

        byte vector = (byte)lvt;
        if (vector < 16)
        {
            if ((_regs.PendingErrors & ApicRegister.ErrorReceiveIllegalVector) == 0)
            {
                _regs.PendingErrors |= ApicRegister.ErrorReceiveIllegalVector;
                _counters.ErrorsRaised++;
            }

            return;
        }

        AcceptLocalFixed(LvtErrorSlot, vector);
    }

    /// <summary>ESR write: the pending set becomes the visible ESR and is cleared (SDM "Error Status Register").</summary>
    private void LatchErrors()
    {
        _regs.ErrorStatus = _regs.PendingErrors;
        _regs.PendingErrors = 0;
    }
}
