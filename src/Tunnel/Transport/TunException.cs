namespace Tunnel.Transport;

/// <summary>
/// The TUN device cannot be created or configured. <see cref="Exception.Message"/> is meant for
/// the user as is (e.g. "needs root or CAP_NET_ADMIN"); <see cref="IsPermissionProblem"/> lets a
/// host choose its exit code.
/// </summary>
public sealed class TunException(string message, bool isPermissionProblem = false, Exception? inner = null)
    : Exception(message, inner)
{
    public bool IsPermissionProblem { get; } = isPermissionProblem;
}
