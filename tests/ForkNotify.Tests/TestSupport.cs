using System.Security.Cryptography;

namespace ForkNotify.Tests;

/// <summary>Reads the committed known-answer vector files (key = value lines, # comments).</summary>
internal static class Vectors
{
    public static Dictionary<string, string> Load(string file)
    {
        var values = new Dictionary<string, string>();
        foreach (string line in File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Vectors", file)))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            int eq = line.IndexOf(" = ", StringComparison.Ordinal);
            values[line[..eq]] = line[(eq + 3)..];
        }
        return values;
    }
}

/// <summary>Deterministic "host entropy": the same bytes for every generator that uses one with the same seed.</summary>
internal sealed class FixedEntropy(byte seed = 7) : ForkNotify.IRandomGenerator
{
    private byte _next = seed;
    public int Calls;
    public Action? OnFill;

    public void Fill(Span<byte> destination)
    {
        Calls++;
        OnFill?.Invoke();
        for (int i = 0; i < destination.Length; i++) destination[i] = _next++;
    }
}

internal static class Bytes
{
    public static byte[] Of(ForkNotify.IRandomGenerator rng, int n)
    {
        var b = new byte[n];
        rng.Fill(b);
        return b;
    }

    public static byte[] Sha256(params byte[][] parts)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (byte[] p in parts) h.AppendData(p);
        return h.GetHashAndReset();
    }
}
