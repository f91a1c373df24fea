namespace Tunnel.Uapi;

/// <summary>
/// What the UAPI server needs from a device. The server serializes calls (one UAPI operation at a
/// time, like wireguard-go's ipcMutex), but the device must still guard against its own data path.
/// </summary>
public interface IUapiDevice
{
    /// <summary>A snapshot of the configuration and counters for <c>get=1</c>.</summary>
    UapiDeviceState GetState();

    /// <summary>
    /// The body of a <c>get=1</c> reply into <paramref name="output"/>, handed to
    /// <paramref name="flush"/> (which sends and clears it) whenever it holds
    /// <paramref name="pieceBytes"/> or more. One consistent state, as <see cref="GetState"/>;
    /// a device with many peers writes them from its live state instead of a snapshot.
    /// </summary>
    void WriteState(UapiReplyBuffer output, int pieceBytes, Action<UapiReplyBuffer> flush)
    {
        using var state = GetState();
        UapiGetWriter.WriteDevice(state, output);
        foreach (var peer in state.Peers)
        {
            UapiGetWriter.WritePeer(peer, output);
            if (output.Length >= pieceBytes)
                flush(output);
        }
    }

    /// <summary>
    /// Applies a fully validated request. Returns <see cref="UapiErrno.Ok"/>, or a negative errno
    /// (e.g. <see cref="UapiErrno.PortInUse"/>) having changed nothing.
    /// </summary>
    int ApplySet(UapiSetRequest request);
}
