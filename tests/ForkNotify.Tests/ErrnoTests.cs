using FsCheck;
using FsCheck.Fluent;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class ErrnoTests
{
    [Fact]
    public void Kernel_worked_values()
    {
        Assert.Equal((NotifyResult)0x8006, Notifier.FromErrno(-5));
        Assert.Equal(-5, Notifier.ToErrno((NotifyResult)0x8006));
        Assert.Equal(NotifyResult.Ok, Notifier.FromErrno(0));
        Assert.Equal(-1, Notifier.ToErrno(NotifyResult.Bad)); // -EPERM
        Assert.Equal(0, Notifier.ToErrno(NotifyResult.Stop));
        Assert.Equal(0, Notifier.ToErrno(NotifyResult.Ok));
        Assert.Equal(0, Notifier.ToErrno(NotifyResult.Done));
        Assert.Equal(NotifyResult.Bad, Notifier.FromErrno(-Errno.EPERM));
    }

    [Fact]
    public void Enum_values_match_notifier_h()
    {
        Assert.Equal(0, (int)NotifyResult.Done);
        Assert.Equal(1, (int)NotifyResult.Ok);
        Assert.Equal(0x8000, (int)NotifyResult.StopMask);
        Assert.Equal(0x8001, (int)NotifyResult.Stop);
        Assert.Equal(0x8002, (int)NotifyResult.Bad);
    }

    [Fact]
    public void Every_errno_round_trips_and_stops()
    {
        Prop.ForAll(Gen.Choose(1, 4095).ToArbitrary(), (int e) =>
        {
            NotifyResult r = Notifier.FromErrno(-e);
            return Notifier.Stops(r) && Notifier.ToErrno(r) == -e;
        }).QuickCheckThrowOnFailure();
    }
}
