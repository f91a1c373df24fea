using System.Runtime.InteropServices;
using Tunnel.Transport;

namespace Tunnel.Config;

/// <summary>
/// Reads a configuration file into bytes, refusing what cannot be one: anything but a regular file
/// (a directory, <c>/dev/zero</c>, a FIFO, a socket) and anything over <see cref="MaxBytes"/>. The
/// file is opened non-blocking (a FIFO would otherwise block the open until a writer came) and
/// judged by fstat on that descriptor, so it cannot be swapped between the check and the read. The
/// caller parses the bytes and zeroes them: the file holds keys.
/// </summary>
public static unsafe class ConfigFile
{
    /// <summary>
    /// 64 MiB. A peer with a public key, a preshared key, IPv4 and IPv6 allowed IPs, an IPv6
    /// endpoint and a keepalive is about 240 bytes, so 100,000 peers take about 24 MB: the cap leaves
    /// more than twice that for comments and longer lists, and stops <c>/dev/zero</c>-like input.
    /// </summary>
    public const int MaxBytes = 64 << 20;

    /// <summary>The whole file. Throws <see cref="ConfigException"/> (line 0) with the reason.</summary>
    public static byte[] ReadAll(string path)
    {
        var fd = LibC.Open(path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new ConfigException(path, 0, $"cannot read file: {LibC.Describe(errno)}");
        }
        try
        {
            LibC.Statx status;
            if (LibC.StatxCall(fd, "", LibC.AT_EMPTY_PATH, LibC.STATX_TYPE | LibC.STATX_SIZE, &status) < 0)
                throw new ConfigException(path, 0, $"cannot read file: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            var type = status.Mode & LibC.S_IFMT;
            if (type == LibC.S_IFDIR)
                throw new ConfigException(path, 0, "is a directory, not a config file");
            if (type != LibC.S_IFREG)
                throw new ConfigException(path, 0, "is not a regular file (a device, FIFO or socket); give a config file");
            if (status.Size > MaxBytes)
                throw new ConfigException(path, 0, $"is {status.Size} bytes; a config file may have at most {MaxBytes >> 20} MiB");
            return ReadUpTo(fd, path, (int)status.Size);
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Reads until end of file; a file that grew past the cap while read is refused.</summary>
    private static byte[] ReadUpTo(int fd, string path, int expected)
    {
        var buffer = new byte[Math.Min(MaxBytes, expected + 1)];
        var total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (buffer.Length == MaxBytes)
                {
                    Array.Clear(buffer);
                    throw new ConfigException(path, 0, $"grew past {MaxBytes >> 20} MiB while being read");
                }
                var larger = new byte[Math.Min(MaxBytes, buffer.Length * 2)];
                buffer.CopyTo(larger, 0);
                Array.Clear(buffer);
                buffer = larger;
            }
            nint n;
            fixed (byte* p = &buffer[total])
                n = LibC.Read(fd, p, (nuint)(buffer.Length - total));
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR)
                    continue;
                Array.Clear(buffer);
                throw new ConfigException(path, 0, $"cannot read file: {LibC.Describe(errno)}");
            }
            if (n == 0)
                break;
            total += (int)n;
        }
        if (total == buffer.Length)
            return buffer;
        var exact = buffer.AsSpan(0, total).ToArray();
        Array.Clear(buffer);
        return exact;
    }
}
