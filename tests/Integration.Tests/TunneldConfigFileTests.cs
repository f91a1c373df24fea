using Xunit;

namespace Integration.Tests;

/// <summary>
/// What <c>tunneld up</c> accepts as a config file, and what its errors never show: only regular
/// files up to the size cap; a key written without ' = ' is not echoed. None of these needs root:
/// the file is judged before anything is created.
/// </summary>
public sealed class TunneldConfigFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Runs <c>tunneld up PATH</c>; a file it cannot refuse quickly fails the test by timing out.</summary>
    private static CommandResult Up(string path) =>
        ProcessRunner.Run([TunneldBinary.Path, "up", path, "--interface", "tdcfg0"], timeoutMs: 20_000);

    [Fact]
    public void DevZeroIsRefusedAtOnce()
    {
        var result = Up("/dev/zero");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("/dev/zero:0: is not a regular file", result.Error);
    }

    [Fact]
    public void AFifoIsRefusedWithoutWaitingForAWriter()
    {
        var fifo = Path.Combine(_dir, "wg0.conf");
        ProcessRunner.Check(["mkfifo", fifo]);
        var result = Up(fifo);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("is not a regular file", result.Error);
    }

    [Fact]
    public void ADirectoryIsSaidToBeOne()
    {
        var result = Up(_dir);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{_dir}:0: is a directory", result.Error);
    }

    [Fact]
    public void AFileOverTheCapIsRefusedWithTheCap()
    {
        var path = Path.Combine(_dir, "big.conf");
        using (var file = File.Create(path))
            file.SetLength((64L << 20) + 1); // sparse: nothing is written
        var result = Up(path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("at most 64 MiB", result.Error);
    }

    [Fact]
    public void APrivateKeyWithoutItsEqualsSignIsNotEchoed()
    {
        var key = KeyPair.Create().Private;
        var path = Path.Combine(_dir, "typo.conf");
        File.WriteAllText(path, $"[Interface]\nPrivateKey {key}\n");
        var result = Up(path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{path}:2: expected 'Key = Value'", result.Error);
        Assert.DoesNotContain(key[..43], result.Error + result.Output); // the key less its padding
        Assert.DoesNotContain(key[..12], result.Error + result.Output);
    }
}
