using System.Security.Cryptography;

namespace ForkNotify;

/// <summary>
/// Host entropy a snapshot cannot copy: /dev/hwrng (virtio-rng on Firecracker and QEMU). The guest
/// driver may hold a few prefetched bytes that the snapshot copied (the hw_random core's and
/// virtio-rng's buffers are a cache line or two, 32-128 bytes), so it reads <see cref="ReadLength"/>
/// bytes, well past any such buffer, and hashes them all: the tail comes from the host after the
/// resume.
/// </summary>
public sealed class HwRngInput(string path = HwRngInput.DefaultPath) : ICloneUniqueInput
{
    public const string DefaultPath = "/dev/hwrng";

    /// <summary>
    /// Bytes read per fork: 1 KiB, eight times the largest driver buffer. Not more: the fork path
    /// waits for it, and a Firecracker virtio-rng here delivers about 9 KB/s (16 KiB took 1.75 s,
    /// 1 KiB about 0.1 s).
    /// </summary>
    public const int ReadLength = 1024;

    public string Name => path;

    /// <summary>True when the device exists (it may still refuse reads).</summary>
    public bool IsPresent => File.Exists(path);

    public bool TryRead(Span<byte> digest)
    {
        byte[] buffer = new byte[ReadLength];
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            int total = 0;
            while (total < buffer.Length)
            {
                int n = stream.Read(buffer, total, buffer.Length - total);
                if (n <= 0)
                    return false;
                total += n;
            }
            SHA256.HashData(buffer, digest);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }
}
