using System.Reflection;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>
/// Issue 10: CaptureState copies the device field by field, so a new field that the capture does not
/// copy would silently survive a snapshot in the original and be missing in every clone. This test
/// lists every instance field of the captured types (reflection, backing fields included) and
/// fails on one that is neither copied by the capture nor declared as host-provided here. Adding a
/// field therefore means deciding, in one place, which of the two it is.
/// </summary>
public sealed class CaptureCoverageTests
{
    // Copied by Snapshot.cs (TunnelDevice.CaptureState / Peer.Capture / CaptureKeypair).
    private static readonly Dictionary<Type, string[]> Captured = new()
    {
        [typeof(TunnelDevice)] =
        [
            "<AllowedIps>k__BackingField", "<Fork>k__BackingField", "<Fwmark>k__BackingField", "<Indexes>k__BackingField",
            "<ListenPort>k__BackingField", "<Mtu>k__BackingField", "_cookieChecker", "_forceUnderLoad",
            "_loadWindowCount", "_loadWindowStart", "_peerList", "_privateKey", "_rateLimiter", "_underLoadUntil",
        ],
        [typeof(Peer)] =
        [
            "<Keypairs>k__BackingField", "_cookieGenerator", "_endpoint", "_handshake", "_handshakeAttempts",
            "_handshakeDeferred", "_handshakeGeneration", "_handshakeIndex", "_hasEndpoint", "_hasSentHandshake",
            "_initiationNotBeforeNanos", "_lastHandshakeUtcTicks", "_lastTrafficNanos", "_lastSentHandshakeNanos", "_lastSentTimestamp",
            "_needAnotherKeepalive", "_newHandshakeDeadline", "_persistentKeepaliveDeadline",
            "_persistentKeepaliveInterval", "_presharedKey", "_publicKey", "_retransmitHandshakeDeadline", "_rxBytes",
            "_sendKeepaliveDeadline", "_sentLastMinuteHandshake", "_staged", "_txBytes", "_zeroKeyMaterialDeadline",
        ],
        [typeof(Keypair)] =
        [
            "<CreatedGeneration>k__BackingField", "<CreatedNanos>k__BackingField", "<ReplayFilter>k__BackingField",
            "_canSend", "_keys", "_sendNonce",
            "_retired", // folded into CanSend: a retired keypair is restored unable to send
        ],
        [typeof(ForkSeam)] = ["_gate", "_held", "_reseededGeneration", "_staleKeyDrops"],
    };

    // Not guest state, or state the capture reaches through another captured object (with why).
    private static readonly Dictionary<Type, string[]> NotCaptured = new()
    {
        [typeof(TunnelDevice)] =
        [
            // The host's: a restored VM gets the host's clock, randomness, I/O and logs.
            "<Clock>k__BackingField", "<Io>k__BackingField", "<Name>k__BackingField", "<Random>k__BackingField", "_logger",
            "_configLock", "_loadLock", // locks
            "_peers", "_identity", // rebuilt by AddPeer and SetPrivateKey from what is captured
            "<Rcu>k__BackingField", // the host's data threads and their read-side sections
            // Work queued at a fork: a restored device is forked again and its own guard queues the
            // peers that had a session (RekeyPacer's remarks).
            "<Rekey>k__BackingField",
            "<TimersBroughtForward>k__BackingField", // the host's timer loop's wake-up
            "<Timers>k__BackingField", // derived from the captured deadlines: rebuilt as each peer is restored
            "_handshakesCompleted", // the host's log asks whether it moved; each peer's time is captured
        ],
        [typeof(Peer)] =
        [
            "_device", "_lock",
            "_endpointSequence", // the seqlock over _endpoint, which is captured
            "_removed", // a removed peer is not in the peer list, so never captured
            "NextInDevice", "PreviousInDevice", // the peer list's links: captured as the order of the captured peers
            // The timer queue's bookkeeping: derived from the captured deadlines, rebuilt on restore
            // (the tie-break order follows the restore order, which is the captured peer order).
            "TimerDueAt", "TimerOrder", "TimerSlot",
        ],
        [typeof(Keypair)] =
        [
            "<Peer>k__BackingField", // the peer it is restored into
            "_keysZeroed", // the host's deferred zeroing; the restored keypair gets fresh key buffers
        ],
        [typeof(ForkSeam)] =
        [
            "_counter", // the hypervisor's word: the host provides it
            "<TwoReadsForTest>k__BackingField", // a test switch
        ],
    };

    [Theory]
    [InlineData(typeof(TunnelDevice))]
    [InlineData(typeof(Peer))]
    [InlineData(typeof(Keypair))]
    [InlineData(typeof(ForkSeam))]
    public void Every_field_is_captured_or_declared_host_provided(Type type)
    {
        string[] fields = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            .Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();
        string[] missing = fields.Except(Captured[type]).Except(NotCaptured[type]).ToArray();
        Assert.True(missing.Length == 0,
            $"{type.Name}: fields neither captured nor declared host-provided: {string.Join(", ", missing)}");
        string[] gone = Captured[type].Concat(NotCaptured[type]).Except(fields).ToArray();
        Assert.True(gone.Length == 0, $"{type.Name}: listed fields that no longer exist: {string.Join(", ", gone)}");
    }
}
