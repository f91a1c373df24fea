// tunneld: the daemon host (composition root). Commands as wg(8) and wg-quick(8) users expect.
using Tunneld;

const string Usage = """
    Usage: tunneld COMMAND [ARGS]

      up CONFIG [--interface NAME]   run an interface from a wg-quick style file in the foreground
                                     until SIGTERM or SIGINT (interface name: the file's base name)
      genkey                         print a new private key (base64), like wg genkey
      pubkey                         read a private key on stdin, print its public key
      demo [--clones N] [--seed S] [--delays MS,...] [--rate PPS]
                                     the fork-safety demonstration: a VM with the tunnel forked
                                     into clones, each fork-guard mode in turn, over loopback UDP
      --help                         this text

    Exit codes: 0 ok, 1 runtime failure (privileges, device, port), 2 bad command line or config.
    """;

switch (args)
{
    case [] or ["--help"] or ["-h"] or ["help"]:
        Console.WriteLine(Usage);
        return args.Length == 0 ? 2 : 0;
    case ["genkey"]:
        return KeyCommands.GenKey(Console.Out);
    case ["pubkey"]:
        return KeyCommands.PubKey(Console.In, Console.Out, Console.Error);
    case ["demo", ..]:
        return DemoCommand.Run(args[1..], Console.Out, Console.Error);
    case ["up", var config]:
        return await UpCommand.RunAsync(config, null);
    case ["up", var config, "--interface", var name]:
        return await UpCommand.RunAsync(config, name);
    case ["up", "--interface", var name, var config]:
        return await UpCommand.RunAsync(config, name);
    default:
        Console.Error.WriteLine($"tunneld: unknown command line '{string.Join(' ', args)}'\n");
        Console.Error.WriteLine(Usage);
        return 2;
}
