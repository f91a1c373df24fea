using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>
/// Issue 12: after a fork the guard zeroes every key at once, and the rekey is paced from the
/// device's Tick (the host's timer thread): peers with traffic first, one slot at a time, and
/// never two initiations to one peer inside the responder's flood limit. A hub (device A, under a
/// guard in a guest kernel) with real responders, one device each, in virtual time.
/// </summary>
public sealed class PacedRekeyTests
{
    private const int Responders = 12;
    private static readonly byte[] AddressA = [10, 9, 0, 1];

    private sealed class Hub : IDisposable
    {
        public VirtualClock Clock { get; } = new();
        public RecordingIo IoA { get; } = new();
        public ForkKernel Kernel { get; } = new(new byte[32], entropy: new SeededRandom(77));
        public TunnelDevice A { get; }
        public ForkGuard Guard { get; }
        public Peer[] Peers { get; } = new Peer[Responders];
        public TunnelDevice[] B { get; } = new TunnelDevice[Responders];
        public RecordingIo[] IoB { get; } = new RecordingIo[Responders];
        public Endpoint[] EndpointB { get; } = new Endpoint[Responders];
        /// <summary>Every initiation A put on the wire: (virtual time, responder).</summary>
        public List<(long Nanos, int Responder)> Initiations { get; } = [];
        public Endpoint EndpointA { get; } = DevicePair.Parse("192.0.2.1:51820");
        private byte _vmId = 1;

        public Hub()
        {
            Kernel.SetBootVmId(GuardedPair.VmId(_vmId));
            A = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = Kernel.Random, Name = "hub" }, IoA);
            var keys = new SeededRandom(4242);
            byte[] secret = new byte[32];
            keys.Fill(secret);
            A.SetPrivateKey(secret);
            byte[] publicA = new byte[32], publicB = new byte[32];
            A.CopyPublicKey(publicA);
            for (int i = 0; i < Responders; i++)
            {
                IoB[i] = new RecordingIo();
                B[i] = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = new SeededRandom(100 + i) }, IoB[i]);
                keys.Fill(secret);
                B[i].SetPrivateKey(secret);
                B[i].CopyPublicKey(publicB);
                EndpointB[i] = DevicePair.Parse($"192.0.2.{10 + i}:51821");
                Peers[i] = A.AddPeer(publicB);
                Peers[i].Endpoint = EndpointB[i];
                A.AllowedIps.Insert(Address(i), 32, Peers[i]);
                Peer hub = B[i].AddPeer(publicA);
                hub.Endpoint = EndpointA;
                B[i].AllowedIps.Insert(AddressA, 32, hub);
            }
            Guard = new ForkGuard(A, Kernel, ForkGuardMode.Notifier);
        }

        public static byte[] Address(int i) => [10, 9, 1, (byte)(10 + i)];

        public void Send(int i) => A.SendPacket(DevicePair.Packet(AddressA, Address(i), 1, 80));

        /// <summary>Sessions with the first <paramref name="count"/> responders, a quiet second
        /// later, and no initiation noted yet.</summary>
        public void StartSessions(int count)
        {
            for (int i = 0; i < count; i++)
                Send(i);
            Pump();
            Clock.Advance(TimeSpan.FromSeconds(1));
            Initiations.Clear();
        }

        /// <summary>Removes responder <paramref name="i"/>'s peer from the hub.</summary>
        public void Remove(int i)
        {
            byte[] key = new byte[32];
            Peers[i].CopyPublicKey(key);
            Assert.True(A.RemovePeer(key));
        }

        public void Fork()
        {
            Kernel.AddVmForkRandomness(GuardedPair.VmId(++_vmId));
        }

        /// <summary>Delivers everything in flight until quiet, noting A's initiations.</summary>
        public void Pump()
        {
            bool any = true;
            while (any)
            {
                any = false;
                foreach (Datagram d in IoA.TakeSent())
                {
                    int i = Array.IndexOf(EndpointB, d.To);
                    if (d.Type == MessageType.Initiation)
                        Initiations.Add((Clock.MonotonicNanos, i));
                    B[i].ReceiveDatagram(d.Bytes, EndpointA);
                    any = true;
                }
                for (int i = 0; i < Responders; i++)
                {
                    foreach (Datagram d in IoB[i].TakeSent())
                    {
                        A.ReceiveDatagram(d.Bytes, EndpointB[i]);
                        any = true;
                    }
                }
            }
        }

        /// <summary>The host's timer thread, every <paramref name="step"/>, for <paramref name="total"/>.</summary>
        public void Run(TimeSpan total, TimeSpan step, Action? each = null)
        {
            long end = Clock.MonotonicNanos + total.Ticks * 100;
            while (Clock.MonotonicNanos < end)
            {
                A.Tick();
                Pump();
                each?.Invoke();
                Clock.Advance(step);
            }
        }

        public void Dispose()
        {
            Guard.Dispose();
            A.Dispose();
            foreach (TunnelDevice b in B)
                b.Dispose();
        }
    }

    [Fact]
    public void The_post_fork_rekey_starts_with_the_peers_that_had_traffic_and_never_floods_one_responder()
    {
        using var hub = new Hub();
        for (int i = 0; i < Responders; i++)
            hub.Send(i);
        hub.Pump();
        Assert.All(hub.Peers, p => Assert.NotNull(p.Keypairs.Current));
        hub.Clock.Advance(TimeSpan.FromSeconds(2)); // less than KEEPALIVE + REKEY_TIMEOUT: no timer due
        // Traffic on three peers, 9 the most recent; the others have sessions but were quiet.
        foreach (int i in new[] { 7, 3, 9 })
        {
            hub.Send(i);
            hub.Pump();
            hub.Clock.Advance(TimeSpan.FromMilliseconds(100));
        }
        hub.Initiations.Clear();

        hub.Fork();
        // Keys are zeroed on the notifier's thread, and it sends nothing itself: the rekey is paced.
        Assert.All(hub.Peers, p => Assert.Null(p.Keypairs.Current));
        Assert.Empty(hub.IoA.Sent);

        // The last peer in the queue sends a packet: it must not wait for its slot.
        long forkAt = hub.Clock.MonotonicNanos;
        hub.Send(11);
        hub.Pump();
        // The fork is signalled a second time 5 ms later (vmgenid, then the virtio-rng leak): every
        // peer is queued again, while some initiations of the first round are not 20 ms old.
        hub.Run(TimeSpan.FromMilliseconds(5), TimeSpan.FromMicroseconds(50));
        hub.Fork();
        hub.Run(TimeSpan.FromMilliseconds(100), TimeSpan.FromMicroseconds(50));

        string trace = string.Join(" ", hub.Initiations.Select(x => $"{(x.Nanos - forkAt) / 1000}us:{x.Responder}"));
        Assert.Equal((forkAt, 11), hub.Initiations[0]);
        // Then the pacer: traffic first, newest first; then the rest in the order they were added.
        Assert.True(hub.Initiations.Skip(1).Take(6).Select(x => x.Responder).SequenceEqual([9, 3, 7, 0, 1, 2]), trace);
        // Paced: one per slot, not all at the notification.
        Assert.True(hub.Initiations[2].Nanos > hub.Initiations[1].Nanos, "two initiations in one slot");
        // Never two initiations to one responder inside its flood limit (it would refuse the second).
        foreach (IGrouping<int, (long Nanos, int Responder)> peer in hub.Initiations.GroupBy(x => x.Responder))
        {
            long[] times = peer.Select(x => x.Nanos).ToArray();
            for (int k = 1; k < times.Length; k++)
                Assert.True(times[k] - times[k - 1] >= Constants.InitiationMinIntervalNanos,
                    $"responder {peer.Key}: initiations {(times[k] - times[k - 1]) / 1000} us apart");
        }
        // Every peer has a session again, on the initiations the pacer sent.
        Assert.All(hub.Peers, p => Assert.NotNull(p.Keypairs.Current));
        Assert.Equal(0, hub.A.Rekey.Pending);
    }

    [Fact]
    public void Peers_without_a_session_are_not_rekeyed_and_a_removed_peer_is_skipped()
    {
        using var hub = new Hub();
        hub.StartSessions(4);

        hub.Fork();
        hub.Remove(2);
        hub.Run(TimeSpan.FromMilliseconds(50), TimeSpan.FromMicroseconds(50));

        Assert.Equal([0, 1, 3], hub.Initiations.Select(x => x.Responder).Order());
    }

    [Fact]
    public void The_pacer_lets_go_of_removed_peers_before_their_slot()
    {
        using var hub = new Hub();
        hub.StartSessions(Responders);

        hub.Fork();
        Assert.Equal(Responders, hub.A.Rekey.Pending);
        for (int i = 0; i < Responders / 2; i++)
            hub.Remove(i);
        // Half the queue removed: the queue holds only the peers still in the device.
        Assert.Equal(Responders / 2, hub.A.Rekey.Pending);
        hub.Run(TimeSpan.FromMilliseconds(50), TimeSpan.FromMicroseconds(50));
        Assert.Equal(Enumerable.Range(Responders / 2, Responders / 2), hub.Initiations.Select(x => x.Responder).Order());
    }

    [Fact]
    public void Every_key_is_zeroed_when_the_notification_returns_or_when_the_last_reader_leaves()
    {
        using var hub = new Hub();
        hub.StartSessions(Responders);
        Keypair[] before = [.. hub.Peers.Select(p => p.Keypairs.Current!)];
        Assert.All(before, k => Assert.False(k.KeysZeroed));

        // No data thread inside a section: zeroed before the notification returns (the guard
        // retires every keypair inside one section and reclaims them all as it leaves).
        hub.Fork();
        Assert.All(before, k => Assert.True(k.KeysZeroed));
        Assert.Equal(0, hub.A.Rcu.Waiting);

        // A data thread inside a section when the fork lands may still hold a keypair: those wait
        // for it, and its leaving zeroes them.
        hub.Run(TimeSpan.FromMilliseconds(100), TimeSpan.FromMicroseconds(50));
        Keypair[] second = [.. hub.Peers.Select(p => p.Keypairs.Current!)];
        Assert.All(second, k => Assert.False(k.KeysZeroed));
        using (var entered = new ManualResetEventSlim())
        using (var leave = new ManualResetEventSlim())
        {
            var reader = new Thread(() =>
            {
                using (hub.A.Rcu.ReadLock())
                {
                    entered.Set();
                    leave.Wait();
                }
            });
            reader.Start();
            entered.Wait();
            hub.Fork();
            Assert.All(second, k => Assert.True(k.IsZeroed)); // retired: nothing sealed or accepted under them
            Assert.Contains(second, k => !k.KeysZeroed);
            leave.Set();
            reader.Join();
        }
        Assert.All(second, k => Assert.True(k.KeysZeroed));
    }
}
