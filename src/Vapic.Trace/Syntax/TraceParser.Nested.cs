using Vapic.Machine;
using Vapic.Virtualization;
using Vapic.Virtualization.Nested;

namespace Vapic.Trace.Syntax;

// The nested-virtualization commands (docs/trace-format.md, "Nested virtualization"): machine-level
// "nested ..." set-up and checks, and the per-CPU "vmlaunch" and "l2 read|write|accept".
public static partial class TraceParser
{
    private static readonly string[] s_nestedOperations = ["quirk", "l1-map", "ept", "l1-write", "l1-read", "vmcs12", "post", "inhibit"];
    private static readonly string[] s_l2Operations = ["read", "write", "accept"];
    private static readonly string[] s_l1MemoryKinds = ["ram", "mmio", "l1-apic", "hole"];
    private static readonly string[] s_vmcs12Keys = ["controls", "apic-access", "virtual-apic", "pi-desc", "pi-vector", "tpr-threshold", "eoi-exit", "rvi", "svi"];
    private static readonly string[] s_nestedInhibits = ["l2-passthrough-access"];

    /// <summary>What may follow '=' on a nested command.</summary>
    [Flags]
    private enum NestedTail : ushort
    {
        Nothing = 0,
        Value32 = 1 << 0,
        Unmapped = 1 << 1,
        Ok = 1 << 2,
        VmFail = 1 << 3,
        InternalError = 1 << 4,
        L1Exit = 1 << 5,
        NotInL2 = 1 << 6,
        Event = 1 << 7,
        InhibitState = 1 << 8,
    }

    private ref partial struct Parser
    {
        private bool ParseNested(Token first)
        {
            Token operation = Next();
            if (operation.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, operation, $"'nested' needs an operation ({KeywordSuggestion.JoinAlternatives(s_nestedOperations)}), found {Describe(operation)}");
            }

            switch (TextOf(operation))
            {
                case "quirk":
                    return ParseNestedQuirk(first);
                case "l1-map":
                    return ParseNestedL1Map(first);
                case "ept":
                    return ParseNestedEpt(first);
                case "l1-write":
                {
                    if (!ReadAlignedAddress("nested l1-write", "ADDR", 3, ulong.MaxValue, out ulong address)
                        || !ReadNumberAtMost("nested l1-write", "VALUE", uint.MaxValue, "fit in 32 bits (the access is 32-bit)", out ulong value)
                        || !ParseTail("nested l1-write", Tail.Nothing, out _))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.NestedL1Write, first, TraceCommand.NoCpu, address, value, Expectation.None);
                }

                case "l1-read":
                {
                    if (!ReadAlignedAddress("nested l1-read", "ADDR", 3, ulong.MaxValue, out ulong address)
                        || !ParseNestedTail("nested l1-read", NestedTail.Value32 | NestedTail.Unmapped, required: false, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.NestedL1Read, first, TraceCommand.NoCpu, address, 0, expectation);
                }

                case "vmcs12":
                    return ParseNestedVmcs12(first);
                case "post":
                {
                    if (!ReadNestedCpu("nested post", out int cpu)
                        || !ReadNumberAtMost("nested post", "VECTOR", 0xFF, "be at most 0xFF", out ulong vector)
                        || !ParseNestedTail("nested post", NestedTail.Ok | NestedTail.InternalError | NestedTail.NotInL2, required: false, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.NestedPost, first, cpu, vector, 0, expectation);
                }

                case "inhibit":
                {
                    Token reason = Next();
                    if (reason.Kind != TokenKind.Word)
                    {
                        return Fail(TraceErrorKind.MissingOperand, reason, $"'nested inhibit' needs an inhibit reason ({KeywordSuggestion.JoinAlternatives(s_nestedInhibits)}), found {Describe(reason)}");
                    }

                    if (!TextOf(reason).SequenceEqual("l2-passthrough-access"))
                    {
                        return Fail(TraceErrorKind.UnknownKeyword, reason, KeywordSuggestion.UnknownMessage("inhibit reason", TextOf(reason), s_nestedInhibits));
                    }

                    if (!ParseNestedTail("nested inhibit", NestedTail.InhibitState, required: true, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.NestedInhibit, first, TraceCommand.NoCpu, (ulong)ApicvInhibit.L2PassthroughAccess, 0, expectation);
                }

                default:
                    return Fail(TraceErrorKind.UnknownKeyword, operation, KeywordSuggestion.UnknownMessage("nested operation", TextOf(operation), s_nestedOperations));
            }
        }

        private bool ParseNestedQuirk(Token first)
        {
            Token name = Next();
            if (name.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, name, $"'nested quirk' needs a quirk ({KeywordSuggestion.JoinAlternatives([.. NestedQuirkNames.Names])}), found {Describe(name)}");
            }

            if (!NestedQuirkNames.TryParse(TextOf(name), out NestedQuirks quirk))
            {
                return Fail(TraceErrorKind.UnknownKeyword, name, KeywordSuggestion.UnknownMessage("quirk", TextOf(name), [.. NestedQuirkNames.Names]));
            }

            if (!ParseTail("nested quirk", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.NestedQuirk, first, TraceCommand.NoCpu, (ulong)quirk, 0, Expectation.None);
        }

        private bool ParseNestedL1Map(Token first)
        {
            if (!ReadAlignedAddress("nested l1-map", "BASE", 0xFFF, ulong.MaxValue, out ulong baseAddress)
                || !ReadNumber("nested l1-map", "SIZE", out ulong size, out Token sizeToken))
            {
                return false;
            }

            if (size == 0 || (size & 0xFFF) != 0)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, sizeToken, $"SIZE {Describe(sizeToken)} must be a non-zero multiple of 0x1000 (whole 4 KiB pages)");
            }

            if (baseAddress + size < baseAddress)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, sizeToken, $"BASE + SIZE passes 2^64");
            }

            Token kindToken = Next();
            if (kindToken.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, kindToken, $"'nested l1-map' needs what is there ({KeywordSuggestion.JoinAlternatives(s_l1MemoryKinds)}), found {Describe(kindToken)}");
            }

            L1MemoryKind kind;
            switch (TextOf(kindToken))
            {
                case "ram":
                    kind = L1MemoryKind.Ram;
                    break;
                case "mmio":
                    kind = L1MemoryKind.Mmio;
                    break;
                case "l1-apic":
                    kind = L1MemoryKind.L1Apic;
                    break;
                case "hole":
                    kind = L1MemoryKind.Hole;
                    break;
                default:
                    return Fail(TraceErrorKind.UnknownKeyword, kindToken, KeywordSuggestion.UnknownMessage("L1 memory kind", TextOf(kindToken), s_l1MemoryKinds));
            }

            if (!ParseTail("nested l1-map", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.NestedL1Map, first, TraceCommand.NoCpu, baseAddress | (ulong)kind, size, Expectation.None);
        }

        private bool ParseNestedEpt(Token first)
        {
            if (!ReadAlignedAddress("nested ept", "L2ADDR", 0xFFF, NestedCommandOperands.L2AddressLimit, out ulong l2Page))
            {
                return false;
            }

            ulong l1Page;
            int afterL2 = _position;
            Token target = Next();
            if (target.Kind == TokenKind.Word && TextOf(target).SequenceEqual("none"))
            {
                l1Page = NestedCommandOperands.EptNotPresent;
            }
            else
            {
                _position = afterL2;
                if (!ReadAlignedAddress("nested ept", "L1ADDR (or 'none')", 0xFFF, ulong.MaxValue, out l1Page))
                {
                    return false;
                }
            }

            if (!ParseTail("nested ept", Tail.Nothing, out _))
            {
                return false;
            }

            return Add(TraceCommandKind.NestedEpt, first, TraceCommand.NoCpu, l2Page, l1Page, Expectation.None);
        }

        private bool ParseNestedVmcs12(Token first)
        {
            if (!ReadNestedCpu("nested vmcs12", out int cpu))
            {
                return false;
            }

            int fields = 0;
            while (true)
            {
                Token key = Next();
                if (key.Kind == TokenKind.End)
                {
                    break;
                }

                if (key.Kind != TokenKind.Word)
                {
                    return Fail(TraceErrorKind.UnexpectedToken, key, $"expected a vmcs12 field ({KeywordSuggestion.JoinAlternatives(s_vmcs12Keys)}), found {Describe(key)}");
                }

                NestedVmcs12Setting setting;
                switch (TextOf(key))
                {
                    case "controls":
                        if (!ExpectEqualsSign(key) || !ReadVmcs12Controls(out Vmcs12Controls controls))
                        {
                            return false;
                        }

                        Add(TraceCommandKind.NestedVmcs12, first, cpu, (ulong)NestedVmcs12Setting.Controls, (ulong)controls, Expectation.None);
                        fields++;
                        continue;
                    case "apic-access":
                        setting = NestedVmcs12Setting.ApicAccessAddress;
                        break;
                    case "virtual-apic":
                        setting = NestedVmcs12Setting.VirtualApicAddress;
                        break;
                    case "pi-desc":
                        setting = NestedVmcs12Setting.PostedInterruptDescriptorAddress;
                        break;
                    case "pi-vector":
                        setting = NestedVmcs12Setting.NotificationVector;
                        break;
                    case "tpr-threshold":
                        setting = NestedVmcs12Setting.TprThreshold;
                        break;
                    case "eoi-exit":
                        setting = NestedVmcs12Setting.EoiExit;
                        break;
                    case "rvi":
                        setting = NestedVmcs12Setting.RequestingVirtualInterrupt;
                        break;
                    case "svi":
                        setting = NestedVmcs12Setting.ServicingVirtualInterrupt;
                        break;
                    default:
                        return Fail(TraceErrorKind.UnknownKeyword, key, KeywordSuggestion.UnknownMessage("vmcs12 field", TextOf(key), s_vmcs12Keys));
                }

                string name = TextOf(key).ToString();
                (ulong maximum, string requirement) = setting switch
                {
                    NestedVmcs12Setting.NotificationVector => (0xFFFFUL, "fit in 16 bits (the field is 16-bit)"),
                    NestedVmcs12Setting.TprThreshold => (uint.MaxValue, "fit in 32 bits (the field is 32-bit)"),
                    NestedVmcs12Setting.EoiExit or NestedVmcs12Setting.RequestingVirtualInterrupt or NestedVmcs12Setting.ServicingVirtualInterrupt => (0xFFUL, "be at most 0xFF"),
                    _ => (ulong.MaxValue, ""),
                };
                if (!ExpectEqualsSign(key) || !ReadNumberAtMost(name, "the value", maximum, requirement, out ulong value))
                {
                    return false;
                }

                Add(TraceCommandKind.NestedVmcs12, first, cpu, (ulong)setting, value, Expectation.None);
                fields++;
            }

            if (fields == 0)
            {
                return Fail(TraceErrorKind.MissingOperand, Next(), $"'nested vmcs12' needs at least one FIELD=VALUE ({KeywordSuggestion.JoinAlternatives(s_vmcs12Keys)})");
            }

            return true;
        }

        private bool ReadVmcs12Controls(out Vmcs12Controls controls)
        {
            controls = Vmcs12Controls.None;
            while (true)
            {
                Token token = Next();
                if (token.Kind != TokenKind.Word)
                {
                    return Fail(TraceErrorKind.MissingOperand, token, $"'controls' needs control names separated by ',' (or 'none'), found {Describe(token)}");
                }

                ReadOnlySpan<char> word = TextOf(token);
                if (word.SequenceEqual("none"))
                {
                    if (controls != Vmcs12Controls.None)
                    {
                        return Fail(TraceErrorKind.UnexpectedToken, token, "'none' stands alone: 'controls=none'");
                    }
                }
                else if (Vmcs12ControlNames.TryParse(word, out Vmcs12Controls control))
                {
                    if ((controls & control) != 0)
                    {
                        return Fail(TraceErrorKind.DuplicateOption, token, $"control '{word}' is given twice");
                    }

                    controls |= control;
                }
                else
                {
                    return Fail(TraceErrorKind.UnknownKeyword, token, KeywordSuggestion.UnknownMessage("vmcs12 control", word, [.. Vmcs12ControlNames.Names, "none"]));
                }

                int after = _position;
                if (Next().Kind != TokenKind.Comma)
                {
                    _position = after;
                    return true;
                }

                if (word.SequenceEqual("none"))
                {
                    return Fail(TraceErrorKind.UnexpectedToken, token, "'none' stands alone: 'controls=none'");
                }
            }
        }

        private bool ParseVmLaunch(Token first, int cpu)
        {
            if (!ParseNestedTail("vmlaunch", NestedTail.Ok | NestedTail.VmFail | NestedTail.InternalError, required: false, out Expectation expectation))
            {
                return false;
            }

            return Add(TraceCommandKind.VmLaunch, first, cpu, 0, 0, expectation);
        }

        private bool ParseL2(Token first, int cpu)
        {
            Token operation = Next();
            if (operation.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, operation, $"'l2' needs 'read', 'write' or 'accept', found {Describe(operation)}");
            }

            switch (TextOf(operation))
            {
                case "read":
                {
                    if (!ReadAlignedAddress("l2 read", "ADDR", 3, NestedCommandOperands.L2AddressLimit, out ulong address)
                        || !ParseNestedTail("l2 read", NestedTail.Value32 | NestedTail.Unmapped | NestedTail.L1Exit | NestedTail.NotInL2, required: false, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.L2Read, first, cpu, address, 0, expectation);
                }

                case "write":
                {
                    if (!ReadAlignedAddress("l2 write", "ADDR", 3, NestedCommandOperands.L2AddressLimit, out ulong address)
                        || !ReadNumberAtMost("l2 write", "VALUE", uint.MaxValue, "fit in 32 bits (the access is 32-bit)", out ulong value)
                        || !ParseNestedTail("l2 write", NestedTail.Ok | NestedTail.L1Exit | NestedTail.NotInL2, required: false, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.L2Write, first, cpu, address, value, expectation);
                }

                case "accept":
                {
                    if (!ParseNestedTail("l2 accept", NestedTail.Event | NestedTail.NotInL2, required: false, out Expectation expectation))
                    {
                        return false;
                    }

                    return Add(TraceCommandKind.L2Accept, first, cpu, 0, 0, expectation);
                }

                default:
                    return Fail(TraceErrorKind.UnknownKeyword, operation, KeywordSuggestion.UnknownMessage("l2 operation", TextOf(operation), s_l2Operations));
            }
        }

        /// <summary>Reads the CPU operand of <c>nested vmcs12</c> and <c>nested post</c>.</summary>
        private bool ReadNestedCpu(string command, out int cpu)
        {
            cpu = 0;
            if (!ReadNumber(command, "a CPU index", out ulong index, out Token token))
            {
                return false;
            }

            int vcpuCount = _machine!.VcpuCount;
            if (index >= (ulong)vcpuCount)
            {
                string range = vcpuCount == 1 ? "only CPU 0" : $"CPUs 0 to {vcpuCount - 1}";
                return Fail(TraceErrorKind.CpuOutOfRange, token, $"CPU {index} does not exist: the machine has {range}");
            }

            cpu = (int)index;
            return true;
        }

        /// <summary>Reads an address with the low bits of <paramref name="alignmentMask"/> clear and below <paramref name="limit"/>.</summary>
        private bool ReadAlignedAddress(string command, string operand, ulong alignmentMask, ulong limit, out ulong address)
        {
            if (!ReadNumber(command, operand, out address, out Token token))
            {
                return false;
            }

            if ((address & alignmentMask) != 0)
            {
                string unit = alignmentMask == 3 ? "4-byte aligned (accesses are 32-bit and aligned)" : "4 KiB aligned";
                return Fail(TraceErrorKind.MisalignedAddress, token, $"{operand} {Describe(token)} is not {unit}");
            }

            if (address >= limit)
            {
                return Fail(TraceErrorKind.ValueOutOfRange, token, $"{operand} {Describe(token)} must be below 0x{limit:x} (L2 addresses are below 2^48)");
            }

            return true;
        }

        /// <summary>Reads <c>= OUTCOME</c> (required or optional, as <paramref name="allowed"/> permits), then the end of the line.</summary>
        private bool ParseNestedTail(string command, NestedTail allowed, bool required, out Expectation expectation)
        {
            expectation = Expectation.None;
            Token token = Next();
            if (token.Kind == TokenKind.End)
            {
                return !required || Fail(TraceErrorKind.MissingOperand, token, $"'{command}' needs '= {AllowedWords(allowed)}'");
            }

            if (token.Kind != TokenKind.EqualsSign)
            {
                if (IsGeneralProtectionMark(token))
                {
                    return Fail(TraceErrorKind.GeneralProtectionNotAllowed, token, $"'!gp' is not allowed on '{command}'");
                }

                return Fail(TraceErrorKind.UnexpectedToken, token, $"unexpected {Describe(token)} after the end of the '{command}' command");
            }

            Token word = Next();
            if (word.Kind != TokenKind.Word)
            {
                return Fail(TraceErrorKind.MissingOperand, word, $"'{command}' needs {AllowedWords(allowed)} after '=', found {Describe(word)}");
            }

            ReadOnlySpan<char> text = TextOf(word);
            if (char.IsAsciiDigit(text[0]))
            {
                if ((allowed & (NestedTail.Value32 | NestedTail.Event)) == 0)
                {
                    return Fail(TraceErrorKind.ExpectationNotAllowed, word, $"'{command}' expects {AllowedWords(allowed)}, not a value");
                }

                if (!ParseNumber(word, (allowed & NestedTail.Event) != 0 ? "the vector" : "the expected VALUE", out ulong value))
                {
                    return false;
                }

                if ((allowed & NestedTail.Event) != 0)
                {
                    if (value > 0xFF)
                    {
                        return Fail(TraceErrorKind.ValueOutOfRange, word, $"vector {Describe(word)} must be at most 0xFF");
                    }

                    expectation = Expectation.OfEvent(new CpuEvent(CpuEventKind.Fixed, (byte)value));
                }
                else
                {
                    if (value > uint.MaxValue)
                    {
                        return Fail(TraceErrorKind.ValueOutOfRange, word, $"the expected VALUE {Describe(word)} must fit in 32 bits ('{command}' is a 32-bit access)");
                    }

                    expectation = Expectation.OfValue(value);
                }
            }
            else
            {
                NestedTail form = text switch
                {
                    "unmapped" => NestedTail.Unmapped,
                    "ok" => NestedTail.Ok,
                    "vmfail" => NestedTail.VmFail,
                    "internal-error" => NestedTail.InternalError,
                    "l1-exit" => NestedTail.L1Exit,
                    "not-in-l2" => NestedTail.NotInL2,
                    "none" => NestedTail.Event,
                    "set" or "clear" => NestedTail.InhibitState,
                    _ => NestedTail.Nothing,
                };
                if (form == NestedTail.Nothing)
                {
                    return Fail(TraceErrorKind.UnknownKeyword, word, KeywordSuggestion.UnknownMessage("expectation", text, AllowedKeywords(allowed), AllowedNumber(allowed)));
                }

                if ((allowed & form) == 0)
                {
                    return Fail(TraceErrorKind.ExpectationNotAllowed, word, $"'{command}' cannot expect '{text}'; it expects {AllowedWords(allowed)}");
                }

                if (!ReadNestedOutcome(form, text, out expectation))
                {
                    return false;
                }
            }

            Token extra = Next();
            return extra.Kind == TokenKind.End
                || Fail(TraceErrorKind.UnexpectedToken, extra, $"unexpected {Describe(extra)} after the end of the '{command}' command");
        }

        private bool ReadNestedOutcome(NestedTail form, ReadOnlySpan<char> word, out Expectation expectation)
        {
            expectation = Expectation.None;
            switch (form)
            {
                case NestedTail.Unmapped:
                    expectation = Expectation.Unmapped;
                    return true;
                case NestedTail.Ok:
                    expectation = Expectation.OfNested(NestedOutcome.Ok);
                    return true;
                case NestedTail.NotInL2:
                    expectation = Expectation.OfNested(NestedOutcome.NotInL2);
                    return true;
                case NestedTail.Event:
                    expectation = Expectation.OfEvent(CpuEvent.None);
                    return true;
                case NestedTail.InhibitState:
                    expectation = Expectation.OfNested(NestedOutcome.Inhibit(word.SequenceEqual("set")));
                    return true;
                case NestedTail.VmFail:
                    if (!ReadNumberAtMost("vmfail", "the VM-instruction error N", 0xFFFF, "fit in 16 bits", out ulong error))
                    {
                        return false;
                    }

                    expectation = Expectation.OfNested(NestedOutcome.VmFail((int)error));
                    return true;
                case NestedTail.InternalError:
                {
                    Vmcs12Field? field = null;
                    ulong? address = null;
                    int afterKeyword = _position;
                    Token fieldToken = Next();
                    if (fieldToken.Kind == TokenKind.Word)
                    {
                        if (!Vmcs12FieldNames.TryParse(TextOf(fieldToken), out Vmcs12Field named))
                        {
                            return Fail(TraceErrorKind.UnknownKeyword, fieldToken, KeywordSuggestion.UnknownMessage("vmcs12 field", TextOf(fieldToken), [.. Vmcs12FieldNames.Keywords]));
                        }

                        field = named;
                        int afterField = _position;
                        Token addressToken = Next();
                        if (addressToken.Kind == TokenKind.Word)
                        {
                            if (!ParseNumber(addressToken, "ADDR", out ulong value))
                            {
                                return false;
                            }

                            if (value >= NestedOutcome.AddressLimit)
                            {
                                return Fail(TraceErrorKind.ValueOutOfRange, addressToken, $"ADDR {Describe(addressToken)} must be below 2^52 (MAXPHYADDR is at most 52)");
                            }

                            address = value;
                        }
                        else
                        {
                            _position = afterField;
                        }
                    }
                    else
                    {
                        _position = afterKeyword;
                    }

                    expectation = Expectation.OfNested(NestedOutcome.InternalError(field, address));
                    return true;
                }

                default:
                {
                    Token reasonToken = Next();
                    if (reasonToken.Kind != TokenKind.Word)
                    {
                        return Fail(TraceErrorKind.MissingOperand, reasonToken, $"'l1-exit' needs an exit reason ({KeywordSuggestion.JoinAlternatives([.. L1ExitReasonNames.Keywords])}), found {Describe(reasonToken)}");
                    }

                    if (!L1ExitReasonNames.TryParse(TextOf(reasonToken), out L1ExitReason reason))
                    {
                        return Fail(TraceErrorKind.UnknownKeyword, reasonToken, KeywordSuggestion.UnknownMessage("exit reason", TextOf(reasonToken), [.. L1ExitReasonNames.Keywords]));
                    }

                    ulong? qualification = null;
                    int afterReason = _position;
                    Token qualificationToken = Next();
                    if (qualificationToken.Kind == TokenKind.Word)
                    {
                        if (!ParseNumber(qualificationToken, "the exit qualification", out ulong value))
                        {
                            return false;
                        }

                        if (value >= NestedOutcome.QualificationLimit)
                        {
                            return Fail(TraceErrorKind.ValueOutOfRange, qualificationToken, $"the exit qualification {Describe(qualificationToken)} must be below 2^48");
                        }

                        qualification = value;
                    }
                    else
                    {
                        _position = afterReason;
                    }

                    expectation = Expectation.OfNested(NestedOutcome.L1Exit(reason, qualification));
                    return true;
                }
            }
        }

        private static string[] AllowedKeywords(NestedTail allowed)
        {
            var words = new List<string>();
            if ((allowed & NestedTail.Unmapped) != 0)
            {
                words.Add("unmapped");
            }

            if ((allowed & NestedTail.Ok) != 0)
            {
                words.Add("ok");
            }

            if ((allowed & NestedTail.VmFail) != 0)
            {
                words.Add("vmfail");
            }

            if ((allowed & NestedTail.InternalError) != 0)
            {
                words.Add("internal-error");
            }

            if ((allowed & NestedTail.L1Exit) != 0)
            {
                words.Add("l1-exit");
            }

            if ((allowed & NestedTail.NotInL2) != 0)
            {
                words.Add("not-in-l2");
            }

            if ((allowed & NestedTail.Event) != 0)
            {
                words.Add("none");
            }

            if ((allowed & NestedTail.InhibitState) != 0)
            {
                words.Add("set");
                words.Add("clear");
            }

            return [.. words];
        }

        private static string? AllowedNumber(NestedTail allowed) =>
            (allowed & NestedTail.Value32) != 0 ? "a VALUE" : (allowed & NestedTail.Event) != 0 ? "a vector" : null;

        private static string AllowedWords(NestedTail allowed)
        {
            string[] words = AllowedKeywords(allowed);
            string? number = AllowedNumber(allowed);
            return number is null
                ? KeywordSuggestion.JoinAlternatives(words)
                : $"{string.Join(", ", words.Select(w => $"'{w}'"))} or {number}";
        }
    }
}
