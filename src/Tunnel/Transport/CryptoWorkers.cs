using Microsoft.Extensions.Logging;
using Tunnel.Crypto;

namespace Tunnel.Transport;

/// <summary>
/// The threads that seal and open (wireguard-go's RoutineEncryption and RoutineDecryption, one set
/// shared by both directions): each takes jobs from the <see cref="CryptoPipeline"/> of every
/// stage, oldest batch first, and commits a batch when it finishes its last job. A reading thread
/// publishes a batch and goes on reading; it helps with older batches when it is ahead (see
/// <see cref="CryptoPipeline.Submit"/>). <c>workers</c> counts the reading thread, so 1 means no
/// extra thread (every job inline, the batch committed before the read returns to the TUN or
/// socket), and the default is one per processor. A worker with nothing to do spins a little
/// before it sleeps: batches come back to back under load, and a futex wake-up per batch costs
/// as much as sealing a few small packets.
/// </summary>
internal sealed class CryptoWorkers : IDisposable
{
    /// <summary>Fewer jobs than this are not worth a wake-up (a futex round trip costs more than a 64-byte seal).</summary>
    public const int MinParallelJobs = 4;

    /// <summary>How long an idle worker looks for work before it sleeps: a few batches' worth of
    /// the reader's serial work (prepare and commit of 64 packets take some 10-20 microseconds).</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 20_000; // 50 us

    private readonly object _gate = new();
    private readonly Thread[] _threads;
    private readonly List<CryptoPipeline> _pipelines = [];
    private CryptoPipeline[] _active = [];
    private readonly ILogger _log;
    private readonly long[] _allocated; // per worker thread, its own bytes allocated so far
    private int _sleepers;
    private long _failures;
    private long _wakeups;
    private volatile bool _stopping;

    public CryptoWorkers(int workers, ILogger log)
    {
        _log = log;
        Workers = workers <= 0 ? Environment.ProcessorCount : workers;
        _threads = new Thread[Workers - 1];
        _allocated = new long[Workers - 1];
    }

    /// <summary>Bytes the worker threads allocated (0 in steady state: the zero-allocation test).</summary>
    public long AllocatedBytes
    {
        get
        {
            long sum = 0;
            for (int i = 0; i < _allocated.Length; i++)
                sum += Volatile.Read(ref _allocated[i]);
            return sum;
        }
    }

    /// <summary>Threads that take jobs, the calling one included.</summary>
    public int Workers { get; }

    /// <summary>Jobs that threw (the message is dropped); any thread may read it.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Futex wake-ups of sleeping workers so far (how often a batch found none spinning).</summary>
    public long Wakeups => Interlocked.Read(ref _wakeups);

    /// <summary>A stage's pipeline, whose jobs the workers take from now on.</summary>
    public CryptoPipeline Register(IPipelineStage stage)
    {
        var pipeline = new CryptoPipeline(stage, this);
        lock (_gate)
        {
            _pipelines.Add(pipeline);
            _active = [.. _pipelines];
        }
        return pipeline;
    }

    /// <summary>Stops taking jobs from <paramref name="pipeline"/> (drained: nothing in flight).</summary>
    public void Unregister(CryptoPipeline pipeline)
    {
        lock (_gate)
        {
            _pipelines.Remove(pipeline);
            _active = [.. _pipelines];
        }
    }

    public void Start()
    {
        for (int i = 0; i < _threads.Length; i++)
        {
            int slot = i;
            _threads[i] = new Thread(() => Work(slot)) { IsBackground = true, Name = $"crypto-{i + 1}" };
            _threads[i].Start();
        }
    }

    /// <summary>A batch was published: wake the sleeping workers, if any (a worker that counted
    /// itself a sleeper after the publishing store is seen here, or it sees the work before it sleeps).</summary>
    internal void Wake()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sleepers) == 0)
            return;
        Interlocked.Increment(ref _wakeups);
        lock (_gate)
            Monitor.PulseAll(_gate);
    }

    /// <summary>A job or commit threw: it loses its message (or batch) alone; said once in a while.</summary>
    internal void CountFailure(Exception e)
    {
        if (Interlocked.Increment(ref _failures) % 1000 == 1)
            _log.LogError(e, "a crypto job failed ({Failures} so far)", Failures);
    }

    private void Work(int slot)
    {
        TransportAead.HoldKeysUntilScrub(); // scrubbed before each sleep
        long start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!_stopping)
            {
                if (TakeJobs())
                {
                    Volatile.Write(ref _allocated[slot], GC.GetAllocatedBytesForCurrentThread() - start);
                    continue;
                }
                // Batches come back to back under load: look again for a while before sleeping.
                long until = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                var spin = new SpinWait();
                while (!AnyWork() && System.Diagnostics.Stopwatch.GetTimestamp() < until)
                    spin.SpinOnce(sleep1Threshold: -1);
                if (AnyWork())
                    continue;
                TransportAead.ScrubThreadKeys();
                lock (_gate)
                {
                    Interlocked.Increment(ref _sleepers);
                    if (!AnyWork() && !_stopping)
                        Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
            }
        }
        finally
        {
            TransportAead.ScrubThreadKeys();
        }
    }

    private bool TakeJobs()
    {
        bool took = false;
        foreach (CryptoPipeline pipeline in Volatile.Read(ref _active))
        {
            while (pipeline.RunOne())
                took = true;
        }
        return took;
    }

    private bool AnyWork()
    {
        foreach (CryptoPipeline pipeline in Volatile.Read(ref _active))
        {
            if (pipeline.HasWork)
                return true;
        }
        return false;
    }

    /// <summary>Ends the workers (after the threads that run batches have stopped).</summary>
    public void Dispose()
    {
        _stopping = true;
        lock (_gate)
            Monitor.PulseAll(_gate);
        foreach (Thread thread in _threads)
            thread?.Join();
    }
}
