using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// A blocking notifier chain with the semantics of <c>kernel/notifier.c</c>: blocks run in
/// descending priority, first come first served among equal priorities; a block can be registered
/// once; a result with the stop bit ends the walk; <c>nr_to_call</c> limits and <c>nr_calls</c>
/// counts the blocks called (the stopping one included); the robust call rolls back the first
/// <c>nr-1</c> blocks, in chain order, when the "up" pass is stopped.
/// </summary>
/// <remarks>
/// Locking. The kernel guards a blocking chain with an rwsem: calls hold it for read, registration
/// for write, so once <c>unregister</c> returns no call is still running the block. Here one
/// reentrant monitor plays both roles, and the chain itself is an immutable array replaced on
/// every (un)registration (copy-on-write):
/// <list type="bullet">
/// <item>A call holds the monitor for its whole duration and walks the array it read on entry, so
/// both passes of a robust call see the same chain, and concurrent callers are serialised.</item>
/// <item>A registration from another thread waits for the running call (like <c>down_write</c>);
/// after <see cref="Unregister"/> returns, no call is running the block.</item>
/// <item>A registration from inside a callback, on the calling thread, re-enters the monitor
/// instead of deadlocking (the kernel would deadlock). It replaces the array, so it takes effect
/// at the next call: a block that unregisters itself finishes the current walk normally, and one
/// added during a call is not called by that call.</item>
/// </list>
/// A callback that throws counts as <see cref="NotifyResult.Bad"/> and is logged; the chain and its
/// lock stay usable.
/// </remarks>
public sealed class BlockingNotifierChain
{
    private readonly object _lock = new();
    private readonly ILogger _logger;
    private NotifierBlock[] _blocks = [];

    public BlockingNotifierChain(ILogger? logger = null, string name = "notifier chain")
    {
        _logger = logger ?? NullLogger.Instance;
        Name = name;
    }

    /// <summary>For logs only.</summary>
    public string Name { get; }

    /// <summary>Number of registered blocks.</summary>
    public int Count => Volatile.Read(ref _blocks).Length;

    /// <summary>The registered blocks in call order (a snapshot).</summary>
    public IReadOnlyList<NotifierBlock> Blocks => Volatile.Read(ref _blocks);

    /// <summary>
    /// <c>blocking_notifier_chain_register</c>: inserts before the first block of lower priority.
    /// Returns 0, or -EEXIST if the block is already on the chain (the kernel also WARNs; we log).
    /// </summary>
    public int Register(NotifierBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        lock (_lock)
        {
            NotifierBlock[] current = _blocks;
            int insertAt = current.Length;
            for (int i = 0; i < current.Length; i++)
            {
                if (ReferenceEquals(current[i], block))
                {
                    _logger.LogWarning("{Chain}: double register of {Block} refused", Name, block);
                    return -Errno.EEXIST;
                }
                if (insertAt == current.Length && block.Priority > current[i].Priority)
                    insertAt = i;
            }
            var next = new NotifierBlock[current.Length + 1];
            current.AsSpan(0, insertAt).CopyTo(next);
            next[insertAt] = block;
            current.AsSpan(insertAt).CopyTo(next.AsSpan(insertAt + 1));
            Volatile.Write(ref _blocks, next);
            return 0;
        }
    }

    /// <summary><c>blocking_notifier_chain_unregister</c>: 0, or -ENOENT if the block is not on the chain.</summary>
    public int Unregister(NotifierBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        lock (_lock)
        {
            NotifierBlock[] current = _blocks;
            int index = Array.IndexOf(current, block);
            if (index < 0)
                return -Errno.ENOENT;
            var next = new NotifierBlock[current.Length - 1];
            current.AsSpan(0, index).CopyTo(next);
            current.AsSpan(index + 1).CopyTo(next.AsSpan(index));
            Volatile.Write(ref _blocks, next);
            return 0;
        }
    }

    /// <summary><c>blocking_notifier_call_chain</c>: calls every block (or the first <paramref name="nrToCall"/>).</summary>
    public NotifyResult CallChain(ulong action, object? data = null, int nrToCall = -1) =>
        CallChain(action, data, nrToCall, out _);

    /// <summary>As <see cref="CallChain(ulong, object?, int)"/>, reporting how many blocks were called.</summary>
    public NotifyResult CallChain(ulong action, object? data, int nrToCall, out int nrCalls)
    {
        lock (_lock)
        {
            nrCalls = 0;
            return Walk(_blocks, action, data, nrToCall, ref nrCalls);
        }
    }

    /// <summary>
    /// <c>blocking_notifier_call_chain_robust</c>: sends <paramref name="up"/>; if a block stops it,
    /// sends <paramref name="down"/> to the blocks called before that one, in the same (priority)
    /// order, not reversed; the stopping block gets nothing. Returns the "up" result, so a
    /// <see cref="NotifyResult.Stop"/> rolls back yet converts to errno 0.
    /// </summary>
    public NotifyResult CallChainRobust(ulong up, ulong down, object? data = null)
    {
        lock (_lock)
        {
            NotifierBlock[] blocks = _blocks; // one snapshot for both passes
            int nr = 0;
            NotifyResult ret = Walk(blocks, up, data, -1, ref nr);
            if (Notifier.Stops(ret))
            {
                int ignored = 0;
                Walk(blocks, down, data, nr - 1, ref ignored);
            }
            return ret;
        }
    }

    /// <summary>
    /// Calls every block whatever each returns or throws: for a notification no subscriber may veto
    /// (a VM fork has already happened; a higher-priority block that returns Bad or throws must not
    /// keep the fork guard from clearing). Returns the last block's result.
    /// </summary>
    public NotifyResult NotifyAll(ulong action, object? data = null)
    {
        lock (_lock)
        {
            NotifyResult ret = NotifyResult.Done;
            foreach (NotifierBlock block in _blocks)
                ret = Invoke(block, action, data);
            return ret;
        }
    }

    // notifier_call_chain(): ret starts as DONE; nr_calls counts the stopping block too.
    private NotifyResult Walk(NotifierBlock[] blocks, ulong action, object? data, int nrToCall, ref int nrCalls)
    {
        NotifyResult ret = NotifyResult.Done;
        for (int i = 0; i < blocks.Length && nrToCall != 0; i++)
        {
            ret = Invoke(blocks[i], action, data);
            nrCalls++;
            if (Notifier.Stops(ret))
                break;
            nrToCall--;
        }
        return ret;
    }

    private NotifyResult Invoke(NotifierBlock block, ulong action, object? data)
    {
        try
        {
            return block.Call(block, action, data);
        }
        catch (Exception ex)
        {
            // A broken subscriber must not take the chain (or the lock) down with it; it vetoes.
            _logger.LogError(ex, "{Chain}: {Block} threw on action {Action}; counted as NOTIFY_BAD", Name, block, action);
            return NotifyResult.Bad;
        }
    }
}
