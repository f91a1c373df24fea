using System.Collections;

namespace Tunnel.Device;

/// <summary>
/// A device's peers in the order they were added, which is the order <c>wg show</c> lists them (the
/// kernel's peer_list). An intrusive doubly linked list through <see cref="Peer.NextInDevice"/> and
/// <see cref="Peer.PreviousInDevice"/>: adding and removing a peer are O(1) and copy nothing, and
/// enumerating allocates nothing.
/// </summary>
/// <remarks>
/// Writers hold the device's configuration lock. Readers (timers, the fork guard, the UAPI) walk
/// it without a lock, as the kernel walks peer_list under RCU: a peer is linked in only once its
/// forward link is set, and a removed peer keeps its forward link (list_del_rcu), so a reader
/// standing on it walks on into the live list. A removed peer only ever points at peers added
/// after it, so a walk always ends. A reader racing a writer may or may not see a peer being
/// added or removed; every peer present throughout the walk is seen exactly once.
/// </remarks>
public sealed class PeerList : IReadOnlyCollection<Peer>
{
    private Peer? _first;
    private Peer? _last;
    private int _count;

    internal PeerList()
    {
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Appends <paramref name="peer"/> (config lock held).</summary>
    internal void Add(Peer peer)
    {
        peer.NextInDevice = null;
        peer.PreviousInDevice = _last;
        if (_last is null)
            Volatile.Write(ref _first, peer);
        else
            Volatile.Write(ref _last.NextInDevice, peer);
        _last = peer;
        Volatile.Write(ref _count, _count + 1);
    }

    /// <summary>Unlinks <paramref name="peer"/>, which must be in this list (config lock held). Its
    /// forward link stays, for a reader standing on it.</summary>
    internal void Remove(Peer peer)
    {
        Peer? previous = peer.PreviousInDevice, next = peer.NextInDevice;
        if (previous is null)
            Volatile.Write(ref _first, next);
        else
            Volatile.Write(ref previous.NextInDevice, next);
        if (next is null)
            _last = previous;
        else
            next.PreviousInDevice = previous;
        peer.PreviousInDevice = null;
        Volatile.Write(ref _count, _count - 1);
    }

    /// <summary>A copy, in list order: for a caller that needs positions (a VM-snapshot capture).</summary>
    public Peer[] ToArray()
    {
        var peers = new List<Peer>(Count);
        foreach (Peer peer in this)
            peers.Add(peer);
        return [.. peers];
    }

    public Enumerator GetEnumerator() => new(Volatile.Read(ref _first));

    IEnumerator<Peer> IEnumerable<Peer>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Walks the forward links; allocates nothing when used by <c>foreach</c> on a <see cref="PeerList"/>.</summary>
    public struct Enumerator : IEnumerator<Peer>
    {
        private Peer? _next;
        private Peer? _current;

        internal Enumerator(Peer? first) => _next = first;

        public readonly Peer Current => _current!;

        readonly object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            _current = _next;
            if (_current is null)
                return false;
            _next = Volatile.Read(ref _current.NextInDevice);
            return true;
        }

        public void Reset() => throw new NotSupportedException();

        public readonly void Dispose()
        {
        }
    }
}
