using System.Net.Sockets;

namespace Tunnel.Uapi;

/// <summary>
/// One client of the <see cref="UapiServer"/> and its clock. Every line must be complete within
/// <see cref="UapiServerOptions.LineTimeout"/> of asking for it, and a whole request within
/// <see cref="UapiServerOptions.RequestTimeout"/>, so a client that connects and says nothing (or
/// trickles) holds its slot for about a second. Between requests it is <see cref="Idle"/>: the
/// server may close it to make room for a new client, which never waits behind idle ones.
/// </summary>
internal sealed class UapiConnection : IDisposable
{
    private readonly UapiServerOptions _options;
    private readonly CancellationTokenSource _deadline;
    private long _requestStarted;
    private volatile bool _idle = true;

    public UapiConnection(Socket socket, UapiServerOptions options, CancellationToken stop)
    {
        Socket = socket;
        _options = options;
        Reader = new UapiLineReader(socket, options.MaxLineLength);
        _deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);
        Opened = Environment.TickCount64;
        _requestStarted = Opened;
    }

    public Socket Socket { get; }
    public UapiLineReader Reader { get; }

    /// <summary>When the connection was accepted (milliseconds, <see cref="Environment.TickCount64"/>).</summary>
    public long Opened { get; }

    /// <summary>True while no request is in progress (nothing, or not a whole first line, received).</summary>
    public bool Idle => _idle;

    /// <summary>Cancelled at the deadline now in force, or at server shutdown.</summary>
    public CancellationToken Token => _deadline.Token;

    /// <summary>The next line, within the line deadline (and what is left of the request's).</summary>
    public async ValueTask<(LineStatus Status, int Length)> ReadLineAsync()
    {
        var allowed = _options.RequestTimeout + _options.RequestTimePerMiB * ((double)Reader.Consumed / (1 << 20));
        var left = allowed - TimeSpan.FromMilliseconds(Environment.TickCount64 - _requestStarted);
        _deadline.CancelAfter(left < _options.LineTimeout ? (left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1)) : _options.LineTimeout);
        var line = await Reader.ReadLineAsync(_deadline.Token);
        _idle = false;
        return line;
    }

    /// <summary>The request's lines are in, or it is applied: what follows (applying it, writing the
    /// reply) gets the request time from now.</summary>
    public void Replying() => _deadline.CancelAfter(_options.RequestTimeout);

    /// <summary>A validated set is being applied: no deadline may cut it off halfway through the
    /// reply (the apply itself is bounded by the request's size).</summary>
    public void Applying() => _deadline.CancelAfter(Timeout.InfiniteTimeSpan);

    /// <summary>Waiting for the next request: idle again, with a new request clock.</summary>
    public void NextRequest()
    {
        _idle = true;
        _requestStarted = Environment.TickCount64;
        Reader.Consumed = 0;
    }

    /// <summary>Closes the socket under a pending read (to make room for a new client).</summary>
    public void Evict() => Socket.Dispose();

    public void Dispose()
    {
        Reader.Clear();
        _deadline.Dispose();
    }
}
