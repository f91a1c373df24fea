// tunneld: the daemon host (composition root). Commands as wg(8) and wg-quick(8) users expect.
using Tunnel.Uapi;
using Tunneld;

const string Usage = """
    Usage: tunneld COMMAND [ARGS]

      [-f|--foreground] IFNAME       as wireguard-go IFNAME (what wg-quick runs): create interface
                                     IFNAME with an empty device and its UAPI socket, for wg or
                                     wg-quick to configure; go to the background once the socket
                                     listens (-f or WG_PROCESS_FOREGROUND=1: stay). Exits when the
                                     interface is deleted (wg-quick down). LOG_LEVEL=debug|error|
                                     silent; TUNNELD_FORK_MODE, TUNNELD_FORK_SOURCE,
                                     TUNNELD_CRYPTO_WORKERS as the options

      up CONFIG [--interface NAME] [--fork-mode MODE] [--fork-source SOURCE]
                                     run an interface from a wg-quick style file in the foreground
                                     until SIGTERM or SIGINT (interface name: the file's base name)
          --fork-mode off|notifier|hotpath|both
                                     default: both when the source is a pull counter (vmgenid,
                                     vmclock), else notifier; hotpath and both need one of them
          --fork-source auto|vmgenid|vmclock|sysgenid|kmsg|uevent|none
                                     default auto: the first usable of vmgenid (root, /dev/mem),
                                     vmclock, sysgenid, kmsg (with the vmgenid driver), uevent
                                     (Linux 6.8 only)
          --vmclock-path PATH, --sysgenid-path PATH, --kmsg-path PATH
                                     the device to watch instead of /dev/... (tests: a file)
          --crypto-workers N         threads that seal and open, the TUN and UDP ones included
                                     (default: one per processor; 1: no extra thread)
      genkey                         print a new private key (base64), like wg genkey
      pubkey                         read a private key on stdin, print its public key
      demo [--clones N] [--seed S] [--delays MS,...] [--rate PPS]
                                     the fork-safety demonstration: a VM with the tunnel forked
                                     into clones, each fork-guard mode in turn, over loopback UDP
      --help                         this text

    Exit codes: 0 ok, 1 runtime failure (privileges, device, port), 2 bad command line or config.
    """;

// The daemon's commands harden the process before anything else (see Hardening).
if (args is ["up", ..] or ["-f" or "--foreground", _] || (args is [var only] && UapiServer.IsValidInterfaceName(only)
        && !only.StartsWith('-') && only is not ("genkey" or "pubkey" or "demo" or "help")))
{
    Hardening.TurnOffDiagnostics(args);
    Hardening.MakeNonDumpable();
}

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
    case ["-f" or "--foreground", var name] when UapiServer.IsValidInterfaceName(name) && !name.StartsWith('-'):
        return await InterfaceCommand.RunAsync(name, foreground: true);
    case [var name] when UapiServer.IsValidInterfaceName(name) && !name.StartsWith('-') && name is not ("up" or "demo"):
        return await InterfaceCommand.RunAsync(name, foreground: false);
    case ["up", ..]:
        if (!UpOptions.TryParse(args[1..], out var up, out var problem))
        {
            Console.Error.WriteLine($"tunneld: {problem}\n");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        return await UpCommand.RunAsync(up!);
    default:
        Console.Error.WriteLine($"tunneld: unknown command line '{string.Join(' ', args)}'\n");
        Console.Error.WriteLine(Usage);
        return 2;
}
