using System.Security.Cryptography;
using System.Text;

namespace Tunnel.Uapi;

/// <summary>
/// The bytes of one UAPI reply. A get reply holds the private and preshared keys in hex, so unlike
/// a StringBuilder this buffer zeroes every array it lets go of: the old one when it grows, the
/// last one on <see cref="Dispose"/>.
/// </summary>
public sealed class UapiReplyBuffer : IDisposable
{
    private byte[] _bytes;
    private int _length;

    public UapiReplyBuffer(int capacity = 1024) => _bytes = new byte[capacity];

    public ReadOnlyMemory<byte> Written => _bytes.AsMemory(0, _length);

    public int Length => _length;

    /// <summary>Zeroes what was written and starts again at the front (a get reply is sent in
    /// pieces of one buffer).</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_bytes.AsSpan(0, _length));
        _length = 0;
    }

    /// <summary>Appends ASCII text (UAPI replies are ASCII; anything else becomes '?').</summary>
    public UapiReplyBuffer Append(ReadOnlySpan<char> text)
    {
        Reserve(text.Length);
        foreach (var c in text)
            _bytes[_length++] = c < 0x80 ? (byte)c : (byte)'?';
        return this;
    }

    public UapiReplyBuffer Append(char c) => Append([c]);

    public override string ToString() => Encoding.ASCII.GetString(_bytes, 0, _length);

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_bytes);
        _length = 0;
    }

    private void Reserve(int more)
    {
        if (_length + more <= _bytes.Length)
            return;
        var bigger = new byte[Math.Max(_bytes.Length * 2, _length + more)];
        _bytes.AsSpan(0, _length).CopyTo(bigger);
        CryptographicOperations.ZeroMemory(_bytes);
        _bytes = bigger;
    }
}
