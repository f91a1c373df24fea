using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Tests.Noise;

namespace Tunnel.Tests.Guard;

/// <summary>
/// A <see cref="DevicePair"/> whose device A runs in a guest kernel (its randomness is the
/// kernel's fork-safe generator) under a <see cref="ForkGuard"/>. The pull counter is a separate
/// word the "hypervisor" moves (as a vmgenid CTRA page), so tests can move it without a
/// notification, or notify through <see cref="Fork"/>, which moves it first as a real VMM does.
/// </summary>
internal sealed class GuardedPair : IDisposable
{
    private byte _vmId = 1;

    public GuardedPair(ForkGuardMode mode, int seed = 1)
    {
        Kernel = new ForkKernel(new byte[32], entropy: new SeededRandom(seed + 5000));
        Kernel.SetBootVmId(VmId(_vmId));
        Pair = new DevicePair(seed, randomA: Kernel.Random);
        bool hotPath = mode is ForkGuardMode.HotPath or ForkGuardMode.Both;
        Guard = new ForkGuard(Pair.A, Kernel, mode, hotPath ? Counter : null);
    }

    public ForkKernel Kernel { get; }
    public DevicePair Pair { get; }
    public ForkGuard Guard { get; }

    /// <summary>The hypervisor-updated pull counter (moved before the guest runs again).</summary>
    public TrippingCounter Counter { get; } = new(7);

    public TunnelDevice A => Pair.A;
    public Peer PeerB => Pair.PeerB;

    /// <summary>
    /// A second later (so the responder's 20 ms initiation flood limit is not what a test measures),
    /// the VMM restores this guest as a clone: counter first, then (here at once) the notification,
    /// then the host's timer thread, which the queued rekey wakes (<see cref="TimerTick"/>).
    /// </summary>
    public void Fork()
    {
        Pair.Clock.Advance(TimeSpan.FromSeconds(1));
        Counter.Advance();
        Kernel.AddVmForkRandomness(VmId(++_vmId));
        TimerTick();
    }

    /// <summary>What the host's timer thread does when woken: the device's timers and paced rekey, now.</summary>
    public void TimerTick() => A.Tick();

    /// <summary>A second later, the hypervisor moves the pull counter; no notification (yet).</summary>
    public void MoveCounter()
    {
        Pair.Clock.Advance(TimeSpan.FromSeconds(1));
        Counter.Advance();
    }

    public void Send(uint sequence, int length = 100) =>
        A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, sequence, length));

    public static byte[] VmId(byte n)
    {
        byte[] id = new byte[16];
        id[0] = n;
        return id;
    }

    public void Dispose()
    {
        Guard.Dispose();
        Pair.Dispose();
    }
}
