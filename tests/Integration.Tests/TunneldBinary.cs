namespace Integration.Tests;

/// <summary>
/// Where the built tunneld is: <c>TUNNELD_PATH</c> if set, else next to this test assembly in the
/// artifacts layout (<c>bin/Integration.Tests/CONFIG/</c> -> <c>bin/Tunneld/CONFIG/tunneld</c>).
/// </summary>
public static class TunneldBinary
{
    public static string Path
    {
        get
        {
            var overridden = Environment.GetEnvironmentVariable("TUNNELD_PATH");
            if (!string.IsNullOrEmpty(overridden))
                return overridden;
            var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
            var candidate = System.IO.Path.Combine(here.Parent!.Parent!.FullName, "Tunneld", here.Name, "tunneld");
            if (!File.Exists(candidate))
                throw new FileNotFoundException($"tunneld not found at {candidate}; build tools/Tunneld or set TUNNELD_PATH");
            return candidate;
        }
    }
}
