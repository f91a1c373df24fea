using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Tunnel.Device;

/// <summary>
/// Cryptokey routing's table (whitepaper 2): IPv4 and IPv6 prefixes, each owned by one peer, looked
/// up by longest-prefix match. A path-compressed binary trie per address family, shaped like the
/// kernel's allowedips.c: a node is either a prefix owned by a peer, or a peerless branch point with
/// exactly two children.
/// </summary>
/// <remarks>
/// Lookups take no lock and allocate nothing; they run on every packet, on any thread. Writers
/// (configuration) serialize on a lock and publish each new node only once it is complete, the way
/// the kernel uses RCU; the garbage collector plays the part of the RCU grace period, so a reader
/// that is still walking a node unlinked under it stays safe. A reader racing a writer sees the
/// table either before or after that change to any one node.
/// </remarks>
public sealed class AllowedIps<TPeer> where TPeer : class
{
    private readonly Lock _writeLock = new();
    private Node? _root4;
    private Node? _root6;
    // Each peer's prefixes in the order they were (last) inserted, as a list threaded through the
    // nodes (first and last here): for RemoveByPeer and for the UAPI listing. Only writers touch
    // it. No object per peer or per prefix beyond the node itself: at 100,000 peers each one counts.
    private readonly Dictionary<TPeer, PeerPrefixes> _byPeer = new(ReferenceEqualityComparer.Instance);
    private int _count;

    private struct PeerPrefixes
    {
        public Node First;
        public Node Last;
    }

    private sealed class Node
    {
        // The prefix as a 128-bit big-endian number, host bits zero; IPv4 uses the top 32 bits so
        // that one bit numbering serves both families. Immutable once published.
        public readonly UInt128 Key;
        public readonly byte Cidr;
        public readonly byte Bits; // 32 or 128
        public byte ParentBit;
        public TPeer? Peer;
        public Node? Child0;
        public Node? Child1;
        // Writer-side bookkeeping: where this node hangs (Parent null = the family's root), and
        // its neighbours in its owner's list of prefixes.
        public Node? Parent;
        public Node? PeerPrevious;
        public Node? PeerNext;

        public Node(UInt128 key, byte cidr, byte bits)
        {
            Key = key;
            Cidr = cidr;
            Bits = bits;
        }

        /// <summary>The bit of <paramref name="key"/> just after this node's prefix: which child leads towards it.</summary>
        public int Choose(UInt128 key) => (int)(key >> (127 - Cidr)) & 1;

        public ref Node? Child(int bit)
        {
            if (bit == 0)
                return ref Child0;
            return ref Child1;
        }
    }

    /// <summary>
    /// Adds <paramref name="address"/>/<paramref name="cidr"/> for <paramref name="peer"/>, replacing the
    /// prefix's previous owner. Host bits are masked off (10.0.0.5/24 becomes 10.0.0.0/24). False if
    /// the address is not 4 or 16 bytes or the cidr is out of range.
    /// </summary>
    public bool Insert(ReadOnlySpan<byte> address, int cidr, TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (!TryReadPrefix(address, cidr, out UInt128 key, out byte bits))
            return false;
        lock (_writeLock)
        {
            if (bits == 32)
                Add(ref _root4, key, (byte)cidr, bits, peer);
            else
                Add(ref _root6, key, (byte)cidr, bits, peer);
        }
        return true;
    }

    /// <inheritdoc cref="Insert(ReadOnlySpan{byte}, int, TPeer)"/>
    public bool Insert(IPAddress address, int cidr, TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        return address.TryWriteBytes(bytes, out int written) && Insert(bytes[..written], cidr, peer);
    }

    /// <inheritdoc cref="Insert(ReadOnlySpan{byte}, int, TPeer)"/>
    public bool Insert(IPNetwork prefix, TPeer peer) => Insert(prefix.BaseAddress, prefix.PrefixLength, peer);

    /// <summary>
    /// Removes exactly the prefix <paramref name="address"/>/<paramref name="cidr"/> (host bits masked),
    /// only if <paramref name="peer"/> owns it (as UAPI <c>allowed_ip=-...</c>). True if removed.
    /// </summary>
    public bool Remove(ReadOnlySpan<byte> address, int cidr, TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (!TryReadPrefix(address, cidr, out UInt128 key, out byte bits))
            return false;
        lock (_writeLock)
        {
            Node? node = bits == 32 ? _root4 : _root6;
            while (node is not null && node.Cidr <= cidr && Matches(node, key))
            {
                if (node.Cidr == cidr)
                {
                    if (!ReferenceEquals(node.Peer, peer))
                        return false;
                    RemoveNode(node);
                    return true;
                }
                node = node.Child(node.Choose(key));
            }
            return false;
        }
    }

    /// <inheritdoc cref="Remove(ReadOnlySpan{byte}, int, TPeer)"/>
    public bool Remove(IPAddress address, int cidr, TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        return address.TryWriteBytes(bytes, out int written) && Remove(bytes[..written], cidr, peer);
    }

    /// <inheritdoc cref="Remove(ReadOnlySpan{byte}, int, TPeer)"/>
    public bool Remove(IPNetwork prefix, TPeer peer) => Remove(prefix.BaseAddress, prefix.PrefixLength, peer);

    /// <summary>Removes every prefix of <paramref name="peer"/>.</summary>
    public void RemoveByPeer(TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        lock (_writeLock)
        {
            while (_byPeer.TryGetValue(peer, out PeerPrefixes prefixes))
                RemoveNode(prefixes.First); // also unlinks it from the list, and drops the entry when empty
        }
    }

    /// <summary>Removes every prefix of every peer.</summary>
    public void Clear()
    {
        lock (_writeLock)
        {
            Volatile.Write(ref _root4, null);
            Volatile.Write(ref _root6, null);
            _byPeer.Clear();
            _count = 0;
        }
    }

    /// <summary>
    /// The peer owning the longest prefix that contains <paramref name="address"/> (4 or 16 bytes,
    /// network order, e.g. straight from an IP header), or null. No lock, no allocation.
    /// </summary>
    public TPeer? Lookup(ReadOnlySpan<byte> address)
    {
        Node? node;
        UInt128 key;
        if (address.Length == 4)
        {
            key = (UInt128)BinaryPrimitives.ReadUInt32BigEndian(address) << 96;
            node = Volatile.Read(ref _root4);
        }
        else if (address.Length == 16)
        {
            key = BinaryPrimitives.ReadUInt128BigEndian(address);
            node = Volatile.Read(ref _root6);
        }
        else
        {
            return null;
        }

        TPeer? found = null;
        while (node is not null && Matches(node, key))
        {
            TPeer? peer = Volatile.Read(ref node.Peer);
            if (peer is not null)
                found = peer;
            if (node.Cidr == node.Bits)
                break;
            node = Volatile.Read(ref node.Child(node.Choose(key)));
        }
        return found;
    }

    /// <summary>
    /// The prefixes of <paramref name="peer"/>, in the order they were inserted (re-inserting one moves
    /// it to the end, as in the kernel). A copy: safe to keep while the table changes.
    /// </summary>
    public IReadOnlyList<IPNetwork> EntriesForPeer(TPeer peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        lock (_writeLock)
        {
            if (!_byPeer.TryGetValue(peer, out PeerPrefixes prefixes))
                return [];
            var result = new List<IPNetwork>(1);
            for (Node? node = prefixes.First; node is not null; node = node.PeerNext)
                result.Add(ToNetwork(node));
            return result;
        }
    }

    /// <summary>Number of prefixes in the table (both families).</summary>
    public int Count
    {
        get
        {
            lock (_writeLock)
                return _count;
        }
    }

    /// <summary>True when neither family has a node: what removing every prefix must leave (tests).</summary>
    internal bool IsEmpty
    {
        get
        {
            lock (_writeLock)
                return _root4 is null && _root6 is null;
        }
    }

    /// <summary>
    /// Checks the trie's shape (tests): host bits are zero, every child extends its parent's prefix
    /// on the side its bit says, parent links match, every peerless node has two children, and the
    /// per-peer lists hold exactly the owned nodes. Returns null when sound, else what is wrong.
    /// </summary>
    internal string? FindInvariantViolation()
    {
        lock (_writeLock)
        {
            int owned = 0;
            string? problem = Check(_root4, null, 0, 32, ref owned) ?? Check(_root6, null, 0, 128, ref owned);
            if (problem is not null)
                return problem;
            int listed = 0;
            foreach ((TPeer peer, PeerPrefixes prefixes) in _byPeer)
            {
                Node? previous = null;
                for (Node? node = prefixes.First; node is not null; previous = node, node = node.PeerNext)
                {
                    if (!ReferenceEquals(node.Peer, peer) || !ReferenceEquals(node.PeerPrevious, previous))
                        return $"node /{node.Cidr} is in the wrong peer's list, or its links are wrong";
                    listed++;
                }
                if (!ReferenceEquals(previous, prefixes.Last))
                    return "a peer's list does not end at its last node";
            }
            if (listed != _count)
                return $"{listed} listed nodes but a count of {_count}";
            return listed == owned ? null : $"{owned} owned nodes but {listed} listed";
        }
    }

    private string? Check(Node? node, Node? parent, int bit, byte bits, ref int owned)
    {
        if (node is null)
            return null;
        if (node.Bits != bits || node.Cidr > bits)
            return $"node /{node.Cidr} has width {node.Bits}";
        if ((node.Key & ~Mask(node.Cidr)) != 0)
            return $"node /{node.Cidr} has host bits set";
        if (!ReferenceEquals(node.Parent, parent) || (parent is not null && node.ParentBit != bit))
            return $"node /{node.Cidr} has a wrong parent link";
        if (parent is not null && (node.Cidr <= parent.Cidr || !Matches(parent, node.Key) || parent.Choose(node.Key) != bit))
            return $"node /{node.Cidr} is not below its parent /{parent.Cidr} on side {bit}";
        if (node.Peer is null && (node.Child0 is null || node.Child1 is null))
            return $"peerless node /{node.Cidr} has fewer than two children";
        if (node.Peer is not null)
        {
            owned++;
            if (!_byPeer.ContainsKey(node.Peer))
                return $"node /{node.Cidr} is missing from its peer's list";
        }
        return Check(node.Child0, node, 0, bits, ref owned) ?? Check(node.Child1, node, 1, bits, ref owned);
    }

    private static bool TryReadPrefix(ReadOnlySpan<byte> address, int cidr, out UInt128 key, out byte bits)
    {
        key = default;
        bits = 0;
        if (address.Length == 4)
        {
            bits = 32;
            key = (UInt128)BinaryPrimitives.ReadUInt32BigEndian(address) << 96;
        }
        else if (address.Length == 16)
        {
            bits = 128;
            key = BinaryPrimitives.ReadUInt128BigEndian(address);
        }
        else
        {
            return false;
        }
        if (cidr < 0 || cidr > bits)
            return false;
        key &= Mask(cidr);
        return true;
    }

    private static UInt128 Mask(int cidr) => cidr == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - cidr);

    /// <summary>Length of the common leading bits of two keys, capped at the family's width.</summary>
    private static int CommonBits(UInt128 a, UInt128 b, byte bits) =>
        Math.Min((int)UInt128.LeadingZeroCount(a ^ b), bits);

    private static bool Matches(Node node, UInt128 key) => CommonBits(node.Key, key, node.Bits) >= node.Cidr;

    private static IPNetwork ToNetwork(Node node)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, node.Key);
        var address = new IPAddress(node.Bits == 32 ? bytes[..4] : bytes);
        return new IPNetwork(address, node.Cidr);
    }

    private void Add(ref Node? root, UInt128 key, byte cidr, byte bits, TPeer peer)
    {
        // Walk down while the existing nodes are (shorter or equal) prefixes of the new one.
        Node? parent = null;
        Node? node = root;
        while (node is not null && node.Cidr <= cidr && Matches(node, key))
        {
            if (node.Cidr == cidr)
            {
                SetOwner(node, peer);
                return;
            }
            parent = node;
            node = node.Child(node.Choose(key));
        }

        var created = new Node(key, cidr, bits);
        SetOwner(created, peer);

        // `node` is what currently hangs where the new prefix belongs (or null).
        if (node is null)
        {
            Link(ref root, parent, parent is null ? 0 : parent.Choose(key), created);
            return;
        }

        int common = Math.Min(cidr, CommonBits(node.Key, key, bits));
        int slot = parent is null ? 0 : parent.Choose(key);
        if (common == cidr)
        {
            // The new prefix contains the existing subtree: put it in between. Complete the new
            // node before publishing it, so a concurrent reader never sees a missing subtree.
            Link(ref root, created, created.Choose(node.Key), node);
            Link(ref root, parent, slot, created);
            return;
        }

        // The prefixes diverge at bit `common`: a peerless branch point takes both.
        var branch = new Node(key & Mask(common), (byte)common, bits);
        Link(ref root, branch, branch.Choose(node.Key), node);
        Link(ref root, branch, branch.Choose(key), created);
        Link(ref root, parent, slot, branch);
    }

    /// <summary>Hangs <paramref name="child"/> (may be null) under <paramref name="parent"/>, or at the root when parent is null.</summary>
    private static void Link(ref Node? root, Node? parent, int bit, Node? child)
    {
        if (child is not null)
        {
            child.Parent = parent;
            child.ParentBit = (byte)bit;
        }
        if (parent is null)
            Volatile.Write(ref root, child);
        else
            Volatile.Write(ref parent.Child(bit), child);
    }

    private void SetOwner(Node node, TPeer peer)
    {
        if (node.Peer is not null)
            DetachFromPeerList(node);
        ref PeerPrefixes prefixes = ref CollectionsMarshal.GetValueRefOrAddDefault(_byPeer, peer, out bool exists);
        if (exists)
        {
            node.PeerPrevious = prefixes.Last;
            prefixes.Last.PeerNext = node;
        }
        else
        {
            prefixes.First = node;
        }
        prefixes.Last = node;
        _count++;
        Volatile.Write(ref node.Peer, peer);
    }

    /// <summary>Takes an owned node out of its owner's list (the node keeps its owner until the caller changes it).</summary>
    private void DetachFromPeerList(Node node)
    {
        TPeer owner = node.Peer!;
        ref PeerPrefixes prefixes = ref CollectionsMarshal.GetValueRefOrNullRef(_byPeer, owner);
        Node? previous = node.PeerPrevious, next = node.PeerNext;
        if (previous is null && next is null)
        {
            _byPeer.Remove(owner);
        }
        else
        {
            if (previous is null)
                prefixes.First = next!;
            else
                previous.PeerNext = next;
            if (next is null)
                prefixes.Last = previous!;
            else
                next.PeerPrevious = previous;
        }
        node.PeerPrevious = null;
        node.PeerNext = null;
        _count--;
    }

    /// <summary>
    /// Drops <paramref name="node"/>'s prefix and restores the invariant that a peerless node has
    /// two children: a peerless node with one child is replaced by that child, with none it goes.
    /// </summary>
    private void RemoveNode(Node node)
    {
        DetachFromPeerList(node);
        Volatile.Write(ref node.Peer, null);
        ref Node? root = ref node.Bits == 32 ? ref _root4 : ref _root6;

        Node? left = node.Child0, right = node.Child1;
        if (left is not null && right is not null)
            return; // still a branch point

        Node? only = left ?? right;
        Node? parent = node.Parent;
        Link(ref root, parent, node.ParentBit, only);

        // If the node was a leaf under a peerless branch point, that branch now has one child:
        // replace it by its remaining child.
        if (only is null && parent is not null && parent.Peer is null)
        {
            Node? sibling = parent.Child(node.ParentBit ^ 1);
            Link(ref root, parent.Parent, parent.ParentBit, sibling);
        }
    }
}
