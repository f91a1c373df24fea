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
//      dotnet run -c Release --project bench/Tunnel.Bench -- peer-scale [--sizes 10000,100000]
//      dotnet run -c Release --project bench/Tunnel.Bench -- timer-scale [idle|clear|rekey]... [--peers N,N,...]
//      ip netns exec NS dotnet run ... -- route-install --routes N [--ip-batch]   (root; bench/scale.sh)
//      dotnet run -c Release --project bench/Tunnel.Bench -- pipeline [--seconds S]
//      dotnet run -c Release --project bench/Tunnel.Bench -- handshake-steps [--count N] [--loop]
switch (args.FirstOrDefault())
{
    case "race-window":
        return RaceWindow.Run(args[1..]);
    case "fork-timeline":
        return ForkTimeline.Run(args[1..]);
    case "peer-scale":
        return PeerScale.Run(args[1..]);
    case "timer-scale":
        return TimerScale.Run(args[1..]);
    case "route-install":
        return RouteInstall.Run(args[1..]);
    case "pipeline":
        return PipelineScaling.Run(args[1..]);
    case "handshake-steps":
        return HandshakeSteps.Run(args[1..]);
}

bool jobGiven = args.Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
IConfig config = jobGiven ? DefaultConfig.Instance : new MicroConfig();
BenchmarkSwitcher.FromAssembly(typeof(MicroConfig).Assembly).Run(args, config);
return 0;
