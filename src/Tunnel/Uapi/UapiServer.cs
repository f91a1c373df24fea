using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Tunnel.Uapi;

/// <summary>
/// The cross-platform WireGuard UAPI on a Unix socket (<c>/var/run/wireguard/NAME.sock</c>), the
/// way wg(8) finds userspace implementations. One connection may carry several requests:
/// <c>get=1\n\n</c> and <c>set=1\n...\n\n</c>, each answered with <c>errno=N\n\n</c> last; an
/// unknown operation is not answered and the connection is closed. Clients are untrusted input
/// even at mode 0600: lines, requests, time and connections are all capped (see
/// <see cref="UapiServerOptions"/>), and nothing a client sends can throw out of the server.
/// </summary>
public sealed class UapiServer : IAsyncDisposable
{
    private readonly IUapiDevice _device;
    private readonly UapiServerOptions _options;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _operation = new(1, 1);
    private readonly ConcurrentDictionary<int, (UapiConnection Connection, Task Task)> _connections = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private int _nextConnection;

    public UapiServer(string interfaceName, IUapiDevice device, UapiServerOptions? options = null,
        ILogger? logger = null)
    {
        if (!IsValidInterfaceName(interfaceName))
            throw new ArgumentException($"'{interfaceName}' is not a valid interface name (1-15 characters, no '/' or spaces)",
                nameof(interfaceName));
        _device = device;
        _options = options ?? new UapiServerOptions();
        _log = logger ?? NullLogger.Instance;
        InterfaceName = interfaceName;
        SocketPath = Path.Combine(_options.SocketDirectory, interfaceName + ".sock");
    }

    public string InterfaceName { get; }
    public string SocketPath { get; }

    /// <summary>Linux IFNAMSIZ rules (at most 15 bytes, no '/', ':' or whitespace), narrowed to
    /// printable ASCII so the name is one byte per character and safe as a file name.</summary>
    public static bool IsValidInterfaceName(string name) =>
        name.Length is > 0 and <= 15 && name is not ("." or "..") &&
        name.All(c => c is > ' ' and < (char)0x7f and not ('/' or ':'));

    /// <summary>
    /// Starts serving on <see cref="UapiServerOptions.Listener"/> when one was handed over, else on
    /// a socket of its own (<see cref="Listen"/>). Throws <see cref="UapiServerException"/> when the
    /// socket cannot be had.
    /// </summary>
    public void Start()
    {
        if (_listener is not null)
            throw new InvalidOperationException("already started");
        _listener = _options.Listener ?? Listen(InterfaceName, _options, _log);
        _acceptLoop = Task.Run(AcceptLoopAsync);
        _log.LogInformation("UAPI listening on {Path}", SocketPath);
    }

    /// <summary>
    /// The listening socket for <paramref name="interfaceName"/>: creates the directory (0755) if
    /// needed, takes over a stale socket, refuses a live one, binds and listens (mode 0700). A
    /// parent process that hands the socket to a child (wireguard-go's <c>WG_UAPI_FD</c>) calls this
    /// itself. Throws <see cref="UapiServerException"/> when the socket cannot be had.
    /// </summary>
    public static Socket Listen(string interfaceName, UapiServerOptions? options = null, ILogger? logger = null)
    {
        if (OperatingSystem.IsWindows())
            throw new PlatformNotSupportedException("the UAPI Unix socket is served on Linux and other Unix systems");
        options ??= new UapiServerOptions();
        logger ??= NullLogger.Instance;
        var socketPath = Path.Combine(options.SocketDirectory, interfaceName + ".sock");
        try
        {
            Directory.CreateDirectory(options.SocketDirectory,
                UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                UnixFileMode.GroupRead | UnixFileMode.GroupExecute |
                UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UapiServerException($"cannot create {options.SocketDirectory}: {e.Message}", e);
        }
        RemoveStaleSocket(socketPath, interfaceName, logger);

        // Bound under a temporary name and renamed into place once it listens, with its mode:
        // the socket appears complete or not at all. It also keeps .NET from unlinking the real
        // path when this Socket object is disposed or the process exits (it deletes the path it
        // bound), which matters when a parent hands the socket to a child and exits.
        var bindPath = $"{socketPath}.{Environment.ProcessId}.tmp";
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            File.Delete(bindPath);
            listener.Bind(new UnixDomainSocketEndPoint(bindPath));
            File.SetUnixFileMode(bindPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            // A deep backlog: a burst of idle connections must not make a new client's connect wait
            // while the accept loop works through them (see UapiServerOptions.LineTimeout).
            listener.Listen(512);
            File.Move(bindPath, socketPath, overwrite: true);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            throw new UapiServerException($"cannot listen on {socketPath}: {e.Message}", e);
        }
        return listener;
    }

    private static void RemoveStaleSocket(string socketPath, string interfaceName, ILogger log)
    {
        if (!File.Exists(socketPath) && !Directory.Exists(socketPath))
            return;
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(socketPath));
                throw new UapiServerException(
                    $"{socketPath} is in use: another daemon serves interface {interfaceName}");
            }
            catch (SocketException)
            {
                // Nobody listening: a daemon died without cleaning up. Take the name over, as
                // wireguard-go does.
            }
        }
        try
        {
            File.Delete(socketPath);
            log.LogInformation("removed stale UAPI socket {Path}", socketPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UapiServerException($"cannot remove stale {socketPath}: {e.Message}", e);
        }
    }

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _log.LogWarning("UAPI accept failed: {Error}", e.SocketErrorCode);
                continue;
            }
            if (_connections.Count >= _options.MaxConnections && !EvictOldestIdle())
            {
                _log.LogWarning("UAPI: too many busy connections, closing a new one");
                client.Dispose();
                continue;
            }
            var id = Interlocked.Increment(ref _nextConnection);
            var connection = new UapiConnection(client, _options, _stop.Token);
            var task = ServeAsync(connection);
            _connections[id] = (connection, task);
            _ = task.ContinueWith(done => _connections.TryRemove(id, out var _), TaskScheduler.Default);
        }
    }

    /// <summary>
    /// At the connection cap: closes the connection that has been idle longest (connected but no
    /// request in progress), so idle clients can never lock a new one out. False when all are busy.
    /// </summary>
    private bool EvictOldestIdle()
    {
        UapiConnection? oldest = null;
        foreach (var (connection, _) in _connections.Values)
        {
            if (connection.Idle && (oldest is null || connection.Opened < oldest.Opened))
                oldest = connection;
        }
        if (oldest is null)
            return false;
        _log.LogDebug("UAPI: connection cap reached, closing the oldest idle connection");
        oldest.Evict();
        return true;
    }

    private async Task ServeAsync(UapiConnection connection)
    {
        await Task.Yield();
        var client = connection.Socket;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                connection.NextRequest();
                if (!await ServeOneAsync(connection))
                    return;
            }
        }
        catch (OperationCanceledException)
        {
            _log.LogDebug("UAPI connection closed: no complete line in time, or shutdown");
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            _log.LogDebug("UAPI connection dropped: {Error}", e.Message);
        }
        catch (Exception e)
        {
            // The device threw: a bug there, but the server keeps serving other clients.
            _log.LogError(e, "UAPI request failed");
        }
        finally
        {
            connection.Dispose();
            DiscardPending(client);
            client.Dispose();
        }
    }

    /// <summary>Serves one request; false when the connection must close.</summary>
    private async Task<bool> ServeOneAsync(UapiConnection connection)
    {
        var (status, length) = await connection.ReadLineAsync();
        if (status != LineStatus.Line)
            return false;
        var op = connection.Reader.Line(length);
        if (op.SequenceEqual("get=1"))
            return await GetAsync(connection);
        if (op.SequenceEqual("set=1"))
        {
            var more = await SetAsync(connection);
            if (connection.Reader.Consumed >= CompactAfterSetBytes)
            {
                // A set this big (wg setconf of thousands of peers) left its parsed request, some
                // 1.5 times its size, as garbage a quiet daemon would keep in its RSS for long:
                // give it back now (SetAsync has returned, so nothing holds the request). Sets
                // this big are rare configuration events, and so is the pause.
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            }
            return more;
        }
        _log.LogWarning("UAPI: unknown operation, closing connection");
        return false;
    }

    private async Task<bool> GetAsync(UapiConnection connection)
    {
        var (client, cancel) = (connection.Socket, connection.Token);
        var (status, length) = await connection.ReadLineAsync();
        connection.Replying();
        if (status == LineStatus.EndOfStream)
            return false;
        if (status != LineStatus.Line || length != 0)
        {
            await ReplyAsync(client, UapiErrno.Invalid, cancel);
            return false;
        }
        await _operation.WaitAsync(cancel);
        UapiDeviceState state;
        try
        {
            state = _device.GetState();
        }
        finally
        {
            _operation.Release();
        }
        // Sent in pieces of one buffer, peer by peer: formatting 100,000 peers whole took a 30 MB
        // buffer besides the snapshot. The client reads one stream either way.
        using var reply = new UapiReplyBuffer(GetReplyPieceBytes + 4096);
        try
        {
            UapiGetWriter.WriteDevice(state, reply);
            foreach (var peer in state.Peers)
            {
                UapiGetWriter.WritePeer(peer, reply);
                if (reply.Length >= GetReplyPieceBytes)
                {
                    await SendAsync(client, reply.Written, cancel);
                    reply.Clear();
                }
            }
        }
        finally
        {
            state.Dispose();
        }
        reply.Append("errno=0\n\n");
        await SendAsync(client, reply.Written, cancel);
        return true;
    }

    /// <summary>A get reply goes out whenever this much of it is formatted.</summary>
    private const int GetReplyPieceBytes = 64 * 1024;

    private async Task<bool> SetAsync(UapiConnection connection)
    {
        var (client, reader) = (connection.Socket, connection.Reader);
        var parser = new UapiSetParser();
        using var request = parser.Request;
        while (true)
        {
            var (status, length) = await connection.ReadLineAsync();
            if (status == LineStatus.EndOfStream)
                return false; // an unfinished request is never applied
            if (status != LineStatus.Line || reader.Consumed > _options.MaxRequestBytes)
            {
                _log.LogWarning("UAPI set refused: {Problem}",
                    status == LineStatus.Line ? "request too large" : status == LineStatus.TooLong ? "line too long" : "non-ASCII line");
                connection.Replying();
                await ReplyAsync(client, UapiErrno.Invalid, connection.Token);
                return false; // cannot find the next request boundary reliably
            }
            if (length == 0)
                break;
            parser.Line(reader.Line(length));
        }

        connection.Replying();
        var cancel = connection.Token;
        var errno = parser.Errno;
        if (errno != UapiErrno.Ok)
        {
            _log.LogWarning("UAPI set refused, nothing changed: {Problem}", parser.Problem);
        }
        else
        {
            await _operation.WaitAsync(cancel);
            connection.Applying();
            try
            {
                errno = _device.ApplySet(request);
            }
            catch (Exception e)
            {
                _log.LogError(e, "UAPI set: device failed");
                errno = UapiErrno.Unknown;
            }
            finally
            {
                _operation.Release();
            }
            // Applying 100,000 peers takes seconds (an X25519 per new peer): the client still gets
            // its whole reply time, or wg would report a failure for a set that took effect.
            connection.Replying();
        }
        await ReplyAsync(client, errno, cancel);
        return true;
    }

    /// <summary>A set of at least this many bytes is followed by a compacting collection.</summary>
    private const long CompactAfterSetBytes = 1 << 20;

    private static async Task ReplyAsync(Socket client, int errno, CancellationToken cancel)
    {
        using var reply = new UapiReplyBuffer(32);
        reply.Append("errno=").Append(errno.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append("\n\n");
        await SendAsync(client, reply.Written, cancel);
    }

    private static async Task SendAsync(Socket client, ReadOnlyMemory<byte> bytes, CancellationToken cancel)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await client.SendAsync(bytes, SocketFlags.None, cancel);
            bytes = bytes[sent..];
        }
    }

    /// <summary>
    /// Closing a Unix socket with unread input resets the connection, and the client would lose
    /// the errno line just sent. Swallow what has already arrived (bounded) so the close is clean.
    /// </summary>
    private static void DiscardPending(Socket client)
    {
        try
        {
            Span<byte> scratch = stackalloc byte[4096];
            for (var total = 0; total < 1 << 20 && client.Available > 0; )
                total += client.Receive(scratch, SocketFlags.None);
            client.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Stops accepting, cuts every connection and removes the socket file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        if (_listener is null)
            return;
        _listener.Dispose();
        if (_acceptLoop is not null)
            await _acceptLoop;
        await Task.WhenAll(_connections.Values.Select(c => c.Task));
        try
        {
            File.Delete(SocketPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("could not remove {Path}: {Error}", SocketPath, e.Message);
        }
    }
}

/// <summary>The UAPI socket cannot be served (in use, no permission, ...). The message is for users.</summary>
public sealed class UapiServerException(string message, Exception? inner = null) : Exception(message, inner);
