using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Device;
using Tunnel.Transport;

namespace Tunneld;

/// <summary>
/// Puts the daemon's fork protection together from the command line: chooses the host source
/// (probing what <c>auto</c> may use), settles the guard mode, and builds the guest-kernel model
/// whose generator the engine will draw from.
/// </summary>
internal static class ForkSetup
{
    /// <summary>
    /// 0 and the protection; or 1 (the requested source is not there) or 2 (the mode needs a pull
    /// counter the host lacks), having printed one line and left nothing open.
    /// </summary>
    public static int TryCreate(UpOptions options, ILoggerFactory loggers, out ForkProtection? protection)
    {
        protection = null;
        var log = loggers.CreateLogger("fork");
        var kernel = new ForkKernel(loggers.CreateLogger("fork-kernel"));
        if (options.ForkMode == ForkGuardMode.Off)
        {
            log.LogWarning("fork guard off: sessions are not protected against VM snapshot, restore or clone");
            protection = new ForkProtection(kernel, ForkGuardMode.Off, ForkSourceKind.None, null, logger: log);
            return 0;
        }

        var choice = ForkSourceSelection.Choose(options.ForkSource, options.Paths, logger: loggers.CreateLogger("fork-source"));
        if (choice.Failure is not null)
        {
            Console.Error.WriteLine($"tunneld: --fork-source {ForkSourceKinds.Name(choice.Kind)}: {choice.Failure}");
            return 1;
        }
        var mode = options.ForkMode ?? (choice.PullCounter is not null ? ForkGuardMode.Both : ForkGuardMode.Notifier);
        if (ForkGuardModes.NeedsPullCounter(mode) && choice.PullCounter is null)
        {
            choice.Source?.Dispose();
            Console.Error.WriteLine($"tunneld: --fork-mode {ForkGuardModes.Name(mode)} needs a pull counter (vmgenid or vmclock) " +
                $"and this host has none: {choice.Describe()}");
            return 2;
        }

        log.LogInformation("{Choice}", choice.Describe());
        if (choice.Source is VmGenIdSource vmGenId)
            log.LogInformation("vmgenid: the ID's address comes from {Origin}", vmGenId.Origin);
        log.LogInformation("fork guard mode {Mode}{Why}", ForkGuardModes.Name(mode), options.ForkMode is not null ? ""
            : choice.PullCounter is not null ? " (default with a pull counter)" : " (default without a pull counter)");
        if (choice.Source is null)
            log.LogWarning("no fork source: a VM snapshot restore or clone would go unnoticed");
        else if (choice.PullCounter is null)
            log.LogWarning("{Source} only notifies: a clone may send under the old keys until the notification arrives", choice.Source.Name);
        // A VMClock (or SysGenID) fork is the same in every sibling clone: /dev/hwrng makes the reseed unique.
        var hwrng = new HwRngInput();
        protection = new ForkProtection(kernel, mode, choice.Kind, choice.Source, choice.PullCounter, log,
            hwrng.IsPresent ? hwrng : null);
        return 0;
    }
}
