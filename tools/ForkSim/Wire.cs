using System.Net;
using System.Net.Sockets;
using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// The network between peer A's guests and peer B: every datagram is shown to the
/// <see cref="WireObserver"/>, then delivered after a latency as an event on the receiver's
/// scheduler (a guest's scheduler drops it once that guest is destroyed). Each station has its own
/// endpoint, as cloned VMs would have their own addresses.
/// </summary>
/// <remarks>
/// With <c>loopbackUdp</c> every station is a real UDP socket on 127.0.0.1 and each datagram
/// really crosses the loopback interface (sent on the sender's socket, received on the
/// receiver's, the source address taken from the socket); time stays virtual, so a run is as
/// repeatable as the simulated wire's, apart from the port numbers.
/// </remarks>
public sealed class Wire : IDisposable
{
    private readonly IScheduler _host;
    private readonly TimeSpan _latency;
    private readonly bool _loopbackUdp;
    private readonly Dictionary<Endpoint, Station> _stations = new();
    private readonly byte[] _receiveBuffer = new byte[65536];
    private int _nextHost = 1;

    public Wire(IScheduler host, TimeSpan latency, WireObserver observer, bool loopbackUdp = false)
    {
        _host = host;
        _latency = latency;
        _loopbackUdp = loopbackUdp;
        Observer = observer;
    }

    public WireObserver Observer { get; }

    /// <summary>Datagrams lost because nobody listens at their destination.</summary>
    public long Undeliverable { get; private set; }

    /// <summary>
    /// Connects a station and returns its endpoint: 192.0.2.N:51820 on the simulated wire, or the
    /// bound 127.0.0.1 port of a fresh socket in loopback mode.
    /// </summary>
    public Endpoint Attach(string name, IScheduler scheduler, Action<byte[], Endpoint> receive)
    {
        Socket? socket = null;
        Endpoint endpoint;
        if (_loopbackUdp)
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            socket.ReceiveTimeout = 2000;
            endpoint = Endpoint.FromIPEndPoint((IPEndPoint)socket.LocalEndPoint!);
        }
        else
        {
            int n = _nextHost++;
            endpoint = new Endpoint([192, 0, 2, (byte)n], 51820);
        }
        _stations[endpoint] = new Station(name, scheduler, receive, socket);
        return endpoint;
    }

    /// <summary>Puts <paramref name="datagram"/> on the wire from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public void Send(in Endpoint from, ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        Station sender = _stations[from];
        Observer.Record(_host.Now, sender.Name, from, datagram, to);
        if (!_stations.TryGetValue(to, out Station? receiver))
        {
            Undeliverable++;
            return;
        }
        byte[] bytes;
        Endpoint source = from;
        if (sender.Socket is { } socket && receiver.Socket is { } listener)
        {
            socket.SendTo(datagram, SocketFlags.None, to.ToIPEndPoint());
            // Loopback delivers into the receiver's queue during sendto; read it back at once so
            // the datagram enters the simulation at this virtual instant.
            EndPoint remote = new IPEndPoint(IPAddress.Any, 0);
            int n = listener.ReceiveFrom(_receiveBuffer, ref remote);
            bytes = _receiveBuffer.AsSpan(0, n).ToArray();
            source = Endpoint.FromIPEndPoint((IPEndPoint)remote);
        }
        else
        {
            bytes = datagram.ToArray();
        }
        receiver.Scheduler.Schedule(_latency, () => receiver.Receive(bytes, source));
    }

    public void Dispose()
    {
        foreach (Station s in _stations.Values)
            s.Socket?.Dispose();
        _stations.Clear();
    }

    private sealed record Station(string Name, IScheduler Scheduler, Action<byte[], Endpoint> Receive, Socket? Socket);
}
