using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>
/// CaptureState/RestoreState copy everything a VM snapshot copies: two devices restored from one
/// capture and fed the same inputs emit the same bytes, (key, nonce) reuse included. That is the
/// danger the fork guard exists for, shown without it.
/// </summary>
public sealed class CaptureRestoreTests
{
    private static bool IsZero(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyExcept((byte)0) < 0;

    /// <summary>A pair mid-traffic: a session, a rekey (so previous and current exist), data both ways, a cookie, staged packets.</summary>
    private static DevicePair MidTraffic()
    {
        var pair = new DevicePair(seed: 21);
        pair.A.ListenPort = 51820;
        pair.A.Fwmark = 0x42;
        pair.PeerB.PersistentKeepaliveInterval = 25;
        byte[] psk = new byte[32];
        psk[5] = 9;
        pair.PeerB.SetPresharedKey(psk);
        pair.PeerA.SetPresharedKey(psk);
        pair.A.AllowedIps.Insert(new byte[] { 10, 77, 0, 0 }, 16, pair.PeerB);
        pair.Handshake();
        for (uint i = 0; i < 50; i++)
        {
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, 100 + (int)i));
            pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, i, 90));
            pair.Pump();
            pair.Clock.Advance(TimeSpan.FromSeconds(3));
            pair.A.Tick();
            pair.B.Tick();
            pair.Pump();
        }
        Assert.NotNull(pair.PeerB.Keypairs.Previous);
        return pair;
    }

    private static TunnelDevice Fresh(DevicePair pair, IDeviceIo io, int seed = 500) =>
        new(new DeviceOptions { Clock = pair.Clock, Random = new SeededRandom(seed) }, io);

    /// <summary>The same inputs for a device standing in for A: packets to send, datagrams from B, time.</summary>
    private static void Drive(TunnelDevice device, IReadOnlyList<byte[]> fromB)
    {
        for (uint i = 0; i < 20; i++)
            device.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1000 + i, 200));
        foreach (byte[] datagram in fromB)
            device.ReceiveDatagram(datagram, DevicePair.EndpointB);
        device.SendPacket(DevicePair.Packet(DevicePair.AddressA, new byte[] { 10, 77, 3, 4 }, 7, 64));
    }

    [Fact]
    public void Two_devices_restored_from_one_capture_emit_identical_bytes_and_so_reuse_nonces()
    {
        using DevicePair pair = MidTraffic();
        // Datagrams B sends next, recorded once, fed to both clones.
        for (uint i = 0; i < 5; i++)
            pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 500 + i, 120));
        List<byte[]> fromB = pair.IoB.TakeSent().Select(d => d.Bytes).ToList();

        using TunnelDeviceState state = pair.A.CaptureState();
        var io1 = new RecordingIo();
        var io2 = new RecordingIo();
        using TunnelDevice c1 = Fresh(pair, io1);
        using TunnelDevice c2 = Fresh(pair, io2);
        c1.RestoreState(state);
        c2.RestoreState(state);

        // A restore reproduces the captured state exactly (secrets included) ...
        Assert.Equal(pair.A.StateDigest(), c1.StateDigest());
        using (TunnelDeviceState again = c1.CaptureState())
            Assert.Equal(state.Digest(), again.Digest());

        Drive(c1, fromB);
        Drive(c2, fromB);

        // ... and behaviour: the same bytes out, in the same order.
        Assert.NotEmpty(io1.Sent);
        Assert.Equal(io1.Sent.Count, io2.Sent.Count);
        for (int i = 0; i < io1.Sent.Count; i++)
        {
            Assert.Equal(io1.Sent[i].Bytes, io2.Sent[i].Bytes);
            Assert.Equal(io1.Sent[i].To, io2.Sent[i].To);
        }
        Assert.Equal(5, io1.Delivered.Count);
        Assert.Equal(io1.Delivered, io2.Delivered);
        // Exactly the catastrophe: the same (receiver index, counter) twice on the wire.
        Datagram t1 = io1.Sent.First(d => d.Type == MessageType.Transport);
        Assert.Equal(MessageTransport.Counter(t1.Bytes), MessageTransport.Counter(io2.Sent.First(d => d.Type == MessageType.Transport).Bytes));
        // The routing came along too: 10.77.3.4 is B's via the extra /16.
        Assert.Equal(21, io1.Sent.Count(d => d.Type == MessageType.Transport));
    }

    [Fact]
    public void The_original_continues_unaffected_by_a_capture()
    {
        using DevicePair pair = MidTraffic();
        byte[] before = pair.A.StateDigest();
        TunnelDeviceState state = pair.A.CaptureState();
        Assert.Equal(before, pair.A.StateDigest());

        // Disposing the state zeroes the state's copies, never the device's keys.
        state.Dispose();
        Assert.False(IsZero(pair.PeerB.Keypairs.Current!.SendKey));
        for (uint i = 0; i < 10; i++)
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 900 + i, 100));
        pair.Pump();
        Assert.Equal(Enumerable.Range(900, 10).Select(i => (uint?)i), pair.IoB.Delivered.TakeLast(10).Select(DevicePair.ReadIntact));
    }

    [Fact]
    public void Restoring_replaces_everything_a_device_had()
    {
        using DevicePair pair = MidTraffic();
        using TunnelDeviceState state = pair.A.CaptureState();
        // Restore over a device that already has its own, different life.
        using DevicePair other = MidTraffic();
        other.A.RestoreState(state);
        Assert.Equal(pair.A.StateDigest(), other.A.StateDigest());
        using TunnelDeviceState again = other.A.CaptureState();
        Assert.Equal(state.Digest(), again.Digest());
        Assert.Equal(51820, other.A.ListenPort);
        Assert.Equal(0x42u, other.A.Fwmark);
    }

    [Fact]
    public void Dispose_zeroes_every_key_the_state_holds_and_a_disposed_state_cannot_be_restored()
    {
        using DevicePair pair = MidTraffic();
        TunnelDeviceState state = pair.A.CaptureState();
        PeerCapture peer = Assert.Single(state.Peers);
        KeypairCapture current = peer.Current!;
        Assert.False(IsZero(state.PrivateKey));
        Assert.False(IsZero(current.SendKey));
        Assert.False(IsZero(current.ReceiveKey));
        Assert.False(IsZero(peer.Previous!.SendKey));
        Assert.False(IsZero(peer.PresharedKey));

        state.Dispose();

        Assert.True(IsZero(state.PrivateKey));
        Assert.True(IsZero(current.SendKey));
        Assert.True(IsZero(current.ReceiveKey));
        Assert.True(IsZero(peer.Previous!.SendKey));
        Assert.True(IsZero(peer.Previous!.ReceiveKey));
        Assert.True(IsZero(peer.PresharedKey));
        Assert.True(IsZero(state.CookieSecret));
        Assert.True(IsZero(peer.Cookie));
        Assert.DoesNotContain("SendKey", state.ToString());
        using TunnelDevice fresh = Fresh(pair, new RecordingIo());
        Assert.Throws<ObjectDisposedException>(() => fresh.RestoreState(state));
        Assert.Throws<ArgumentNullException>(() => fresh.RestoreState(null!));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_restored_clone_under_the_hot_path_sends_nothing_under_the_captured_keys(bool guardAfterRestore)
    {
        using DevicePair pair = MidTraffic();
        var counter = new VmGeneration(10);
        var kernel = new ForkKernel(new byte[32], entropy: new SeededRandom(1));
        using (var guard = new ForkGuard(pair.A, kernel, ForkGuardMode.HotPath, counter))
        {
            // Rekey under the guard, so the keypair carries the counter.
            pair.PeerB.ExpireCurrentKeypairs();
            pair.PeerB.InitiateHandshake();
            pair.Pump();
            Assert.Equal(10ul, pair.PeerB.Keypairs.Current!.CreatedGeneration);
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));

            Assert.Equal(0, pair.A.Fork.StaleKeyDrops);
            using TunnelDeviceState state = pair.A.CaptureState();

            // The clone's own kernel and counter: the hypervisor moved the counter before resume.
            var cloneKernel = new ForkKernel(new byte[32], entropy: new SeededRandom(2));
            var cloneCounter = new VmGeneration(11);
            var io = new RecordingIo();
            using TunnelDevice clone = Fresh(pair, io);
            // A clone resumes later than its snapshot was taken (and so after the responder's
            // 1/50 s limit on initiations from one peer has passed).
            pair.Clock.Advance(TimeSpan.FromSeconds(1));
            ForkGuard? cloneGuard = null;
            if (!guardAfterRestore)
                cloneGuard = new ForkGuard(clone, cloneKernel, ForkGuardMode.HotPath, cloneCounter);
            clone.RestoreState(state);
            cloneGuard ??= new ForkGuard(clone, cloneKernel, ForkGuardMode.HotPath, cloneCounter);
            using ForkGuard disposeGuard = cloneGuard;
            Assert.False(clone.Fork.TryBeginHandshake(out _)); // the guest's memory says: reseeded for 10

            clone.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 2, 100));
            Assert.Empty(io.Sent);
            Assert.Equal(1, clone.Fork.StaleKeyDrops);

            cloneKernel.SetBootVmId(new byte[16]);
            cloneKernel.AddVmForkRandomness(GuardedPair.VmId(1));
            clone.Tick(); // the host timer thread: the rekey is paced from Tick
            Assert.Equal(MessageType.Initiation, Assert.Single(io.Sent).Type);
        }
    }
}
