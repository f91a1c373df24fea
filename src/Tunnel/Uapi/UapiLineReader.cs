using System.Net.Sockets;

namespace Tunnel.Uapi;

/// <summary>
/// Reads '\n'-terminated lines from a UAPI connection into one fixed buffer, so a client can make
/// the server hold at most <see cref="UapiServerOptions.MaxLineLength"/> bytes of any line and
/// never an unbounded string. Bytes are ASCII; a byte outside it makes the line invalid.
/// </summary>
internal sealed class UapiLineReader
{
    private readonly Socket _socket;
    private readonly byte[] _buffer;
    private readonly char[] _line;
    private int _start;
    private int _end;

    public UapiLineReader(Socket socket, int maxLineLength)
    {
        _socket = socket;
        _buffer = new byte[maxLineLength + 1];
        _line = new char[maxLineLength];
    }

    /// <summary>Bytes consumed so far (lines plus their newlines), for the request size cap.</summary>
    public long Consumed { get; set; }

    /// <summary>
    /// The next line without its '\n' (valid until the next call), or a status when there is none:
    /// end of stream, a line longer than the cap, or a non-ASCII byte.
    /// </summary>
    public async ValueTask<(LineStatus Status, int Length)> ReadLineAsync(CancellationToken cancel)
    {
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                var length = newline - _start;
                var status = LineStatus.Line;
                for (var i = 0; i < length; i++)
                {
                    var b = _buffer[_start + i];
                    if (b is >= 0x80 or 0)
                        status = LineStatus.NotAscii;
                    _line[i] = (char)b;
                }
                _start = newline + 1;
                Consumed += length + 1;
                return (status, length);
            }
            if (_end - _start >= _buffer.Length - 1)
                return (LineStatus.TooLong, 0);
            if (_start > 0)
            {
                // Slide the partial line to the front so the whole buffer is usable for it.
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            var read = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancel);
            if (read == 0)
                return (LineStatus.EndOfStream, 0);
            _end += read;
        }
    }

    public ReadOnlySpan<char> Line(int length) => _line.AsSpan(0, length);

    /// <summary>Wipes the line buffers: a set request carries private keys in hex.</summary>
    public void Clear()
    {
        Array.Clear(_buffer);
        Array.Clear(_line);
    }
}

internal enum LineStatus
{
    Line,
    EndOfStream,
    TooLong,
    NotAscii,
}
