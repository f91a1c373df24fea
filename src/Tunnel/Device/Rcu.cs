using System.Runtime.InteropServices;

namespace Tunnel.Device;

/// <summary>
/// Read-copy-update for a device's keypairs: a retired keypair is zeroed only once no data thread
/// can still hold it. The kernel does the same: data paths use a keypair under
/// <c>rcu_read_lock_bh()</c>, and <c>wg_noise_keypair_put</c> frees (and zeroes) it through
/// <c>call_rcu</c>. Without it, a keypair zeroed while another thread seals under it yields a
/// packet sealed under a partly zeroed key; on a weakly ordered CPU (ARM64) the zeroing stores can
/// even become visible before the flag that says "zeroed", so the stage-2 check lets it out.
/// </summary>
/// <remarks>
/// Epochs, with the fence on the writer's side (liburcu's "memb" flavour). Each thread that uses a
/// keypair announces the device epoch in its own slot for as long as it may hold one
/// (<see cref="ReadLock"/>): a plain store on entry and one on leaving, no lock, no atomic, no
/// allocation. <see cref="CallRcu"/> tags a keypair, already unlinked from the slots and the index
/// table, with a new epoch; it is zeroed when every thread still inside a section announced that
/// epoch or a later one (they entered after the unlink and cannot have found it). A thread's
/// announcing store may still sit in its store buffer while it loads a keypair, so before trusting
/// an empty slot the writer runs <see cref="Interlocked.MemoryBarrierProcessWide"/> (membarrier(2)):
/// every running thread passes a full barrier, after which its announcement is visible, or its
/// loads see the unlink. This relies on the JIT not moving a load above the announcing volatile
/// store, which it does not do for volatile accesses. Slots are indexed by managed thread id,
/// which the runtime gives to one live thread at a time and reuses after a thread ends; a slot
/// left by an ended thread reads 0 (quiescent).
/// </remarks>
internal sealed class Rcu
{
    private const int ChunkBits = 6;
    private const int ChunkSize = 1 << ChunkBits;

    // 0 = not in a section. Starts at 1 so that every announced epoch is non-zero.
    private long _epoch = 1;
    private ReaderSlot[]?[] _chunks = new ReaderSlot[]?[4];
    private readonly Lock _lock = new();
    // Retired keypairs and the epoch each was retired in, waiting for their readers (under _lock).
    private readonly List<(Keypair Keypair, long Epoch)> _retired = [];
    private volatile int _waiting;

    /// <summary>One thread's announced epoch, alone on its cache lines (no false sharing between data threads).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 128)]
    private struct ReaderSlot
    {
        [FieldOffset(64)] public long Epoch;
    }

    /// <summary>Retired keypairs not zeroed yet (a reader may still hold them).</summary>
    public int Waiting => _waiting;

    /// <summary>
    /// Enters a read-side section (rcu_read_lock): keypairs loaded until the section is disposed
    /// stay unzeroed. Sections nest; only the outermost one announces and leaves.
    /// </summary>
    public ReadSection ReadLock()
    {
        ref long slot = ref SlotOf(Environment.CurrentManagedThreadId);
        long outer = slot;
        if (outer == 0)
            Volatile.Write(ref slot, Volatile.Read(ref _epoch));
        return new ReadSection(this, ref slot, outer);
    }

    /// <summary>A read-side section; disposing it leaves (rcu_read_unlock).</summary>
    public readonly ref struct ReadSection
    {
        private readonly Rcu _rcu;
        private readonly ref long _slot;
        private readonly long _outer;

        internal ReadSection(Rcu rcu, ref long slot, long outer)
        {
            _rcu = rcu;
            _slot = ref slot;
            _outer = outer;
        }

        public void Dispose()
        {
            // Release: every use of a keypair in the section is done before the slot says so.
            Volatile.Write(ref _slot, _outer);
            if (_outer == 0 && _rcu._waiting != 0)
                _rcu.Reclaim(quickCheck: true);
        }
    }

    /// <summary>
    /// Hands over a keypair that is already out of every slot and the index table (call_rcu): it
    /// is zeroed now if no thread can hold it, else by the last such thread leaving its section
    /// (or <see cref="Reclaim"/> from the timer). A caller retiring many keypairs holds a section
    /// around them, so that they are reclaimed together, with one membarrier(2), when it leaves.
    /// </summary>
    public void CallRcu(Keypair keypair)
    {
        long epoch = Interlocked.Increment(ref _epoch);
        lock (_lock)
        {
            _retired.Add((keypair, epoch));
            _waiting = _retired.Count;
        }
        // Inside a section this thread holds back its own retirement; its leaving reclaims.
        if (SlotOf(Environment.CurrentManagedThreadId) == 0)
            Reclaim(quickCheck: false);
    }

    /// <summary>Zeroes every retired keypair no reader can hold any more.</summary>
    /// <param name="quickCheck">First look without the process-wide barrier, and give up if a
    /// reader is visibly still in an older section (the data path's leaving does this, so it pays
    /// for membarrier(2) only when it may succeed; the timer and retirement look properly).</param>
    public void Reclaim(bool quickCheck = false)
    {
        lock (_lock)
        {
            if (_retired.Count == 0)
                return;
            long newestNeeded = long.MaxValue;
            foreach ((_, long epoch) in _retired)
                newestNeeded = Math.Min(newestNeeded, epoch);
            if (quickCheck && OldestReader() < newestNeeded)
                return;
            Interlocked.MemoryBarrierProcessWide();
            long oldest = OldestReader();
            foreach ((Keypair keypair, long epoch) in _retired)
            {
                if (epoch <= oldest)
                    keypair.Zero();
            }
            _retired.RemoveAll(entry => entry.Epoch <= oldest);
            _waiting = _retired.Count;
        }
    }

    /// <summary>
    /// Waits until every retired keypair is zeroed (rcu_barrier), at most <paramref name="timeout"/>;
    /// false if some reader is still in its section then (its leaving zeroes them). Returns at once
    /// when called inside a section, which would wait for itself.
    /// </summary>
    public bool Barrier(TimeSpan timeout)
    {
        if (SlotOf(Environment.CurrentManagedThreadId) != 0)
            return _waiting == 0;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            Reclaim();
            if (_waiting == 0)
                return true;
            if (Environment.TickCount64 >= deadline)
                return false;
            Thread.Sleep(1);
        }
    }

    /// <summary>The least epoch announced by a thread inside a section, or long.MaxValue.</summary>
    private long OldestReader()
    {
        long oldest = long.MaxValue;
        foreach (ReaderSlot[]? chunk in Volatile.Read(ref _chunks))
        {
            if (chunk is null)
                continue;
            for (int i = 0; i < chunk.Length; i++)
            {
                long epoch = Volatile.Read(ref chunk[i].Epoch);
                if (epoch != 0 && epoch < oldest)
                    oldest = epoch;
            }
        }
        return oldest;
    }

    private ref long SlotOf(int threadId)
    {
        ReaderSlot[]?[] chunks = Volatile.Read(ref _chunks);
        int index = threadId >> ChunkBits;
        ReaderSlot[]? chunk = (uint)index < (uint)chunks.Length ? chunks[index] : null;
        chunk ??= AddChunk(index);
        return ref chunk[threadId & (ChunkSize - 1)].Epoch;
    }

    /// <summary>First use by a thread whose id has no slots yet: once per 64 thread ids, never per packet.</summary>
    private ReaderSlot[] AddChunk(int index)
    {
        lock (_lock)
        {
            ReaderSlot[]?[] chunks = _chunks;
            if (index >= chunks.Length)
            {
                // Chunks never move: a thread writing its slot in one found through the old array
                // writes the same memory the scan reads through the new one.
                var grown = new ReaderSlot[]?[Math.Max(index + 1, chunks.Length * 2)];
                chunks.CopyTo(grown, 0);
                chunks = grown;
            }
            ReaderSlot[] chunk = chunks[index] ??= new ReaderSlot[ChunkSize];
            Volatile.Write(ref _chunks, chunks);
            return chunk;
        }
    }
}
