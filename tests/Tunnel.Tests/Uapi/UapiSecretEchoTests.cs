using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>Key material in a set request never reaches a log message, and a key given twice in
/// one request does not leave its first copy behind.</summary>
public sealed class UapiSecretEchoTests
{
    private const string Hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("preshared_key" + Hex + "=1")]      // the '=' forgotten: the "key" is the key
    [InlineData("private_key " + Hex + "=x")]
    [InlineData("x" + Hex + "=1")]
    public void AnInvalidKeyHoldingHexIsNotShown(string line)
    {
        var parser = new UapiSetParser();
        if (line.StartsWith("preshared", StringComparison.Ordinal))
            parser.Line("public_key=" + new string('1', 64));
        parser.Line(line);
        Assert.Equal(UapiErrno.Invalid, parser.Errno);
        Assert.NotNull(parser.Problem);
        Assert.DoesNotContain("0123456789", parser.Problem);
        Assert.DoesNotContain("89abcdef", parser.Problem);
    }

    [Fact]
    public void AnOrdinaryUnknownKeyIsStillNamed()
    {
        var parser = new UapiSetParser();
        parser.Line("listen_prot=1");
        Assert.Contains("listen_prot", parser.Problem);
    }

    [Fact]
    public void AKeyRepeatedInOneRequestZeroesItsFirstCopy()
    {
        var parser = new UapiSetParser();
        parser.Line("private_key=" + Hex);
        var first = parser.Request.PrivateKey!;
        parser.Line("private_key=" + new string('2', 64));
        Assert.All(first, b => Assert.Equal(0, b));
        Assert.Equal(0x22, parser.Request.PrivateKey![0]);

        parser.Line("public_key=" + new string('1', 64));
        parser.Line("preshared_key=" + Hex);
        var firstPsk = parser.Request.Peers[0].PresharedKey!;
        parser.Line("preshared_key=" + new string('3', 64));
        Assert.All(firstPsk, b => Assert.Equal(0, b));
        parser.Request.Dispose();
    }
}
