using System.Diagnostics;
using System.Text;
using Tunnel.Config;
using Xunit;

namespace Tunnel.Tests.Config;

/// <summary>
/// Issue 12: a hub's config of 100,000 peers parses, a repeated peer is still found, and the parse
/// grows linearly. The bound is loose on purpose (not a timing test): ten times the peers may take
/// at most 30 times as long, where linear is 10 and the old quadratic duplicate check was about 65.
/// </summary>
public sealed class ConfigScaleTests
{
    private static readonly string PrivateKey = Convert.ToBase64String(new byte[32]);

    [Fact]
    public void A_100000_peer_config_parses()
    {
        string text = Config(100_000, duplicateAt: -1);
        using TunnelConfig config = Parse(text);
        Assert.Equal(100_000, config.Peers.Count);
        Assert.Equal(System.Net.IPNetwork.Parse("10.1.134.160/32"), config.Peers[99_999].AllowedIps.Single());
    }

    [Fact]
    public void A_repeated_peer_among_100000_is_found()
    {
        // Peer 99,999 repeats peer 3. Peer i's [Peer] header is line 4 + 4i, its PublicKey 5 + 4i.
        var error = Assert.Throws<ConfigException>(() => Parse(Config(100_000, duplicateAt: 3)));
        Assert.Contains($"PublicKey repeats the peer of line {4 + 4 * 3}", error.Message);
        Assert.Contains($":{5 + 4 * 99_999}:", error.Message);
    }

    [Fact]
    public void Parse_time_grows_linearly()
    {
        string small = Config(10_000, duplicateAt: -1), large = Config(100_000, duplicateAt: -1);
        Parse(small).Dispose(); // JIT and warm caches
        double smallTime = Fastest(small), largeTime = Fastest(large);
        Assert.True(largeTime < 30 * smallTime,
            $"10x the peers took {largeTime / smallTime:F1}x as long ({smallTime * 1000:F0} ms, {largeTime * 1000:F0} ms): not linear");
    }

    /// <summary>The quickest of three parses, in seconds: the least disturbed by a loaded machine.</summary>
    private static double Fastest(string text)
    {
        double best = double.MaxValue;
        for (int run = 0; run < 3; run++)
        {
            var clock = Stopwatch.StartNew();
            Parse(text).Dispose();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return best;
    }

    private static TunnelConfig Parse(string text) => new ConfigParser(_ => []).Parse(text, "hub.conf");

    /// <summary>An interface and <paramref name="peers"/> peers of four lines each, one /32 each; the
    /// last peer repeats the key of peer <paramref name="duplicateAt"/> when that is not -1.</summary>
    private static string Config(int peers, int duplicateAt)
    {
        var text = new StringBuilder($"[Interface]\nPrivateKey = {PrivateKey}\n");
        var key = new byte[32];
        for (int i = 0; i < peers; i++)
        {
            int keyOf = i == peers - 1 && duplicateAt >= 0 ? duplicateAt : i;
            BitConverter.TryWriteBytes(key, keyOf + 1);
            int host = i + 1;
            text.Append($"\n[Peer]\nPublicKey = {Convert.ToBase64String(key)}\n")
                .Append($"AllowedIPs = 10.{(byte)(host >> 16)}.{(byte)(host >> 8)}.{(byte)host}/32\n");
        }
        return text.ToString();
    }
}
