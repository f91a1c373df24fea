using System.Runtime.CompilerServices;

namespace Tunnel.Device;

/// <summary>
/// The receive-side replay window of one keypair: RFC 6479's sliding bitmap, as the kernel's
/// <c>counter_validate</c> (receive.c) does it. The bitmap is a ring of 128 64-bit words
/// (<see cref="Constants.CounterBitsTotal"/> bits); moving the window forward clears whole words
/// instead of shifting bits, and one word is always the one being recycled, so the usable window is
/// <see cref="Constants.CounterWindowSize"/> = 8128 counters behind the greatest one accepted.
/// </summary>
/// <remarks>
/// Thread-safe (a lock, as the kernel's spinlock): packets of one keypair may be validated on
/// several receive threads. No allocation per call. The state is small and fixed-size, so a VM
/// snapshot can copy it exactly with <see cref="CopyTo"/>.
/// </remarks>
public sealed class ReplayFilter
{
    private const int WordBits = 64;
    private const int WordBitsLog2 = 6;
    private const int RingWords = Constants.CounterBitsTotal / WordBits; // 128, a power of two

    [InlineArray(RingWords)]
    private struct Ring
    {
        private ulong _word;
    }

    private readonly Lock _lock = new();

    // Greatest counter accepted so far plus one; 0 means nothing accepted yet. The +1 (as in the
    // kernel) lets the all-zero state mean "fresh", so counter 0 is still accepted exactly once.
    private ulong _greatestPlusOne;
    private Ring _ring;

    /// <summary>
    /// Accepts <paramref name="counter"/> once: true if it is below <paramref name="rejectAfterMessages"/>,
    /// not older than the window, and not seen before; it is then marked as seen. Any false leaves
    /// the state unchanged. Call only after the packet has authenticated, or an attacker could move
    /// the window.
    /// </summary>
    public bool ValidateCounter(ulong counter, ulong rejectAfterMessages)
    {
        lock (_lock)
        {
            if (counter >= rejectAfterMessages)
                return false;

            // counter < rejectAfterMessages <= ulong.MaxValue, so this cannot wrap.
            ulong next = counter + 1;

            // Too old: more than the window behind the greatest accepted counter.
            if (_greatestPlusOne > next && _greatestPlusOne - next > Constants.CounterWindowSize)
                return false;

            ulong wordIndex = next >> WordBitsLog2;
            if (next > _greatestPlusOne)
            {
                // Slide forward: clear the words between the old front and the new one (at most
                // the whole ring), so stale bits from a previous lap of the ring cannot reject.
                ulong currentWord = _greatestPlusOne >> WordBitsLog2;
                ulong toClear = Math.Min(wordIndex - currentWord, (ulong)RingWords);
                for (ulong i = 1; i <= toClear; i++)
                    _ring[(int)((currentWord + i) & (RingWords - 1))] = 0;
                _greatestPlusOne = next;
            }

            ref ulong word = ref _ring[(int)(wordIndex & (RingWords - 1))];
            ulong bit = 1UL << (int)(next & (WordBits - 1));
            if ((word & bit) != 0)
                return false;
            word |= bit;
            return true;
        }
    }

    /// <summary>Forgets everything: the next counter accepted may be any value (a new keypair).</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _greatestPlusOne = 0;
            ((Span<ulong>)_ring).Clear();
        }
    }

    /// <summary>Copies this filter's exact state into <paramref name="destination"/> (for VM snapshots).</summary>
    public void CopyTo(ReplayFilter destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (ReferenceEquals(destination, this))
            return;
        ulong greatest;
        Ring ring;
        lock (_lock)
        {
            greatest = _greatestPlusOne;
            ring = _ring;
        }
        lock (destination._lock)
        {
            destination._greatestPlusOne = greatest;
            destination._ring = ring;
        }
    }

    /// <summary>A new filter with this one's exact state.</summary>
    public ReplayFilter Clone()
    {
        var copy = new ReplayFilter();
        CopyTo(copy);
        return copy;
    }

    /// <summary>Writes the exact state (for the device's state digest).</summary>
    internal void WriteState(BinaryWriter writer)
    {
        lock (_lock)
        {
            writer.Write(_greatestPlusOne);
            foreach (ulong word in (ReadOnlySpan<ulong>)_ring)
                writer.Write(word);
        }
    }
}
