using System.Text.Json;

namespace Tunnel.Tests.Vectors;

/// <summary>Reads the known-answer files committed next to this class (copied to the test output).</summary>
internal static class VectorFile
{
    public static JsonElement Load(string fileName)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Vectors", fileName);
        using var stream = File.OpenRead(path);
        return JsonDocument.Parse(stream).RootElement.Clone();
    }

    public static byte[] Hex(this JsonElement element, string property) =>
        Convert.FromHexString(element.GetProperty(property).GetString()!);
}
