using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// Fork reaction: <c>ForkKernel.AddVmForkRandomness(id)</c> (the clone's vmgenid driver seeing a
/// new VM ID) until it returns, in Notifier and Both modes, with 1 and 1,000 established peers. In
/// that one call the kernel reseeds its generator, moves the generation and calls the PM chain;
/// the guard zeroes every key and queues the peers for the paced rekey (issue 12: the initiations
/// leave from the device's Tick, run by IterationCleanup here, outside the measurement). So the
/// figure is "notification to every key zeroed and the rekey queued";
/// <c>bench/Tunnel.Bench -- fork-timeline</c> times the initiations too.
/// </summary>
/// <remarks>
/// Before each iteration (outside the measurement): every peer gets a current keypair again, the
/// virtual clock moves 1 s (so the responder's flood limit does not hold any initiation back) and
/// the pull counter moves, as the hypervisor moves it before the clone runs. IterationCleanup
/// checks that every key was zeroed and every peer's initiation was sent.
/// </remarks>
[MemoryDiagnoser]
public class ForkReactionBenchmarks
{
    private GuardedDevice _device = null!;
    private Peer[] _peers = null!;
    private Keypair[] _old = null!;

    [Params(ForkGuardMode.Notifier, ForkGuardMode.Both)]
    public ForkGuardMode Mode { get; set; }

    [Params(1, 1_000)]
    public int Peers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _device = new GuardedDevice(Mode);
        _peers = _device.AddPeers(Peers);
        _old = new Keypair[Peers];
        // With an [IterationSetup] BenchmarkDotNet calls the benchmark only ~15 times, too few for
        // tiered JIT to promote the managed handshake code (BLAKE2s, HMAC, KDF): the 1-peer case
        // measured ~195 us of mostly tier-0 code instead of ~75 us. A second of forks first.
        long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        do
        {
            Establish();
            Fork();
            Check();
        }
        while (Stopwatch.GetTimestamp() < until);
    }

    [IterationSetup]
    public void Establish()
    {
        _device.InstallKeypairs(_peers);
        for (int i = 0; i < _peers.Length; i++)
            _old[i] = _peers[i].Keypairs.Current!;
        _device.ResumeAsClone();
    }

    [IterationCleanup]
    public void Check()
    {
        _device.DrainRekey(); // the paced rekey, as the host's timer thread would run it
        if (_device.Io.Initiations != Peers || Array.Exists(_old, k => !k.IsZeroed))
            throw new InvalidOperationException($"fork reaction incomplete: {_device.Io.Initiations} initiations for {Peers} peers");
        // The handshakes the reaction started would otherwise block the next iteration's keypairs.
        _device.A.ClearAllSessions();
    }

    [Benchmark]
    public void Fork() => _device.Notify();

    [GlobalCleanup]
    public void Cleanup() => _device.Dispose();
}
