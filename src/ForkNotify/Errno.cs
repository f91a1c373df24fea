namespace ForkNotify;

/// <summary>The Linux errno values this library returns (negated, as the kernel returns them).</summary>
public static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EIO = 5;
    public const int EEXIST = 17;
}
