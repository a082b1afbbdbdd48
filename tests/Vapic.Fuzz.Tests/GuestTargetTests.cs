using Vapic.Apic;
using Vapic.Fuzz.Targets;
using Vapic.Machine;
using Xunit;

namespace Vapic.Fuzz.Tests;

/// <summary>The guest interpreter does what its operations say, checked against the architecture.</summary>
public sealed class GuestTargetTests
{
    private const byte Emulated = 0;
    private const byte OneVcpu = 0x00;
    private const byte TwoVcpus = 0x01;

    [Fact]
    public void Execute_SelfIpiAcceptedThenEoi_MovesTheVectorThroughIrrIsrAndPpr()
    {
        // SDM "Processor Priority Register (PPR)": with TPR 0, PPR is the in-service vector's class.
        GuestProgramBuilder program = new GuestProgramBuilder(Emulated, OneVcpu)
            .Register(0, ApicRegister.SpuriousVectorOffset, 0x1FF)
            .Ipi(0, 0x45, DeliveryMode.Fixed, 0, DestinationShorthand.Self)
            .Accept(0);
        byte[] accepted = program.ToArray();

        LocalApic apic = GuestTarget.Execute(accepted).GetVcpu(0).Apic;
        Assert.True(apic.Isr.Get(0x45));
        Assert.True(apic.Irr.IsEmpty);
        Assert.Equal(0x40, apic.ProcessorPriority);

        LocalApic afterEoi = GuestTarget.Execute(program.Eoi(0).ToArray()).GetVcpu(0).Apic;
        Assert.True(afterEoi.Isr.IsEmpty);
        Assert.Equal(0, afterEoi.ProcessorPriority);
    }

    [Fact]
    public void Execute_InitSipi_StartsTheApAtTheVectorsPage()
    {
        // SDM "MP Initialization": a SIPI with vector VV starts the AP at VV00:0000 (physical VV000h).
        byte[] program = new GuestProgramBuilder(Emulated, TwoVcpus)
            .Ipi(0, 0, DeliveryMode.Init, 1)
            .Ipi(0, 0x9A, DeliveryMode.StartUp, 1)
            .Accept(1)
            .Accept(1)
            .ToArray();

        Vcpu ap = GuestTarget.Execute(program).GetVcpu(1);

        Assert.Equal(VcpuRunState.Running, ap.RunState);
        Assert.Equal(0x9A00, ap.CodeSegment);
        Assert.Equal(0x9A000UL, ap.EntryPoint);
    }

    [Fact]
    public void Execute_X2ApicEnableThroughApicBase_SwitchesTheBspToX2ApicMode()
    {
        // SDM "x2APIC State Transitions": EN=1, EXTD=1 from xAPIC mode enters x2APIC mode.
        byte[] program = new GuestProgramBuilder(Emulated, OneVcpu).Wrmsr(0, 0x1B, 0xFEE0_0D00).ToArray();

        LocalApic apic = GuestTarget.Execute(program).GetVcpu(0).Apic;

        Assert.Equal(ApicMode.X2Apic, apic.Mode);
        Assert.Equal(0xFEE0_0D00UL, apic.BaseMsr);
    }

    [Fact]
    public void Execute_PeriodicTimer_FiresIntoIrrAfterItsPeriod()
    {
        // Divide by 1 (DCR 0xB), initial count 400, 1 ns bus cycles: the first expiry is at 400 ns.
        GuestProgramBuilder Program() => new GuestProgramBuilder(Emulated, OneVcpu)
            .Register(0, ApicRegister.SpuriousVectorOffset, 0x1FF)
            .Register(0, ApicRegister.DivideConfigurationOffset, 0xB)
            .Register(0, ApicRegister.LvtTimerOffset, 0x2_0030)
            .Register(0, ApicRegister.InitialCountOffset, 400);

        Assert.False(GuestTarget.Execute(Program().Time(399).ToArray()).GetVcpu(0).Apic.Irr.Get(0x30));
        Assert.True(GuestTarget.Execute(Program().Time(400).ToArray()).GetVcpu(0).Apic.Irr.Get(0x30));
    }

    [Fact]
    public void Execute_TimeAdvances_StopAtTheProgramsBudget()
    {
        var program = new GuestProgramBuilder(Emulated, OneVcpu);
        for (int i = 0; i < 20; i++)
        {
            program.Time(ushort.MaxValue);
        }

        Assert.Equal(GuestTarget.VirtualTimeBudgetNs, GuestTarget.Execute(program.ToArray()).Now);
    }

    [Theory]
    [InlineData(0, "emulated")]
    [InlineData(1, "apicv")]
    [InlineData(2, "avic")]
    [InlineData(3, "passthrough")]
    [InlineData(4, "savic")]
    [InlineData(5, "emulated")]
    public void Execute_FirstByte_PicksTheMode(byte first, string mode)
    {
        VirtualMachine machine = GuestTarget.Execute([first, OneVcpu]);

        Assert.Equal(mode, ((Virtualization.VirtualizationMode)machine.Virtualization!).Name);
    }

    [Fact]
    public void MachineOf_ShapeByte_DecodesEveryField()
    {
        MachineOptions options = GuestTarget.MachineOf(0b1111_1111);

        Assert.Equal(4, options.VcpuCount);
        Assert.True(options.ForceX2Apic);
        Assert.Equal(0x11, options.IoApicVersion);
        Assert.Equal([0x100u, 0xFFu, 0x1_0001u, 0xFFFF_FFFEu], options.ApicIds);
        Assert.Equal(CpuVendor.Amd, options.CpuVendor);
        Assert.Equal(100_000_000, options.ApicTimerFrequencyHz);
        Assert.Null(options.Validate());
    }

    [Theory]
    [InlineData(0, 0x800u)]
    [InlineData(0xFF, 0x8FFu)]
    [InlineData(256, 0x1Bu)]
    [InlineData(257, 0x6E0u)]
    [InlineData(258, 0x10u)]
    public void MsrOf_Selector_MapsTheX2ApicRangeThenTheOthers(int selector, uint msr)
    {
        Assert.Equal(msr, GuestTarget.MsrOf((ushort)selector));
    }

    [Fact]
    public void Execute_TruncatedOperands_ReadAsZeroAndStop()
    {
        // An MMIO write to SVR (offset 0x0F0) whose value is cut after two bytes: the two missing
        // bytes read as 0, so the value is 0x000001FF, and the program ends with the input.
        byte[] program = [Emulated, OneVcpu, (byte)GuestOperation.MmioWrite, 0, 0xF0, 0x00, 0xFF, 0x01];

        LocalApic apic = GuestTarget.Execute(program).GetVcpu(0).Apic;

        Assert.Equal(0x1FFu, apic.SpuriousVector);
    }
}
