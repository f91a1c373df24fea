namespace ForkNotify;

/// <summary>
/// A device opened read-only and one read-only shared mapping of it: the page a fork source reads
/// with plain loads, no syscall (the VMClock page, the vmgenid ID's page of <c>/dev/mem</c>). The
/// descriptor stays open while mapped (VMClock also polls and reads it); <see cref="Close"/> unmaps,
/// then closes, and leaves the object ready for another <see cref="Open"/> (a probe that failed may
/// be retried). Not thread-safe: its owner's lock guards it.
/// </summary>
internal sealed unsafe class ReadOnlyMapping : IDisposable
{
    /// <summary>The descriptor, or -1.</summary>
    public int Fd { get; private set; } = -1;

    /// <summary>The mapping's first byte, or null.</summary>
    public byte* Address { get; private set; }

    /// <summary>Opens <paramref name="path"/> read-only and close-on-exec (never O_SYNC: a device
    /// mapped write-back by its driver refuses an uncached mapping). False with the errno.</summary>
    public bool Open(string path, out int errno)
    {
        Fd = LibC.Open(path, LibC.O_RDONLY | LibC.O_CLOEXEC);
        errno = Fd < 0 ? LibC.LastError : 0;
        return Fd >= 0;
    }

    /// <summary>Maps <paramref name="length"/> bytes from <paramref name="offset"/> (page-aligned),
    /// PROT_READ and MAP_SHARED, so the hypervisor's writes show. False with the errno.</summary>
    public bool Map(nuint length, long offset, out int errno)
    {
        nint map = LibC.MMap(0, length, LibC.PROT_READ, LibC.MAP_SHARED, Fd, offset);
        if (map == LibC.MAP_FAILED)
        {
            errno = LibC.LastError;
            return false;
        }
        Address = (byte*)map;
        _length = length;
        errno = 0;
        return true;
    }

    private nuint _length;

    public void Close()
    {
        if (Address != null)
        {
            LibC.MUnmap((nint)Address, _length);
            Address = null;
            _length = 0;
        }
        if (Fd >= 0)
        {
            LibC.Close(Fd);
            Fd = -1;
        }
    }

    public void Dispose() => Close();
}
