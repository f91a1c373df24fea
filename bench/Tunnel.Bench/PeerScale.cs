using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Tunnel.Config;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// Issue 12's in-process figures for the peer set: adding N peers (one /32 each) to a device that
/// has a private key, removing 1,000 of them from the middle, listing them, parsing an N-peer
/// config file, and the managed heap each idle peer keeps. Wall-clock, one run per size: the
/// quadratic costs this tracks are seconds, not nanoseconds, so BenchmarkDotNet's repetitions
/// would only make the run long.
/// </summary>
/// <remarks>
/// Run: <c>dotnet run -c Release --project bench/Tunnel.Bench -- peer-scale [--sizes 10000,20000,40000,100000]</c>
/// </remarks>
internal static class PeerScale
{
    public static int Run(string[] args)
    {
        int[] sizes = [10_000, 20_000, 40_000, 100_000];
        for (int i = 0; i < args.Length - 1; i++)
        {
            if (args[i] == "--sizes")
                sizes = args[i + 1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        }

        Console.WriteLine("| peers | AddPeer + /32 (s) | RemovePeer x1000 mid (ms) | Peers x1000 (ms) | parse (s) | heap per idle peer (bytes) | heap per peer with a session (bytes) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int n in sizes)
            Console.WriteLine(Row(n));

        Console.WriteLine();
        Console.WriteLine("| peers | set request (MB) | parse set (s) | allocated by the parse (MB) | apply set (s) | get + format (s) | get reply (MB) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int n in sizes)
            Console.WriteLine(UapiRow(n));
        return 0;
    }

    /// <summary>A wg setconf-shaped set of <paramref name="n"/> peers through the UAPI parser and
    /// DeviceUapi in process (the socket is measured with the real wg in docs/BENCHMARKS.md).</summary>
    private static string UapiRow(int n)
    {
        byte[][] keys = Keys(n, seed: n + 1);
        var request = new StringBuilder("private_key=").Append('1', 64).Append("\nreplace_peers=true\n");
        Span<byte> address = stackalloc byte[4];
        for (int i = 0; i < n; i++)
        {
            Address(i, address);
            request.Append("public_key=").Append(Convert.ToHexStringLower(keys[i]))
                .Append("\nendpoint=192.0.2.1:").Append(1 + i % 60000)
                .Append("\nreplace_allowed_ips=true\nallowed_ip=").Append(address[0]).Append('.').Append(address[1])
                .Append('.').Append(address[2]).Append('.').Append(address[3]).Append("/32\n");
        }
        string[] lines = request.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Heap();
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var parse = Stopwatch.StartNew();
        var parser = new Tunnel.Uapi.UapiSetParser();
        foreach (string line in lines)
            parser.Line(line);
        parse.Stop();
        if (parser.Errno != 0)
            throw new InvalidOperationException(parser.Problem);
        long parsedHeap = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;

        using var device = new TunnelDevice(new DeviceOptions(), new DiscardingIo());
        var uapi = new Tunnel.Uapi.DeviceUapi(device);
        var apply = Stopwatch.StartNew();
        using (parser.Request)
            uapi.ApplySet(parser.Request);
        apply.Stop();

        var get = Stopwatch.StartNew();
        using var reply = new Tunnel.Uapi.UapiReplyBuffer();
        using (var state = uapi.GetState())
            Tunnel.Uapi.UapiGetWriter.Write(state, reply);
        get.Stop();

        return string.Create(CultureInfo.InvariantCulture,
            $"| {n:N0} | {request.Length / 1e6:F1} | {parse.Elapsed.TotalSeconds:F3} | {parsedHeap / 1e6:F1} | {apply.Elapsed.TotalSeconds:F3} | {get.Elapsed.TotalSeconds:F3} | {reply.Written.Length / 1e6:F1} |");
    }

    private static string Row(int n)
    {
        byte[][] keys = Keys(n, seed: n);
        var io = new DiscardingIo();
        using var device = new TunnelDevice(new DeviceOptions(), io);
        var privateKey = new byte[32];
        privateKey[0] = 1;
        device.SetPrivateKey(privateKey);

        long heapBefore = Heap();
        var add = Stopwatch.StartNew();
        Span<byte> address = stackalloc byte[4];
        for (int i = 0; i < n; i++)
        {
            Peer peer = device.AddPeer(keys[i]);
            Address(i, address);
            device.AllowedIps.Insert(address, 32, peer);
        }
        add.Stop();
        long perPeer = (Heap() - heapBefore) / n;

        var list = Stopwatch.StartNew();
        long seen = 0;
        for (int i = 0; i < 1000; i++)
            foreach (Peer _ in device.Peers)
                if (++seen < 0)
                    break;
        list.Stop();

        var remove = Stopwatch.StartNew();
        for (int i = 0; i < 1000; i++)
            device.RemovePeer(keys[n / 2 - 500 + i]);
        remove.Stop();

        string text = ConfigText(keys);
        var parse = Stopwatch.StartNew();
        using (TunnelConfig config = new ConfigParser(_ => []).Parse(text, "bench.conf"))
        {
            if (config.Peers.Count != n)
                throw new InvalidOperationException("parse lost peers");
        }
        parse.Stop();

        long perSession = perPeer + SessionHeap(device);

        return string.Create(CultureInfo.InvariantCulture,
            $"| {n:N0} | {add.Elapsed.TotalSeconds:F3} | {remove.Elapsed.TotalMilliseconds:F1} | {list.Elapsed.TotalMilliseconds:F1} | {parse.Elapsed.TotalSeconds:F3} | {perPeer:N0} | {perSession:N0} |");
    }

    /// <summary>
    /// What a live session adds to an idle peer, per peer: every peer sends a real initiation
    /// (which makes its Noise state, ss and cookie generator) and then holds a current keypair
    /// (two session keys, the replay window, its index), as after a completed handshake.
    /// </summary>
    private static long SessionHeap(TunnelDevice device)
    {
        Peer[] peers = [.. device.Peers];
        long before = Heap();
        Span<byte> send = stackalloc byte[32];
        Span<byte> receive = stackalloc byte[32];
        foreach (Peer peer in peers)
        {
            peer.SendHandshakeInitiation(isRetry: false);
            Random.Shared.NextBytes(send);
            Random.Shared.NextBytes(receive);
            uint local = device.Indexes.Insert(peer);
            var keypair = new Keypair(new SessionKeys(send, receive, isInitiator: true, local, local), peer, 0, 0);
            if (!device.Indexes.Replace(local, peer, keypair))
                throw new InvalidOperationException("index table refused the keypair");
            peer.Keypairs.Add(keypair, out _, out _);
        }
        CryptographicOperations.ZeroMemory(send);
        CryptographicOperations.ZeroMemory(receive);
        return (Heap() - before) / peers.Length;
    }

    private static long Heap()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    internal static byte[][] Keys(int n, int seed)
    {
        var random = new Random(seed);
        var keys = new byte[n][];
        for (int i = 0; i < n; i++)
        {
            keys[i] = new byte[32];
            random.NextBytes(keys[i]);
        }
        return keys;
    }

    /// <summary>10.0.0.0/8 and up, one distinct /32 per peer.</summary>
    private static void Address(int i, Span<byte> address)
    {
        int host = i + 1;
        address[0] = (byte)(10 + (host >> 24));
        address[1] = (byte)(host >> 16);
        address[2] = (byte)(host >> 8);
        address[3] = (byte)host;
    }

    private static string ConfigText(byte[][] keys)
    {
        var text = new StringBuilder("[Interface]\nPrivateKey = ").Append(Convert.ToBase64String(new byte[32])).Append('\n');
        Span<byte> address = stackalloc byte[4];
        for (int i = 0; i < keys.Length; i++)
        {
            Address(i, address);
            text.Append("\n[Peer]\nPublicKey = ").Append(Convert.ToBase64String(keys[i]))
                .Append("\nAllowedIPs = ").Append(address[0]).Append('.').Append(address[1]).Append('.')
                .Append(address[2]).Append('.').Append(address[3]).Append("/32\n");
        }
        return text.ToString();
    }
}
