using Microsoft.Extensions.Logging;
using Tunnel.Crypto;

namespace Tunnel.Transport;

/// <summary>The per-packet jobs of one <see cref="CryptoRound"/> (seal or open one message each).</summary>
internal interface ICryptoJobs
{
    /// <summary>Runs job <paramref name="index"/>; called once per job, on any thread, in any order.</summary>
    void RunJob(int index);
}

/// <summary>
/// One batch of crypto jobs handed to <see cref="CryptoWorkers"/>: the batch's own thread and the
/// workers claim jobs one at a time (per-packet jobs, as wireguard-go's encryption and decryption
/// workers take elements) until none is left. Reused batch after batch, so nothing is allocated.
/// </summary>
internal sealed class CryptoRound(ICryptoJobs jobs)
{
    // The job count in the high half, the next unclaimed job in the low half, so that a claim reads
    // both in one atomic step: a worker late from the previous batch can never claim a job twice.
    private long _state;
    private int _done;

    public ICryptoJobs Jobs { get; } = jobs;

    public bool HasWork
    {
        get
        {
            long state = Volatile.Read(ref _state);
            return (int)state < (int)(state >> 32);
        }
    }

    /// <summary>Opens the batch: jobs 0 to <paramref name="count"/> - 1 are ready to claim.</summary>
    public void Start(int count)
    {
        Volatile.Write(ref _done, 0);
        Interlocked.Exchange(ref _state, (long)count << 32);
    }

    public bool TryClaim(out int index)
    {
        index = 0;
        if (!HasWork)
            return false;
        long state = Interlocked.Increment(ref _state);
        index = (int)state - 1;
        return index < (int)(state >> 32);
    }

    public void Complete() => Interlocked.Increment(ref _done);

    /// <summary>Waits, spinning, for jobs claimed by other threads (each a microsecond or so).</summary>
    public void WaitDone(int count)
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _done) < count)
            spin.SpinOnce(sleep1Threshold: -1);
    }
}

/// <summary>
/// The threads that help seal and open (wireguard-go's RoutineEncryption and RoutineDecryption,
/// one set shared by both directions): a thread that has a batch (<see cref="Run"/>) works through
/// it itself and wakes the workers to take jobs from it too, then waits until every job is done.
/// The caller then writes the results in their order (per-peer order is never changed: it is the
/// order of the batch). <c>workers</c> counts the calling thread, so 1 means no extra thread (every
/// job inline, today's path), and the default is one per processor.
/// </summary>
internal sealed class CryptoWorkers : IDisposable
{
    /// <summary>Fewer jobs than this are not worth a wake-up (a futex round trip costs more than a 64-byte seal).</summary>
    private const int MinParallelJobs = 4;

    private readonly object _gate = new();
    private readonly Thread[] _threads;
    private readonly List<CryptoRound> _rounds = [];
    private CryptoRound[] _active = [];
    private readonly ILogger _log;
    private readonly long[] _allocated; // per worker thread, its own bytes allocated so far
    private int _sleepers;
    private long _failures;
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

    /// <summary>A batch some thread will <see cref="Run"/>; before <see cref="Start"/>.</summary>
    public CryptoRound Register(ICryptoJobs jobs)
    {
        var round = new CryptoRound(jobs);
        lock (_gate)
        {
            _rounds.Add(round);
            _active = [.. _rounds];
        }
        return round;
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

    /// <summary>Runs jobs 0 to <paramref name="count"/> - 1 of <paramref name="jobs"/>: on the calling
    /// thread alone when there is no <paramref name="round"/> (no workers, or one), else with the
    /// workers; returns when all are done.</summary>
    public static void Run(CryptoWorkers? workers, CryptoRound? round, ICryptoJobs jobs, int count)
    {
        if (workers is null || round is null)
        {
            for (int i = 0; i < count; i++)
                jobs.RunJob(i);
        }
        else
        {
            workers.Run(round, count);
        }
    }

    /// <summary>Runs jobs 0 to <paramref name="count"/> - 1 of <paramref name="round"/> and returns when all are done.</summary>
    public void Run(CryptoRound round, int count)
    {
        if (count == 0)
            return;
        round.Start(count);
        // Start's exchange is a full fence: a worker that counted itself a sleeper after it is
        // seen here, or it sees the work before it sleeps.
        if (count >= MinParallelJobs && Volatile.Read(ref _sleepers) > 0)
        {
            lock (_gate)
                Monitor.PulseAll(_gate);
        }
        while (round.TryClaim(out int index))
            RunJob(round, index);
        round.WaitDone(count);
    }

    private void RunJob(CryptoRound round, int index)
    {
        try
        {
            round.Jobs.RunJob(index);
        }
        catch (Exception e)
        {
            // A job that throws loses its message alone; the batch must still finish.
            if (Interlocked.Increment(ref _failures) % 1000 == 1)
                _log.LogError(e, "a crypto job failed ({Failures} so far)", Failures);
        }
        finally
        {
            round.Complete();
        }
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
                // Batches come back to back under load: look again a few times before sleeping.
                var spin = new SpinWait();
                while (!spin.NextSpinWillYield && !AnyWork())
                    spin.SpinOnce();
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
        foreach (CryptoRound round in Volatile.Read(ref _active))
        {
            while (round.TryClaim(out int index))
            {
                RunJob(round, index);
                took = true;
            }
        }
        return took;
    }

    private bool AnyWork()
    {
        foreach (CryptoRound round in Volatile.Read(ref _active))
        {
            if (round.HasWork)
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
