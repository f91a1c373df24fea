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
    private readonly byte[] _key = new byte[ChaCha20.KeySize];
    private readonly byte[] _output = new byte[OutputPerBatch];
    private int _position = OutputPerBatch; // nothing buffered yet
    private ulong _generationSeen;

    /// <summary>
    /// A generator whose initial key is derived from <paramref name="seed"/> (any length; SHA-256 of
    /// a label and the seed), so two generators from one seed give one stream: for deterministic
    /// simulation. <paramref name="entropy"/> is the host entropy every reseed mixes in (default: the
    /// OS); a simulation may pass a deterministic one. It is host state, not part of <see cref="Capture"/>.
    /// </summary>
    public ForkSafeRandom(VmGeneration generation, ReadOnlySpan<byte> seed, IRandomGenerator? entropy = null)
    {
        _generation = generation ?? throw new ArgumentNullException(nameof(generation));
        _entropy = entropy ?? OsRandomGenerator.Instance;
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            sha.AppendData(SeedLabel);
            sha.AppendData(seed);
            sha.GetHashAndReset(_key);
        }
        _generationSeen = generation.Current;
    }

    /// <summary>A generator seeded with 32 bytes of OS entropy.</summary>
    public ForkSafeRandom(VmGeneration generation, IRandomGenerator? entropy = null)
    {
        _generation = generation ?? throw new ArgumentNullException(nameof(generation));
        _entropy = entropy ?? OsRandomGenerator.Instance;
        OsRandomGenerator.Instance.Fill(_key);
        _generationSeen = generation.Current;
    }

    /// <summary>
    /// When false, <see cref="Fill"/> does not check the generation. TEST-ONLY (negative control for
    /// fork simulations); <see cref="ForkKernel.ReseedRandomOnFork"/> drives it.
    /// </summary>
    public bool GenerationCheck { get; set; } = true;

    /// <summary>Number of reseeds so far (fork or generation check); for tests and diagnostics.</summary>
    public long Reseeds { get; private set; }

    public void Fill(Span<byte> destination)
    {
        lock (_lock)
        {
            while (true)
            {
                ulong before = CheckGeneration();
                Produce(destination);
                // The vDSO's second check: if a snapshot was taken while we produced, a clone holds
                // the same bytes; discard them and produce again from the reseeded key.
                if (!GenerationCheck || _generation.Current == before)
                    return;
                CryptographicOperations.ZeroMemory(destination);
            }
        }
    }

    /// <summary>
    /// <c>add_vmfork_randomness</c> for this generator: mixes the new unique VM ID and 32 fresh
    /// bytes of host entropy into the key and drops buffered output. The ID is not secret; the
    /// entropy is what makes clones diverge even if two were given the same ID.
    /// </summary>
    public void AddVmForkRandomness(ReadOnlySpan<byte> uniqueVmId)
    {
        lock (_lock)
        {
            Reseed(VmForkLabel, uniqueVmId);
        }
    }

    /// <summary>A copy of the whole state (what a VM snapshot takes).</summary>
    public ForkSafeRandomState Capture()
    {
        lock (_lock)
        {
            return new ForkSafeRandomState((byte[])_key.Clone(), (byte[])_output.Clone(), _position, _generationSeen);
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

    private ulong CheckGeneration()
    {
        ulong current = _generation.Current;
        if (GenerationCheck && current != _generationSeen)
        {
            Span<byte> generation = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(generation, current);
            // Record the generation before rekeying, as the vDSO does, so a reseed is never skipped.
            _generationSeen = current;
            Reseed(GenerationLabel, generation);
        }
        return current;
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

    // key' = HMAC-SHA256(key, label || 32 bytes host entropy || input); buffered output is dropped.
    private void Reseed(byte[] label, ReadOnlySpan<byte> input)
    {
        Span<byte> entropy = stackalloc byte[32];
        _entropy.Fill(entropy);
        using (var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key))
        {
            hmac.AppendData(label);
            hmac.AppendData(entropy);
            hmac.AppendData(input);
            hmac.GetHashAndReset(_key);
        }
        CryptographicOperations.ZeroMemory(entropy);
        CryptographicOperations.ZeroMemory(_output);
        _position = OutputPerBatch;
        Reseeds++;
    }
}
