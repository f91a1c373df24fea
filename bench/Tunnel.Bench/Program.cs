using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Tunnel.Bench;

// Run with: bash bench/run-micro.sh            (the whole suite, short job, results in bench/results/)
//      or:  dotnet run -c Release --project bench/Tunnel.Bench -- --filter '*Aead*'
// A job named on the command line (--job dry, --job default, ...) replaces the short job of
// MicroConfig: BenchmarkDotNet would otherwise run both.
// Modes that are not BenchmarkDotNet runs:
//      dotnet run -c Release --project bench/Tunnel.Bench -- race-window [--out FILE] [--seeds N]
//      dotnet run -c Release --project bench/Tunnel.Bench -- fork-timeline [--reps N]
//      dotnet run -c Release --project bench/Tunnel.Bench -- pipeline [--seconds S]
switch (args.FirstOrDefault())
{
    case "race-window":
        return RaceWindow.Run(args[1..]);
    case "fork-timeline":
        return ForkTimeline.Run(args[1..]);
    case "pipeline":
        return PipelineScaling.Run(args[1..]);
}

bool jobGiven = args.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
IConfig config = jobGiven ? DefaultConfig.Instance : new MicroConfig();
BenchmarkSwitcher.FromAssembly(typeof(MicroConfig).Assembly).Run(args, config);
return 0;
