namespace Tunnel.Transport;

/// <summary>What a <see cref="CryptoPipeline"/> runs: a stage's per-packet jobs and its in-order commit.</summary>
internal interface IPipelineStage
{
    /// <summary>Seals or opens message <paramref name="index"/> of the batch in <paramref name="slot"/>;
    /// once per job, on any thread, in any order.</summary>
    void RunJob(int slot, int index);

    /// <summary>Writes the batch in <paramref name="slot"/> to the wire or the TUN device, every job
    /// of it done; batch after batch in the order they were published, one thread at a time.</summary>
    void CommitBatch(int slot);
}

/// <summary>
/// A stage's batches in flight, as wireguard-go's encryption queue and per-peer sequential queue
/// are: the reading thread fills slot after slot in order and publishes each
/// (<see cref="Submit"/>); the <see cref="CryptoWorkers"/> (and the reading thread, when it has
/// time) claim their jobs a few at a time (<see cref="CryptoBatch.ClaimSize"/>), oldest batch first; the thread that finishes a batch's
/// last job commits it, and any later batch already finished, strictly in the order they were
/// published. So the reader goes on with batch N+1 while batch N is sealed, nobody waits for a
/// job another thread holds, and a peer's packets keep their order. Nothing is allocated.
/// </summary>
internal sealed class CryptoPipeline
{
    /// <summary>Batches in flight: enough for the reader to stay ahead of the workers by a few reads.</summary>
    public const int Slots = 4;

    private readonly IPipelineStage _stage;
    private readonly CryptoBatch[] _batches = new CryptoBatch[Slots];
    private readonly CryptoWorkers? _workers;
    private long _failures;
    // Batches published and committed so far (the next slot to fill is _published % Slots);
    // each on its own cache line, since the reader writes one and the committers the other.
    private PaddedCounter _published;
    private PaddedCounter _committed;
    private int _committing; // 1 while a thread commits; taken and given back with a full fence

    /// <param name="workers">The threads that take jobs besides the reader; null: the reader alone.</param>
    public CryptoPipeline(IPipelineStage stage, CryptoWorkers? workers)
    {
        _stage = stage;
        _workers = workers;
        for (int i = 0; i < Slots; i++)
            _batches[i] = new CryptoBatch();
    }

    /// <summary>Jobs and commits that threw (their message, or what was left of the batch, is dropped).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>The jobs of the batch in <paramref name="slot"/> (for its commit).</summary>
    public int JobCount(int slot) => _batches[slot].Count;

    /// <summary>Batches published and not committed yet.</summary>
    public int InFlight => (int)(Volatile.Read(ref _published.Value) - Volatile.Read(ref _committed.Value));

    /// <summary>True while some published job is unclaimed.</summary>
    public bool HasWork
    {
        get
        {
            long committed = Volatile.Read(ref _committed.Value), published = Volatile.Read(ref _published.Value);
            for (long b = committed; b < published; b++)
            {
                if (_batches[b % Slots].HasWork)
                    return true;
            }
            return false;
        }
    }

    /// <summary>The reader's next slot to fill, once free: it runs jobs meanwhile, and waits
    /// (spinning) only when every slot is held by a job of another thread.</summary>
    public int NextSlot()
    {
        if (InFlight == Slots)
        {
            var spin = new SpinWait();
            while (InFlight == Slots)
                RunOneOrWait(ref spin);
        }
        return (int)(Volatile.Read(ref _published.Value) % Slots);
    }

    /// <summary>
    /// Publishes the slot <see cref="NextSlot"/> named, with its <paramref name="count"/> jobs (at
    /// least one), then does the reader's share (<see cref="Help"/>): a batch worth a wake-up is
    /// left to the workers once the older ones are done; a small one, or any without workers, the
    /// reader runs itself (without workers, everything is committed when this returns).
    /// </summary>
    public void Submit(int count)
    {
        bool parallel = _workers is not null && count >= CryptoWorkers.MinParallelJobs;
        long published = _published.Value;
        _batches[published % Slots].Start(count);
        Volatile.Write(ref _published.Value, published + 1);
        if (parallel)
            _workers!.Wake();
        Help(leave: parallel ? 1 : 0);
    }

    /// <summary>
    /// The reading thread's share of the work after it published: runs jobs, oldest first, while
    /// more than <paramref name="leave"/> batches are in flight (1: the newest is left to the
    /// workers while the reader reads the next; 0: until every job is claimed).
    /// </summary>
    private void Help(int leave)
    {
        while (InFlight > leave && RunOne())
        {
        }
    }

    /// <summary>Until every published batch is committed (the reader's end, a test's check).</summary>
    public void Drain()
    {
        var spin = new SpinWait();
        while (InFlight > 0)
            RunOneOrWait(ref spin);
    }

    /// <summary>Drains, and the workers stop looking at this pipeline.</summary>
    public void Close()
    {
        Drain();
        _workers?.Unregister(this);
    }

    private void RunOneOrWait(ref SpinWait spin)
    {
        if (!RunOne())
            spin.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>Claims and runs a few jobs, oldest batch first, committing what it completes; false
    /// when no job is left to claim. Any thread.</summary>
    public bool RunOne()
    {
        long committed = Volatile.Read(ref _committed.Value), published = Volatile.Read(ref _published.Value);
        for (long b = committed; b < published; b++)
        {
            int slot = (int)(b % Slots);
            CryptoBatch batch = _batches[slot];
            if (!batch.TryClaim(out int first, out int count))
                continue;
            for (int index = first; index < first + count; index++)
            {
                try
                {
                    _stage.RunJob(slot, index);
                }
                catch (Exception e)
                {
                    // A job that throws loses its message alone: its batch must still complete.
                    OnFailure(e);
                }
            }
            if (batch.Complete(count))
                Commit();
            return true;
        }
        return false;
    }

    /// <summary>
    /// Commits every finished batch at the head of the queue, in order. One thread at a time: a
    /// thread that finds another committing leaves it to that one, which looks again after it
    /// lets go (the full fences on both sides mean one of the two sees the finished batch).
    /// </summary>
    private void Commit()
    {
        while (Interlocked.CompareExchange(ref _committing, 1, 0) == 0)
        {
            try
            {
                long committed = _committed.Value;
                while (committed < Volatile.Read(ref _published.Value) && _batches[committed % Slots].IsDone)
                {
                    try
                    {
                        _stage.CommitBatch((int)(committed % Slots));
                    }
                    catch (Exception e)
                    {
                        OnFailure(e); // the stage has reset the slot; what was not written is lost
                    }
                    // Everything of the slot is written before the reader may fill it again.
                    committed++;
                    Volatile.Write(ref _committed.Value, committed);
                }
            }
            finally
            {
                Interlocked.Exchange(ref _committing, 0);
            }
            long next = Volatile.Read(ref _committed.Value);
            if (next >= Volatile.Read(ref _published.Value) || !_batches[next % Slots].IsDone)
                return;
        }
    }

    private void OnFailure(Exception e)
    {
        Interlocked.Increment(ref _failures);
        _workers?.CountFailure(e);
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
    private struct PaddedCounter
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public long Value;
    }
}

/// <summary>
/// The jobs of one batch in a <see cref="CryptoPipeline"/> slot: claimed a few at a time by any
/// thread, counted as they complete. Reused batch after batch.
/// </summary>
internal sealed class CryptoBatch
{
    // The job count in the high half, the next unclaimed job in the low half, so that a claim reads
    // both in one atomic step: a thread late from the slot's previous batch never claims twice.
    private long _state;
    private int _done;

    public bool HasWork
    {
        get
        {
            long state = Volatile.Read(ref _state);
            return (int)state < (int)(state >> 32);
        }
    }

    public int Count => (int)(Volatile.Read(ref _state) >> 32);

    /// <summary>Every job of the batch has completed.</summary>
    public bool IsDone => Volatile.Read(ref _done) == (int)(Volatile.Read(ref _state) >> 32);

    /// <summary>Opens the batch: jobs 0 to <paramref name="count"/> - 1 are ready to claim.</summary>
    public void Start(int count)
    {
        Volatile.Write(ref _done, 0);
        Interlocked.Exchange(ref _state, (long)count << 32);
    }

    /// <summary>
    /// Jobs claimed at once: every claim and every completion is an atomic on a cache line all
    /// the threads write, and one per job cost the second worker much of what it brought with
    /// 64-byte packets (two cross-core line transfers per half-microsecond seal). Small enough
    /// that a batch of 64 still splits evenly across the threads.
    /// </summary>
    public const int ClaimSize = 4;

    /// <summary>Claims up to <see cref="ClaimSize"/> jobs, <paramref name="first"/> onwards.</summary>
    public bool TryClaim(out int first, out int count)
    {
        first = count = 0;
        if (!HasWork)
            return false;
        long state = Interlocked.Add(ref _state, ClaimSize);
        int end = (int)state, total = (int)(state >> 32);
        first = end - ClaimSize;
        if (first >= total)
            return false;
        count = Math.Min(end, total) - first;
        return true;
    }

    /// <summary><paramref name="count"/> claimed jobs are done; true for the batch's last.</summary>
    public bool Complete(int count) => Interlocked.Add(ref _done, count) == (int)(Volatile.Read(ref _state) >> 32);
}
