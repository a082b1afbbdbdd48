using CsCheck;
using Xunit;

namespace Vapic.Apic.Tests;

/// <summary>MSI address/data decoding and encoding (SDM "Message Address Register Format", "Message Data Register Format"; lapic-reference.md §12).</summary>
public sealed class MsiTests
{
    // Test vector #97: physical destination 1, fixed, edge, vector 0x31.
    [Fact]
    public void Decode_TestVector97_PhysicalFixedEdge()
    {
        var result = Msi.TryDecode(0xFEE0_1000, 0x0000_0031, extendedDestinationId: true, out var message);

        Assert.Equal(MsiDecodeResult.Ok, result);
        Assert.Equal(
            new InterruptMessage(
                0x31,
                DeliveryMode.Fixed,
                DestinationMode.Physical,
                1,
                DestinationShorthand.None,
                LevelTriggered: false,
                Assert: true,
                RedirectionHint: false,
                InterruptSource.Msi,
                SourceVcpu: -1),
            message);
    }

    // Test vector #98: destination 3 logical, RH, lowest priority, level.
    [Fact]
    public void Decode_TestVector98_LogicalRedirectionHintLowestPriorityLevel()
    {
        var result = Msi.TryDecode(0xFEE0_300C, 0x0000_C145, extendedDestinationId: true, out var message);

        Assert.Equal(MsiDecodeResult.Ok, result);
        Assert.Equal(0x45, message.Vector);
        Assert.Equal(DeliveryMode.LowestPriority, message.DeliveryMode);
        Assert.Equal(DestinationMode.Logical, message.DestinationMode);
        Assert.Equal(0x03u, message.Destination);
        Assert.True(message.RedirectionHint);
        Assert.True(message.LevelTriggered);
        Assert.True(message.Assert);
        Assert.True(message.IsLowestPriority);
    }

    // Test vector #99: destination 0xFF (broadcast to xAPIC-mode targets; routing decides).
    [Fact]
    public void Decode_TestVector99_DestinationFF()
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEEF_F000, 0x0000_0050, true, out var message));

        Assert.Equal(0xFFu, message.Destination);
        Assert.Equal(DestinationMode.Physical, message.DestinationMode);
        Assert.Equal(0x50, message.Vector);
    }

    // Test vector #100: NMI to physical 0.
    [Fact]
    public void Decode_TestVector100_Nmi()
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE0_0000, 0x0000_0400, true, out var message));

        Assert.Equal(DeliveryMode.Nmi, message.DeliveryMode);
        Assert.Equal(0u, message.Destination);
        Assert.Equal(0, message.Vector);
    }

    // Test vector #101: address bits 11:5 carry destination bits 14:8 with the extended destination ID.
    [Theory]
    [InlineData(true, 0x112u)]
    [InlineData(false, 0x12u)]
    public void Decode_TestVector101_ExtendedDestinationId(bool extended, uint destination)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE1_2020, 0x0000_0033, extended, out var message));

        Assert.Equal(destination, message.Destination);
        Assert.Equal(0x33, message.Vector);
    }

    // Test vector #102 and A25: reserved delivery modes deliver nothing.
    [Theory]
    [InlineData(0x0000_0600u, DeliveryMode.StartUp)]
    [InlineData(0x0000_0300u, DeliveryMode.Reserved3)]
    [InlineData(0x0000_C6FFu, DeliveryMode.StartUp)]
    public void Decode_ReservedDeliveryMode_IsReported(uint data, DeliveryMode mode)
    {
        var result = Msi.TryDecode(0xFEE0_0000, data, true, out var message);

        Assert.Equal(MsiDecodeResult.ReservedDeliveryMode, result);
        Assert.Equal(mode, message.DeliveryMode);
    }

    [Theory]
    [InlineData(0b000u, DeliveryMode.Fixed)]
    [InlineData(0b001u, DeliveryMode.LowestPriority)]
    [InlineData(0b010u, DeliveryMode.Smi)]
    [InlineData(0b100u, DeliveryMode.Nmi)]
    [InlineData(0b101u, DeliveryMode.Init)]
    [InlineData(0b111u, DeliveryMode.ExtInt)]
    public void Decode_DeliveryModeBits10To8(uint modeBits, DeliveryMode expected)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE0_0000, (modeBits << 8) | 0x20, true, out var message));

        Assert.Equal(expected, message.DeliveryMode);
        Assert.Equal(0x20, message.Vector);
    }

    [Theory]
    [InlineData(0x0000_0000_FED0_0000UL)]
    [InlineData(0x0000_0000_FEF0_0000UL)]
    [InlineData(0x0000_0000_FFE0_0000UL)]
    [InlineData(0x0000_0000_7EE0_0000UL)]
    [InlineData(0x0000_0000_0000_0000UL)]
    [InlineData(0x0000_0001_FEE0_0000UL)]
    [InlineData(0x0000_0100_FEE0_1000UL)]
    [InlineData(0xFFFF_FFFF_FEE0_0000UL)]
    public void Decode_NotInterruptAddress(ulong address)
    {
        var result = Msi.TryDecode(address, 0x31, true, out var message);

        Assert.Equal(MsiDecodeResult.NotInterruptAddress, result);
        Assert.Equal(default, message);
    }

    [Theory]
    [InlineData(0xFEE0_1001UL)] // bits 1:0 are don't care
    [InlineData(0xFEE0_1002UL)]
    [InlineData(0xFEE0_1003UL)]
    [InlineData(0xFEE0_1010UL)] // bit 4 (remappable format) is reserved
    public void Decode_IgnoresAddressBits4And1To0(ulong address)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(address, 0x31, true, out var message));

        Assert.Equal(1u, message.Destination);
        Assert.Equal(DestinationMode.Physical, message.DestinationMode);
        Assert.False(message.RedirectionHint);
    }

    [Theory]
    [InlineData(0xFEE0_5004UL, DestinationMode.Logical, false)]
    [InlineData(0xFEE0_5008UL, DestinationMode.Physical, true)]
    [InlineData(0xFEE0_500CUL, DestinationMode.Logical, true)]
    [InlineData(0xFEE0_5000UL, DestinationMode.Physical, false)]
    public void Decode_DestinationModeBit2AndRedirectionHintBit3(ulong address, DestinationMode mode, bool redirectionHint)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(address, 0x31, true, out var message));

        Assert.Equal(mode, message.DestinationMode);
        Assert.Equal(redirectionHint, message.RedirectionHint);
        Assert.Equal(5u, message.Destination);
    }

    [Fact]
    public void Decode_ReservedDataBits_AreIgnored()
    {
        // Bits 13:11 and 31:16 set, edge trigger.
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE0_1000, 0xFFFF_3831, true, out var message));

        Assert.Equal(0x31, message.Vector);
        Assert.Equal(DeliveryMode.Fixed, message.DeliveryMode);
        Assert.False(message.LevelTriggered);
        Assert.True(message.Assert);
    }

    [Fact]
    public void Decode_LevelWithDeassertBit_IsTreatedAsAsserted()
    {
        // KVM kvm_set_msi_irq: the level bit is not consulted; every MSI is an assertion.
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE0_1000, 0x0000_8031, true, out var message));

        Assert.True(message.LevelTriggered);
        Assert.True(message.Assert);
    }

    [Theory]
    [InlineData(0x00u)]
    [InlineData(0x0Fu)]
    [InlineData(0x10u)]
    [InlineData(0xFFu)]
    public void Decode_VectorIsBits7To0(uint vector)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(0xFEE0_0000, 0x0000_0000 | vector, true, out var message));

        Assert.Equal(vector, message.Vector);
    }

    [Theory]
    [InlineData(0xFEEF_FFE0UL, true, 0x7FFFu)]
    [InlineData(0xFEEF_FFE0UL, false, 0xFFu)]
    [InlineData(0xFEE0_0FE0UL, true, 0x7F00u)]
    [InlineData(0xFEE0_0020UL, true, 0x0100u)]
    public void Decode_ExtendedDestinationRange(ulong address, bool extended, uint destination)
    {
        Assert.Equal(MsiDecodeResult.Ok, Msi.TryDecode(address, 0x41, extended, out var message));

        Assert.Equal(destination, message.Destination);
    }

    [Fact]
    public void Decode_SourceFields_AreMsiWithoutVcpuOrShorthand()
    {
        Msi.TryDecode(0xFEE0_0000, 0x41, true, out var message);

        Assert.Equal(InterruptSource.Msi, message.Source);
        Assert.Equal(-1, message.SourceVcpu);
        Assert.Equal(DestinationShorthand.None, message.Shorthand);
    }

    [Theory]
    [InlineData(0x112u, DestinationMode.Physical, false, 0xFEE1_2020UL)]
    [InlineData(0x03u, DestinationMode.Logical, true, 0xFEE0_300CUL)]
    [InlineData(0x01u, DestinationMode.Physical, false, 0xFEE0_1000UL)]
    [InlineData(0xFFu, DestinationMode.Physical, false, 0xFEEF_F000UL)]
    [InlineData(0x7FFFu, DestinationMode.Logical, false, 0xFEEF_FFE4UL)]
    public void EncodeAddress_PlacesEveryField(uint destination, DestinationMode mode, bool redirectionHint, ulong expected)
    {
        Assert.Equal(expected, Msi.EncodeAddress(destination, mode, redirectionHint));
    }

    [Fact]
    public void EncodeAddress_DestinationAbove7FFF_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Msi.EncodeAddress(0x8000, DestinationMode.Physical, false));
    }

    [Theory]
    [InlineData(0x45, DeliveryMode.LowestPriority, true, 0x0000_C145u)]
    [InlineData(0x31, DeliveryMode.Fixed, false, 0x0000_0031u)]
    [InlineData(0x00, DeliveryMode.Nmi, false, 0x0000_0400u)]
    [InlineData(0xFF, DeliveryMode.ExtInt, true, 0x0000_C7FFu)]
    public void EncodeData_PlacesEveryField(byte vector, DeliveryMode mode, bool level, uint expected)
    {
        Assert.Equal(expected, Msi.EncodeData(vector, mode, level));
    }

    [Fact]
    public void EncodeThenDecode_RoundTrips()
    {
        Gen.Select(Gen.UInt[0, 0x7FFF], Gen.Bool, Gen.Bool, Gen.Byte, Gen.OneOf(DeliveryMode.Fixed, DeliveryMode.LowestPriority, DeliveryMode.Smi, DeliveryMode.Nmi, DeliveryMode.Init, DeliveryMode.ExtInt), Gen.Bool)
            .Sample((destination, logical, redirectionHint, vector, mode, level) =>
            {
                var destinationMode = logical ? DestinationMode.Logical : DestinationMode.Physical;
                ulong address = Msi.EncodeAddress(destination, destinationMode, redirectionHint);
                uint data = Msi.EncodeData(vector, mode, level);

                var result = Msi.TryDecode(address, data, extendedDestinationId: true, out var message);

                return result == MsiDecodeResult.Ok
                    && message == new InterruptMessage(vector, mode, destinationMode, destination, DestinationShorthand.None, level, true, redirectionHint, InterruptSource.Msi, -1);
            });
    }
}
