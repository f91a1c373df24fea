using ForkNotify;
using Tunnel.Device;

namespace Tunneld;

/// <summary>
/// The command line of <c>tunneld up</c>: <c>CONFIG [--interface NAME] [--fork-mode MODE]
/// [--fork-source SOURCE] [--vmclock-path PATH] [--sysgenid-path PATH] [--sysgenid-ack-path PATH]
/// [--kmsg-path PATH] [--crypto-workers N]</c>, options as <c>--name value</c> or <c>--name=value</c>, in any order.
/// Everything that can be judged without touching the host is judged here, so a bad command line
/// fails (exit 2) before anything is opened.
/// </summary>
internal sealed class UpOptions
{
    private static readonly string Modes = string.Join('|', Enum.GetValues<ForkGuardMode>().Select(ForkGuardModes.Name));
    private static readonly string Sources = "auto|" + string.Join('|', Enum.GetValues<ForkSourceKind>().Select(ForkSourceKinds.Name));

    public required string ConfigPath { get; init; }

    /// <summary>Null: the config file's base name.</summary>
    public string? InterfaceName { get; init; }

    /// <summary>Null: the default, <c>both</c> when the source is a pull counter, else <c>notifier</c>.</summary>
    public ForkGuardMode? ForkMode { get; init; }

    /// <summary>Null: <c>auto</c>.</summary>
    public ForkSourceKind? ForkSource { get; init; }

    public ForkSourcePaths Paths { get; init; } = new();

    /// <summary>Threads that seal and open, the reading ones included; 0 (the default): one per processor.</summary>
    public int CryptoWorkers { get; init; }

    /// <summary>Parses the arguments after <c>up</c>; false with a one-line <paramref name="problem"/>.</summary>
    public static bool TryParse(IReadOnlyList<string> args, out UpOptions? options, out string? problem)
    {
        options = null;
        problem = null;
        string? config = null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (config is not null)
                    return Fail($"more than one config file ('{config}', '{arg}')", out problem);
                config = arg;
                continue;
            }
            string name, value;
            var eq = arg.IndexOf('=');
            if (eq >= 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                name = arg;
                if (!IsKnown(name))
                    return Fail($"unknown option '{name}'", out problem);
                if (i + 1 >= args.Count)
                    return Fail($"{name} needs a value", out problem);
                value = args[++i];
            }
            if (!IsKnown(name))
                return Fail($"unknown option '{name}'", out problem);
            if (value.Length == 0)
                return Fail($"{name} needs a value", out problem);
            if (!values.TryAdd(name, value))
                return Fail($"{name} given twice", out problem);
        }
        if (config is null)
            return Fail("up needs a CONFIG file", out problem);

        ForkGuardMode? mode = null;
        if (values.TryGetValue("--fork-mode", out var modeText))
        {
            if (!ForkGuardModes.TryParse(modeText, out var parsed))
                return Fail($"--fork-mode: '{modeText}' is not one of {Modes}", out problem);
            mode = parsed;
        }
        ForkSourceKind? source = null;
        var sourceText = values.GetValueOrDefault("--fork-source", "auto");
        if (sourceText != "auto")
        {
            if (!ForkSourceKinds.TryParse(sourceText, out var parsed))
                return Fail($"--fork-source: '{sourceText}' is not one of {Sources}", out problem);
            source = parsed;
        }

        if (mode == ForkGuardMode.Off)
        {
            var watched = values.Keys.FirstOrDefault(k => k != "--interface" && k != "--fork-mode" && k != "--crypto-workers"
                && !(k == "--fork-source" && sourceText == "none"));
            if (watched is not null)
                return Fail($"--fork-mode off watches no fork source: drop {watched}", out problem);
        }
        else if (mode is { } hot && ForkGuardModes.NeedsPullCounter(hot) && source is { } only && !ForkSourceKinds.HasPullCounter(only))
        {
            return Fail($"--fork-mode {ForkGuardModes.Name(hot)} needs a pull counter, and only vmgenid and vmclock are " +
                $"(--fork-source {sourceText} only notifies); use --fork-mode notifier", out problem);
        }
        foreach (var (option, kind) in new[]
        {
            ("--vmclock-path", ForkSourceKind.VmClock), ("--sysgenid-path", ForkSourceKind.SysGenId),
            ("--sysgenid-ack-path", ForkSourceKind.SysGenId), ("--kmsg-path", ForkSourceKind.Kmsg),
        })
        {
            if (values.ContainsKey(option) && source is not null && source != kind)
                return Fail($"{option} is for --fork-source {ForkSourceKinds.Name(kind)} (or auto), not {sourceText}", out problem);
        }

        var workers = 0;
        if (values.TryGetValue("--crypto-workers", out var workersText)
            && (!int.TryParse(workersText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out workers)
                || workers is < 1 or > 256))
            return Fail($"--crypto-workers: '{workersText}' is not a count from 1 to 256", out problem);

        var defaults = new ForkSourcePaths();
        options = new UpOptions
        {
            ConfigPath = config,
            InterfaceName = values.GetValueOrDefault("--interface"),
            ForkMode = mode,
            ForkSource = source,
            CryptoWorkers = workers,
            Paths = new ForkSourcePaths
            {
                VmClock = values.GetValueOrDefault("--vmclock-path", defaults.VmClock),
                SysGenId = values.GetValueOrDefault("--sysgenid-path", defaults.SysGenId),
                SysGenIdAck = values.GetValueOrDefault("--sysgenid-ack-path"),
                Kmsg = values.GetValueOrDefault("--kmsg-path", defaults.Kmsg),
            },
        };
        return true;
    }

    /// <summary>
    /// The fork options of <c>tunneld IFNAME</c>, which wg-quick starts with no flags: from
    /// <c>TUNNELD_FORK_MODE</c>, <c>TUNNELD_FORK_SOURCE</c>, <c>TUNNELD_VMCLOCK_PATH</c>,
    /// <c>TUNNELD_SYSGENID_PATH</c> and <c>TUNNELD_KMSG_PATH</c>, judged as the matching
    /// <c>up</c> options are.
    /// </summary>
    public static bool TryParseEnvironment(string interfaceName, out UpOptions? options, out string? problem)
    {
        List<string> args = [interfaceName, "--interface", interfaceName];
        foreach (var (variable, option) in new[]
        {
            ("TUNNELD_FORK_MODE", "--fork-mode"), ("TUNNELD_FORK_SOURCE", "--fork-source"),
            ("TUNNELD_VMCLOCK_PATH", "--vmclock-path"), ("TUNNELD_SYSGENID_PATH", "--sysgenid-path"),
            ("TUNNELD_KMSG_PATH", "--kmsg-path"), ("TUNNELD_CRYPTO_WORKERS", "--crypto-workers"),
        })
        {
            var value = Environment.GetEnvironmentVariable(variable);
            if (!string.IsNullOrEmpty(value))
                args.Add($"{option}={value}");
        }
        if (TryParse(args, out options, out problem))
            return true;
        problem = problem!.Replace("--fork-mode", "TUNNELD_FORK_MODE").Replace("--fork-source", "TUNNELD_FORK_SOURCE")
            .Replace("--crypto-workers", "TUNNELD_CRYPTO_WORKERS");
        return false;
    }

    private static bool IsKnown(string name) => name is "--interface" or "--fork-mode" or "--fork-source"
        or "--vmclock-path" or "--sysgenid-path" or "--sysgenid-ack-path" or "--kmsg-path" or "--crypto-workers";

    private static bool Fail(string message, out string? problem)
    {
        problem = message;
        return false;
    }
}
