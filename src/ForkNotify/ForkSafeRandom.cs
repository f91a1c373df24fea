using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace ForkNotify;

/// <summary>
/// A fast-key-erasure random generator (Bernstein, "Fast-key-erasure random-number generators",
/// 2017) over ChaCha20: each batch of keystream is made from the current key with a zero nonce; its
/// first 32 bytes replace the key at once, the rest is handed out and each byte is zeroed as it is
/// used. Stealing the state therefore never reveals earlier output.
/// <para>
/// It is guest state: a VM snapshot copies it (<see cref="Capture"/>/<see cref="Restore"/>), and so
/// two clones would emit the same "random" bytes. Two defences, as the kernel has them:
/// <see cref="AddVmForkRandomness"/> (the push path: mix the new VM ID and fresh host entropy into
/// the key), and a generation self-check on every <see cref="Fill"/> (the pull path, like the vDSO
/// <c>getrandom</c>): if <see cref="VmGeneration"/> moved since the last reseed, reseed before any
/// output, and if it moves while output is being produced, throw that output away and redo it.
/// </para>
/// </summary>
public sealed class ForkSafeRandom : IRandomGenerator, IDisposable
{
    private const int BatchBlocks = 4;
    private const int BatchSize = BatchBlocks * ChaCha20.BlockSize;
    /// <summary>Bytes of output per batch (the rest of the batch is the next key).</summary>
    public const int OutputPerBatch = BatchSize - ChaCha20.KeySize;

    private static readonly byte[] SeedLabel = Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom seed");
    private static readonly byte[] GenerationLabel = Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom generation");
    private static readonly byte[] VmForkLabel = Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom vmfork");

    private readonly object _lock = new();
    private readonly VmGeneration _generation;
    private readonly IRandomGenerator _entropy;
    /// <summary>The kernel reseeds its generator at least this often; so does this one.</summary>
    public const long ReseedIntervalMillis = 60_000;

    private static readonly byte[] TimerLabel = Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom timer");
    private static readonly byte[] PullLabel = Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom pull");

    // Pinned (the pinned object heap never moves them), so the GC leaves no stale copy of the key
    // behind; zeroed on Dispose.
    private readonly byte[] _key = GC.AllocateArray<byte>(ChaCha20.KeySize, pinned: true);
    private readonly byte[] _output = GC.AllocateArray<byte>(OutputPerBatch, pinned: true);
    private readonly Func<long>? _millis;
    private int _position = OutputPerBatch; // nothing buffered yet
    private ulong _generationSeen;
    private IGenerationCounter? _pullCounter;
    private ulong _pullSeen;
    private long _reseededAt;

    /// <summary>
    /// A generator whose initial key is derived from <paramref name="seed"/> (any length; SHA-256 of
    /// a label and the seed), so two generators from one seed give one stream: for deterministic
    /// simulation. <paramref name="entropy"/> is the host entropy every reseed mixes in (default: the
    /// OS); a simulation may pass a deterministic one. It is host state, not part of <see cref="Capture"/>.
    /// <paramref name="millis"/> is the monotonic clock of the 60 s reseed timer; null (the
    /// default here, for simulations that must not depend on wall time): no timer.
    /// </summary>
    public ForkSafeRandom(VmGeneration generation, ReadOnlySpan<byte> seed, IRandomGenerator? entropy = null,
        Func<long>? millis = null)
    {
        _generation = generation ?? throw new ArgumentNullException(nameof(generation));
        _entropy = entropy ?? OsRandomGenerator.Instance;
        _millis = millis;
        _reseededAt = millis?.Invoke() ?? 0;
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            sha.AppendData(SeedLabel);
            sha.AppendData(seed);
            sha.GetHashAndReset(_key);
        }
        _generationSeen = generation.Current;
    }

    /// <summary>A generator seeded with 32 bytes of OS entropy, reseeded from the OS at least every 60 s.</summary>
    public ForkSafeRandom(VmGeneration generation, IRandomGenerator? entropy = null)
    {
        _generation = generation ?? throw new ArgumentNullException(nameof(generation));
        _entropy = entropy ?? OsRandomGenerator.Instance;
        _millis = static () => Environment.TickCount64;
        _reseededAt = _millis();
        OsRandomGenerator.Instance.Fill(_key);
        _generationSeen = generation.Current;
    }

    /// <summary>
    /// When false, <see cref="Fill"/> does not check the generation. TEST-ONLY (negative control for
    /// fork simulations); <see cref="ForkKernel.ReseedRandomOnFork"/> drives it.
    /// </summary>
    public bool GenerationCheck { get; set; } = true;

    /// <summary>
    /// The hot path's pull counter, if there is one: the self-check watches it beside the push
    /// generation, so a fork the hypervisor has signalled only by moving the counter reseeds before
    /// any output (the push generation moves only when the notification is handled).
    /// </summary>
    public IGenerationCounter? PullCounter
    {
        get { lock (_lock) return _pullCounter; }
        set
        {
            lock (_lock)
            {
                _pullCounter = value;
                _pullSeen = value?.Read() ?? 0;
            }
        }
    }

    /// <summary>Number of reseeds so far (fork or generation check); for tests and diagnostics.</summary>
    public long Reseeds { get; private set; }

    public void Fill(Span<byte> destination)
    {
        lock (_lock)
        {
            while (true)
            {
                (ulong before, ulong pullBefore) = CheckGeneration();
                Produce(destination);
                // The vDSO's second check: if a snapshot was taken while we produced, a clone holds
                // the same bytes; discard them and produce again from the reseeded key.
                if (!GenerationCheck || (_generation.Current == before && (_pullCounter?.Read() ?? 0) == pullBefore))
                    return;
                CryptographicOperations.ZeroMemory(destination);
            }
        }
    }

    /// <summary>
    /// <c>add_vmfork_randomness</c> for this generator: mixes the new VM ID, an optional
    /// clone-unique input (a /dev/hwrng digest) and 32 fresh bytes of host entropy into the key and
    /// drops buffered output. The ID is not secret; what makes sibling clones diverge is an input
    /// that differs between them (see <see cref="VmForkNotice.CloneUnique"/>).
    /// </summary>
    public void AddVmForkRandomness(ReadOnlySpan<byte> uniqueVmId, ReadOnlySpan<byte> cloneInput = default)
    {
        lock (_lock)
        {
            Reseed(VmForkLabel, uniqueVmId, cloneInput);
        }
    }

    /// <summary>A copy of the whole state (what a VM snapshot takes).</summary>
    public ForkSafeRandomState Capture()
    {
        lock (_lock)
        {
            return new ForkSafeRandomState((byte[])_key.Clone(), (byte[])_output.Clone(), _position, _generationSeen,
                _pullSeen, _millis is { } millis ? millis() - _reseededAt : 0);
        }
    }

    /// <summary>Overwrites the whole state with <paramref name="state"/> (what a VM restore does).</summary>
    public void Restore(ForkSafeRandomState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        lock (_lock)
        {
            state.Key.CopyTo(_key, 0);
            state.Buffer.CopyTo(_output, 0);
            _position = state.Position;
            _generationSeen = state.GenerationSeen;
            _pullSeen = state.PullSeen;
            // The timer's age travels with the state, whatever clock the restoring generator has.
            _reseededAt = (_millis?.Invoke() ?? 0) - state.ReseedAgeMillis;
        }
    }

    /// <summary>Zeroes the key and buffered output.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            CryptographicOperations.ZeroMemory(_key);
            CryptographicOperations.ZeroMemory(_output);
            _position = OutputPerBatch;
        }
    }

    // The pull path: push generation, pull counter and the reseed timer, checked before any output.
    private (ulong Generation, ulong Pull) CheckGeneration()
    {
        ulong current = _generation.Current;
        ulong pull = _pullCounter?.Read() ?? 0;
        Span<byte> word = stackalloc byte[8];
        if (GenerationCheck && current != _generationSeen)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, current);
            // Record the generation before rekeying, as the vDSO does, so a reseed is never skipped.
            _generationSeen = current;
            Reseed(GenerationLabel, word, []);
        }
        if (GenerationCheck && pull != _pullSeen)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(word, pull);
            _pullSeen = pull;
            Reseed(PullLabel, word, []);
        }
        if (_millis is { } millis && millis() - _reseededAt >= ReseedIntervalMillis)
            Reseed(TimerLabel, [], []);
        return (current, pull);
    }

    private void Produce(Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            if (_position == OutputPerBatch)
                Refill();
            int n = Math.Min(destination.Length, OutputPerBatch - _position);
            Span<byte> available = _output.AsSpan(_position, n);
            available.CopyTo(destination);
            CryptographicOperations.ZeroMemory(available); // erase what has been handed out
            _position += n;
            destination = destination[n..];
        }
    }

    // One batch from the current key; its head becomes the next key before anything is returned.
    private void Refill()
    {
        Span<byte> batch = stackalloc byte[BatchSize];
        ReadOnlySpan<byte> zeroNonce = stackalloc byte[ChaCha20.NonceSize];
        ChaCha20.Keystream(_key, 0, zeroNonce, batch);
        batch[..ChaCha20.KeySize].CopyTo(_key);
        batch[ChaCha20.KeySize..].CopyTo(_output);
        CryptographicOperations.ZeroMemory(batch);
        _position = 0;
    }

    // key' = HMAC-SHA256(key, label || 32 bytes host entropy || input || cloneInput); buffered output is dropped.
    private void Reseed(byte[] label, ReadOnlySpan<byte> input, ReadOnlySpan<byte> cloneInput)
    {
        Span<byte> entropy = stackalloc byte[32];
        _entropy.Fill(entropy);
        using (var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key))
        {
            hmac.AppendData(label);
            hmac.AppendData(entropy);
            hmac.AppendData(input);
            hmac.AppendData(cloneInput);
            hmac.GetHashAndReset(_key);
        }
        CryptographicOperations.ZeroMemory(entropy);
        CryptographicOperations.ZeroMemory(_output);
        _position = OutputPerBatch;
        if (_millis is { } millis)
            _reseededAt = millis();
        Reseeds++;
    }
}
