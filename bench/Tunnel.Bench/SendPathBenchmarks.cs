using BenchmarkDotNet.Attributes;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// The per-packet send path with each fork-guard mode: <see cref="TunnelDevice.SendPacket"/> of one
/// inner IPv4 packet to the one established peer (allowed-IPs lookup, nonce, padding, seal, the
/// hot-path check in HotPath and Both, then <see cref="IDeviceIo.SendDatagram"/>, which discards).
/// The difference between Off and HotPath is the price of the check; Notifier adds nothing to
/// this path (it acts only on a notification), so it should equal Off.
/// </summary>
/// <remarks>
/// GlobalSetup runs a real handshake with a second device, so the keypair is the engine's own.
/// The clock is virtual and never moves: REKEY_AFTER_TIME cannot start a handshake mid-run, and
/// every packet takes the steady-state path. Sizes are the whole inner packet (64, 512 and 1420 =
/// the default MTU); each is padded to 16 and sealed, so the datagram is 32 bytes longer.
/// </remarks>
[MemoryDiagnoser]
public class SendPathBenchmarks
{
    private GuardedDevice _device = null!;
    private Peer _peer = null!;
    private byte[] _packet = null!;

    [Params(ForkGuardMode.Off, ForkGuardMode.Notifier, ForkGuardMode.HotPath, ForkGuardMode.Both)]
    public ForkGuardMode Mode { get; set; }

    [Params(64, 512, 1420)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _device = new GuardedDevice(Mode);
        _peer = _device.EstablishWithB();
        _packet = GuardedDevice.Packet(Size);
        // Every packet must reach the discarding socket, under the same keypair, checked or not.
        Keypair keypair = _peer.Keypairs.Current!;
        _device.Io.ResetCounts();
        for (int i = 0; i < 16; i++)
            SendPacket();
        if (_device.Io.Sent != 16 || !ReferenceEquals(_peer.Keypairs.Current, keypair) || _device.A.Fork.StaleKeyDrops != 0)
            throw new InvalidOperationException($"send path not in steady state: {_device.Io.Sent} of 16 sent");
    }

    [Benchmark]
    public void SendPacket() => _device.A.SendPacket(_packet);

    [GlobalCleanup]
    public void Cleanup() => _device.Dispose();
}
