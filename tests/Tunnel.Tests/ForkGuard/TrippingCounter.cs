using ForkNotify;

namespace Tunnel.Tests.Guard;

/// <summary>
/// A pull counter the "hypervisor" moves, and can arm to move at the instant of its next read: the
/// snapshot then falls between whatever the engine did last and that read (between encrypting a
/// packet and its hot-path check, between a handshake's gate and its transmit).
/// </summary>
internal sealed class TrippingCounter(ulong initial) : IGenerationCounter
{
    private readonly VmGeneration _value = new(initial);
    private Action? _onNextRead;

    public ulong Current => _value.Current;

    public ulong Advance() => _value.Advance();

    /// <summary>The next read first moves the counter, then runs <paramref name="then"/>, then reads.</summary>
    public void MoveAtNextRead(Action? then = null) => _onNextRead = () =>
    {
        _value.Advance();
        then?.Invoke();
    };

    public ulong Read()
    {
        if (_onNextRead is { } trip)
        {
            _onNextRead = null;
            trip();
        }
        return _value.Read();
    }
}
