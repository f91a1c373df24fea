namespace ForkNotify;

/// <summary>
/// A pipe whose read end a source's thread polls alongside its device, so <c>Dispose</c> can wake a
/// thread blocked in <c>poll()</c> (closing the device fd under a blocked call does not).
/// </summary>
internal sealed unsafe class WakePipe : IDisposable
{
    private readonly int _readFd;
    private readonly int _writeFd;
    private int _disposed;

    public WakePipe()
    {
        int* fds = stackalloc int[2];
        if (LibC.Pipe2(fds, LibC.O_CLOEXEC | LibC.O_NONBLOCK) != 0)
            throw new IOException($"pipe2: {LibC.Describe(LibC.LastError)}");
        _readFd = fds[0];
        _writeFd = fds[1];
    }

    /// <summary>The fd to poll for <c>POLLIN</c>: readable once <see cref="Signal"/> was called.</summary>
    public int Fd => _readFd;

    public bool IsSignalled { get; private set; }

    public void Signal()
    {
        IsSignalled = true;
        byte one = 1;
        LibC.Write(_writeFd, &one, 1);
    }

    /// <summary>
    /// Polls <paramref name="fd"/> (if not -1) for <paramref name="events"/> and the wake pipe;
    /// returns the revents of <paramref name="fd"/>, 0 on timeout or wake.
    /// </summary>
    public short Wait(int fd, short events, int timeoutMs)
    {
        LibC.PollFd* fds = stackalloc LibC.PollFd[2];
        fds[0] = new LibC.PollFd { Fd = _readFd, Events = LibC.POLLIN };
        fds[1] = new LibC.PollFd { Fd = fd, Events = events };
        int n = LibC.Poll(fds, fd >= 0 ? 2u : 1u, timeoutMs);
        if (n <= 0 || IsSignalled)
            return 0;
        return fds[1].Revents;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        LibC.Close(_readFd);
        LibC.Close(_writeFd);
    }
}
