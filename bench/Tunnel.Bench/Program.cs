using BenchmarkDotNet.Running;

// Run with: dotnet run -c Release --project bench/Tunnel.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
