using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tunnel.Crypto;

namespace Tunnel.Config;

/// <summary>
/// Reads a wg-quick style file (<c>[Interface]</c> and <c>[Peer]</c> sections of <c>Key = Value</c>
/// lines). Section names and keys are case-insensitive and '#' starts a comment, as in wg(8).
/// Every problem is a <see cref="ConfigException"/> naming the line; nothing is half-parsed.
/// <para>
/// wg-quick's own options (DNS, Table, PreUp, PostUp, PreDown, PostDown, SaveConfig) are accepted
/// and reported as warnings: a user who points tunneld at an existing wg-quick file expects it to
/// load, and the warning tells them those hooks did not run. Any other unknown key is an error, as
/// <c>wg setconf</c> makes it (a typo such as <c>AllowedIP</c> must not silently drop a route).
/// </para>
/// </summary>
public sealed class ConfigParser
{
    private static readonly string[] WgQuickOnlyKeys =
        ["DNS", "Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig"];

    private readonly Func<string, IPAddress[]> _resolve;

    /// <param name="resolve">Host name lookup for endpoints; <see cref="Dns.GetHostAddresses(string)"/>
    /// when null (tests pass their own so they never touch a resolver).</param>
    public ConfigParser(Func<string, IPAddress[]>? resolve = null) =>
        _resolve = resolve ?? Dns.GetHostAddresses;

    /// <summary>
    /// Reads and parses <paramref name="path"/> (<see cref="ConfigFile.ReadAll"/>: regular files of
    /// at most 64 MiB). The bytes are parsed line by line without making strings of them and are
    /// zeroed afterwards, pass or fail: the file holds the keys.
    /// </summary>
    public TunnelConfig ParseFile(string path)
    {
        var bytes = ConfigFile.ReadAll(path);
        try
        {
            return Parse(bytes, path);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>Parses UTF-8 file contents. Each line is decoded into one reused char buffer,
    /// which is zeroed at the end; no line becomes a string.</summary>
    public TunnelConfig Parse(ReadOnlySpan<byte> utf8, string fileName)
    {
        var state = new ParseState(fileName, _resolve);
        var line = new char[256];
        try
        {
            var number = 0;
            while (!utf8.IsEmpty)
            {
                var newline = utf8.IndexOf((byte)'\n');
                var raw = newline < 0 ? utf8 : utf8[..newline];
                utf8 = newline < 0 ? default : utf8[(newline + 1)..];
                number++;
                var most = Encoding.UTF8.GetMaxCharCount(raw.Length);
                if (line.Length < most)
                {
                    Array.Clear(line);
                    line = new char[most];
                }
                var length = Encoding.UTF8.GetChars(raw, line);
                Line(state, number, line.AsSpan(0, length));
            }
        }
        finally
        {
            Array.Clear(line);
        }
        return state.Finish();
    }

    public TunnelConfig Parse(string text, string fileName)
    {
        var state = new ParseState(fileName, _resolve);
        var rest = text.AsSpan();
        var number = 0;
        while (!rest.IsEmpty)
        {
            var newline = rest.IndexOf('\n');
            var raw = newline < 0 ? rest : rest[..newline];
            rest = newline < 0 ? default : rest[(newline + 1)..];
            number++;
            Line(state, number, raw);
        }
        return state.Finish();
    }

    private static void Line(ParseState state, int number, ReadOnlySpan<char> line)
    {
        var hash = line.IndexOf('#');
        if (hash >= 0)
            line = line[..hash];
        line = line.Trim();
        if (!line.IsEmpty)
            state.Line(number, line);
    }

    /// <summary>The parse in progress: one instance per file.</summary>
    private sealed class ParseState(string fileName, Func<string, IPAddress[]> resolve)
    {
        private enum Section { None, Interface, Peer }

        private Section _section;
        private int _interfaceLine;
        private byte[]? _privateKey;
        private ushort _listenPort;
        private uint _fwMark;
        private int _mtu = InterfaceConfig.DefaultMtu;
        private int _mtuLine;
        private readonly List<InterfaceAddress> _addresses = [];
        private PeerBuilder? _peer;
        private readonly List<PeerConfig> _peers = [];
        // Each peer's public key and the line of its [Peer]: the duplicate check stays O(1) per peer.
        private readonly Dictionary<PublicKey, int> _peerLines = [];
        private readonly List<string> _warnings = [];
        private readonly HashSet<string> _seenKeys = new(StringComparer.OrdinalIgnoreCase);
        private readonly List<byte[]> _secrets = [];

        public void Line(int number, ReadOnlySpan<char> line)
        {
            try
            {
                if (line[0] == '[')
                    Header(number, line);
                else
                    KeyValue(number, line);
            }
            catch (ConfigException)
            {
                Wipe();
                throw;
            }
        }

        private void Header(int number, ReadOnlySpan<char> line)
        {
            if (line[^1] != ']')
                throw Error(number, $"malformed section header '{line}'");
            var name = line[1..^1].Trim();
            FinishPeer();
            _seenKeys.Clear();
            if (name.Equals("Interface", StringComparison.OrdinalIgnoreCase))
            {
                if (_interfaceLine != 0)
                    throw Error(number, $"second [Interface] section (the first is on line {_interfaceLine})");
                _section = Section.Interface;
                _interfaceLine = number;
            }
            else if (name.Equals("Peer", StringComparison.OrdinalIgnoreCase))
            {
                _section = Section.Peer;
                _peer = new PeerBuilder(number);
            }
            else
            {
                throw Error(number, $"unknown section [{name}] (expected [Interface] or [Peer])");
            }
        }

        private void KeyValue(int number, ReadOnlySpan<char> line)
        {
            var eq = line.IndexOf('=');
            if (eq <= 0)
                throw Error(number, "expected 'Key = Value'");
            // Every key is one word of letters. Anything else is not echoed: in 'PrivateKey <key>'
            // (the ' = ' forgotten) the base64 padding is the first '=', and the "key" would be
            // the private key itself.
            var name = line[..eq].Trim();
            foreach (var c in name)
            {
                if (!char.IsAsciiLetter(c))
                    throw Error(number, "expected 'Key = Value' (a key is one word of letters; the line is not shown, as it may hold a key)");
            }
            var key = name.ToString();
            var value = line[(eq + 1)..].Trim();
            if (_section == Section.None)
                throw Error(number, $"'{key}' appears before any [Interface] or [Peer] section");

            foreach (var ignored in WgQuickOnlyKeys)
            {
                if (_section == Section.Interface && key.Equals(ignored, StringComparison.OrdinalIgnoreCase))
                {
                    _warnings.Add($"{fileName}:{number}: {ignored} is a wg-quick option; ignored by tunneld");
                    return;
                }
            }
            if (!_seenKeys.Add(key) && !IsListKey(key))
                throw Error(number, $"{key} given twice in one section");

            if (_section == Section.Interface)
                InterfaceKey(number, key, value);
            else
                PeerKey(number, key, value);
        }

        private static bool IsListKey(string key) =>
            key.Equals("Address", StringComparison.OrdinalIgnoreCase) ||
            key.Equals("AllowedIPs", StringComparison.OrdinalIgnoreCase);

        private void InterfaceKey(int number, string key, ReadOnlySpan<char> value)
        {
            switch (key.ToLowerInvariant())
            {
                case "privatekey":
                    _privateKey = Key(number, "PrivateKey", value);
                    break;
                case "listenport":
                    _listenPort = (ushort)Number(number, "ListenPort", value, 0, 65535);
                    break;
                case "fwmark":
                    _fwMark = value.Equals("off", StringComparison.OrdinalIgnoreCase)
                        ? 0
                        : (uint)Number(number, "FwMark", value, 0, uint.MaxValue);
                    break;
                case "mtu":
                    _mtu = (int)Number(number, "MTU", value, 576, 65535);
                    _mtuLine = number;
                    break;
                case "address":
                    foreach (var item in List(number, "Address", value, allowEmpty: false))
                    {
                        if (!IpPrefix.TryParseAddress(item, out var address, out var length))
                            throw Error(number, $"Address '{item}' is not an IPv4 or IPv6 address with an optional /prefix");
                        _addresses.Add(new InterfaceAddress(address, length));
                    }
                    break;
                default:
                    throw Error(number, $"unknown key '{key}' in [Interface]");
            }
        }

        private void PeerKey(int number, string key, ReadOnlySpan<char> value)
        {
            var peer = _peer!;
            switch (key.ToLowerInvariant())
            {
                case "publickey":
                    peer.PublicKey = Key(number, "PublicKey", value);
                    if (!_peerLines.TryAdd(new PublicKey(peer.PublicKey), peer.Line))
                        throw Error(number, $"PublicKey repeats the peer of line {_peerLines[new PublicKey(peer.PublicKey)]}");
                    break;
                case "presharedkey":
                    peer.PresharedKey = Key(number, "PresharedKey", value);
                    break;
                case "allowedips":
                    // An empty AllowedIPs is legal in wg: a peer that carries no traffic yet.
                    foreach (var item in List(number, "AllowedIPs", value, allowEmpty: true))
                    {
                        if (!IpPrefix.TryParse(item, out var prefix))
                            throw Error(number, $"AllowedIPs entry '{item}' is not an IPv4 or IPv6 prefix");
                        peer.AllowedIps.Add(prefix);
                    }
                    break;
                case "endpoint":
                    peer.Endpoint = Endpoint(number, value);
                    break;
                case "persistentkeepalive":
                    peer.PersistentKeepalive = value.Equals("off", StringComparison.OrdinalIgnoreCase)
                        ? (ushort)0
                        : (ushort)Number(number, "PersistentKeepalive", value, 0, 65535);
                    break;
                default:
                    throw Error(number, $"unknown key '{key}' in [Peer]");
            }
        }

        private byte[] Key(int number, string name, ReadOnlySpan<char> value)
        {
            var key = new byte[KeyText.KeyLength];
            _secrets.Add(key);
            if (!KeyText.TryDecodeBase64(value, key))
                throw Error(number, $"{name} is not a base64 32-byte key (44 characters ending in '=')");
            return key;
        }

        private ulong Number(int number, string name, ReadOnlySpan<char> value, ulong min, ulong max)
        {
            if (value.IsEmpty || !char.IsAsciiDigit(value[0]) ||
                !ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ||
                n < min || n > max)
                throw Error(number, $"{name} must be a number from {min} to {max}, not '{value}'");
            return n;
        }

        private List<string> List(int number, string name, ReadOnlySpan<char> value, bool allowEmpty)
        {
            var items = new List<string>();
            if (value.IsEmpty && allowEmpty)
                return items;
            foreach (var range in value.Split(','))
            {
                var item = value[range].Trim();
                if (item.IsEmpty)
                    throw Error(number, $"{name} has an empty entry");
                items.Add(item.ToString());
            }
            return items;
        }

        private IPEndPoint Endpoint(int number, ReadOnlySpan<char> value)
        {
            ReadOnlySpan<char> host, port;
            if (value.StartsWith("["))
            {
                var close = value.IndexOf(']');
                if (close < 0 || close + 1 >= value.Length || value[close + 1] != ':')
                    throw Error(number, $"Endpoint '{value}' must be [IPv6]:port");
                host = value[1..close];
                port = value[(close + 2)..];
                if (!IPAddress.TryParse(host, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
                    throw Error(number, $"Endpoint '{value}': '{host}' is not an IPv6 address");
            }
            else
            {
                var colon = value.LastIndexOf(':');
                if (colon <= 0)
                    throw Error(number, $"Endpoint '{value}' must be host:port");
                host = value[..colon];
                port = value[(colon + 1)..];
                if (host.Contains(':'))
                    throw Error(number, $"Endpoint '{value}': write an IPv6 address as [address]:port");
            }
            var portNumber = (int)Number(number, "Endpoint port", port, 1, 65535);

            if (IPAddress.TryParse(host, out var literal) && (host.Contains(':') || host.Count('.') == 3))
                return new IPEndPoint(literal, portNumber);

            var hostName = host.ToString();
            IPAddress[] addresses;
            try
            {
                addresses = resolve(hostName);
            }
            catch (Exception e) when (e is SocketException or ArgumentException)
            {
                throw Error(number, $"Endpoint host '{hostName}' does not resolve: {e.Message}");
            }
            // getaddrinfo order, as wg uses the first answer; v4 first when both exist keeps
            // behaviour stable on hosts without IPv6 routes.
            var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                         ?? addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetworkV6);
            if (chosen is null)
                throw Error(number, $"Endpoint host '{hostName}' has no IPv4 or IPv6 address");
            return new IPEndPoint(chosen, portNumber);
        }

        private void FinishPeer()
        {
            if (_peer is null)
                return;
            if (_peer.PublicKey is null)
                throw Error(_peer.Line, "[Peer] has no PublicKey");
            _peers.Add(_peer.Build());
            _peer = null;
        }

        public TunnelConfig Finish()
        {
            try
            {
                FinishPeer();
                if (_interfaceLine == 0)
                    throw Error(0, "no [Interface] section");
                if (_privateKey is null)
                    throw Error(_interfaceLine, "[Interface] has no PrivateKey");
                if (_mtu < 1280 && _addresses.Any(a => a.Address.AddressFamily == AddressFamily.InterNetworkV6))
                    throw Error(_mtuLine, $"MTU {_mtu} is below 1280, the minimum for the IPv6 addresses given");
            }
            catch (ConfigException)
            {
                Wipe();
                throw;
            }
            var iface = new InterfaceConfig
            {
                PrivateKey = _privateKey,
                ListenPort = _listenPort,
                FwMark = _fwMark,
                Mtu = _mtu,
                Addresses = _addresses.ToArray(),
            };
            return new TunnelConfig(fileName, iface, _peers.ToArray(), _warnings.ToArray());
        }

        private ConfigException Error(int number, string problem) => new(fileName, number, problem);

        /// <summary>A failed parse must not leave decoded keys behind in the heap.</summary>
        private void Wipe()
        {
            foreach (var secret in _secrets)
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
        }
    }

    private sealed class PeerBuilder(int line)
    {
        public int Line { get; } = line;
        public byte[]? PublicKey;
        public byte[]? PresharedKey;
        public readonly List<IPNetwork> AllowedIps = [];
        public IPEndPoint? Endpoint;
        public ushort PersistentKeepalive;

        public PeerConfig Build() => new()
        {
            PublicKey = PublicKey!,
            PresharedKey = PresharedKey,
            AllowedIps = AllowedIps.ToArray(),
            Endpoint = Endpoint,
            PersistentKeepalive = PersistentKeepalive,
            Line = Line,
        };
    }
}
