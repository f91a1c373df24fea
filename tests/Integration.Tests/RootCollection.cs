using Xunit;

namespace Integration.Tests;

/// <summary>
/// Tests that create namespaces, interfaces and daemons. Names are unique per test, but the machine
/// is small and /var/run/wireguard is shared, so these run one at a time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RootCollection
{
    public const string Name = "root network tests";

    /// <summary>Skips (loudly) unless root and every named tool is installed.</summary>
    public static void RequireRootAnd(params string[] tools)
    {
        if (!ProcessRunner.IsRoot)
            Assert.Skip("SKIPPED: needs root (network namespaces, TUN devices, /var/run/wireguard)");
        var missing = tools.Where(t => !ProcessRunner.OnPath(t)).ToArray();
        if (missing.Length > 0)
            Assert.Skip($"SKIPPED: needs {string.Join(", ", missing)} (scripts/setup.sh installs them)");
    }
}
