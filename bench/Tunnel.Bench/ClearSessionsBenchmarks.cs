using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using ForkNotify;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// Clearing every session of 1, 1,000 and 100,000 peers, each with a current keypair: the work a
/// fork, suspend or hibernate notification does before anything else. <see cref="ClearAllSessions"/>
/// is the device's method (per peer: lock, clear the handshake, free three slots, zero the keys,
/// free the index; then the pending-transmit sweep). <see cref="GuardSuspendPrepare"/> is the
/// fork guard's whole clearing path as the PM chain calls it (SuspendPrepare: who had a session,
/// clear, restart the initiation spacing, acknowledge the watcher), without the rekey that
/// PostVmFork adds (that costs one initiation per peer: see <see cref="ForkReactionBenchmarks"/>).
/// </summary>
/// <remarks>
/// The keypairs are installed directly (<see cref="GuardedDevice.InstallKeypairs"/>) before each
/// iteration, and each iteration is one clear: BenchmarkDotNet runs one invocation per iteration
/// with an [IterationSetup], so the 1-peer case (a few microseconds) is near the timer's
/// resolution and its figure is an upper bound. Mode Notifier: the hot-path counter plays no part here.
/// </remarks>
[MemoryDiagnoser]
public class ClearSessionsBenchmarks
{
    private GuardedDevice _device = null!;
    private Peer[] _peers = null!;

    [Params(1, 1_000, 100_000)]
    public int Peers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _device = new GuardedDevice(ForkGuardMode.Notifier);
        _peers = _device.AddPeers(Peers);
        // With an [IterationSetup] BenchmarkDotNet calls the benchmark only ~15 times, too few for
        // tiered JIT to promote the code under it: without this the small cases measure tier-0
        // code, which a long-running daemon would not run. A second of both operations first.
        long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        do
        {
            Establish();
            ClearAllSessions();
            Establish();
            GuardSuspendPrepare();
        }
        while (Stopwatch.GetTimestamp() < until);
    }

    [IterationSetup]
    public void Establish()
    {
        _device.InstallKeypairs(_peers);
        _device.Clock.Advance(TimeSpan.FromSeconds(1));
    }

    [IterationCleanup]
    public void Check()
    {
        foreach (Peer peer in _peers)
        {
            if (peer.Keypairs.Current is not null)
                throw new InvalidOperationException("a session survived the clear");
        }
    }

    [Benchmark]
    public void ClearAllSessions() => _device.A.ClearAllSessions();

    [Benchmark]
    public void GuardSuspendPrepare() => _device.Kernel.Pm.CallChain(PmEvent.SuspendPrepare);

    [GlobalCleanup]
    public void Cleanup() => _device.Dispose();
}
