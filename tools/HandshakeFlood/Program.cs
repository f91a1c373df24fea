using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HandshakeFlood;

// handshake-flood: floods a WireGuard responder with handshake initiations that carry a valid
// mac1 (made from the responder's public key) and random content otherwise, the attack the
// cookie mechanism is for (whitepaper 5.3). For bench/flood.sh; only against your own responder.
if (!FloodOptions.TryParse(args, out FloodOptions? options, out string? error))
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine("usage: handshake-flood --target IP:PORT --public-key BASE64 [--rate N/s (0 = as fast as possible)] [--seconds S] [--ports N] [--source-base IPv4 --source-count N]");
    return 2;
}

var sockets = new Socket[options.Ports];
for (int i = 0; i < sockets.Length; i++)
{
    sockets[i] = new Socket(options.Target.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { Blocking = false };
    IPAddress local = options.Sources.Length > 0 ? options.Sources[i % options.Sources.Length]
        : options.Target.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any;
    sockets[i].Bind(new IPEndPoint(local, 0));
}
var maker = new InitiationMaker(options.PublicKey);
var destination = options.Target.Serialize();
Span<byte> message = stackalloc byte[InitiationMaker.Size];
Span<byte> sink = stackalloc byte[256];

long sent = 0, refused = 0, repliesSeen = 0, nextCount = 0;
var clock = Stopwatch.StartNew();
long end = (long)(options.Seconds * Stopwatch.Frequency);
// Unpaced within each millisecond: the share of the rate due by now goes out back to back.
while (clock.ElapsedTicks < end)
{
    // A flooder that falls behind (this machine's CPUs are shared) skips what it missed rather
    // than sending it late in one long burst: at most 10 ms' worth at once.
    long due = options.Rate == 0 ? sent + refused + 256 : (long)(clock.Elapsed.TotalSeconds * options.Rate);
    due = Math.Min(due, sent + refused + Math.Max(256, options.Rate / 100));
    while (sent + refused < due)
    {
        maker.Make(message);
        try
        {
            sockets[(sent + refused) % sockets.Length].SendTo(message, SocketFlags.None, destination);
            sent++;
        }
        catch (SocketException)
        {
            refused++; // the socket buffer is full: the flood outruns this machine
        }
    }
    // The responder's cookie replies come back to the flood's ports: count them (a lower bound,
    // the receive buffers overflow) every 100 ms, never answer them.
    if (clock.ElapsedMilliseconds < nextCount)
    {
        if (options.Rate != 0)
            Thread.Sleep(1);
        continue;
    }
    nextCount = clock.ElapsedMilliseconds + 100;
    foreach (var socket in sockets)
    {
        while (socket.Available > 0)
        {
            try { socket.Receive(sink); } catch (SocketException) { break; }
            repliesSeen++;
        }
    }
    if (options.Rate != 0)
        Thread.Sleep(1);
}
double seconds = clock.Elapsed.TotalSeconds;
Console.WriteLine($"sent {sent} initiations in {seconds:F1} s ({sent / seconds:F0}/s) from {sockets.Length} ports on {Math.Max(1, options.Sources.Length)} address(es); {refused} refused by the local socket; {repliesSeen} cookie replies seen");
foreach (var socket in sockets)
    socket.Dispose();
return 0;
