using ForkNotify;
using Microsoft.Extensions.Logging;
using Xunit;

namespace ForkNotify.Tests;

public sealed class NotifierChainTests
{
    private sealed class Log
    {
        public readonly List<(string Name, ulong Action)> Calls = [];

        public NotifierBlock Block(string name, int priority, NotifyResult result = NotifyResult.Ok) =>
            Block(name, priority, _ => result);

        public NotifierBlock Block(string name, int priority, Func<ulong, NotifyResult> answer) =>
            new((b, action, data) =>
            {
                lock (Calls) Calls.Add((name, action));
                return answer(action);
            }, priority) { Name = name };

        public string[] Names(ulong action) => Calls.Where(c => c.Action == action).Select(c => c.Name).ToArray();
    }

    [Fact]
    public void Calls_in_descending_priority_fifo_among_equals()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        Assert.Equal(0, chain.Register(log.Block("a0", 0)));
        Assert.Equal(0, chain.Register(log.Block("b10", 10)));
        Assert.Equal(0, chain.Register(log.Block("c0", 0)));
        Assert.Equal(0, chain.Register(log.Block("d-5", -5)));
        Assert.Equal(0, chain.Register(log.Block("e10", 10)));
        Assert.Equal(0, chain.Register(log.Block("f0", 0)));

        NotifyResult ret = chain.CallChain(1, null, -1, out int nr);

        Assert.Equal(["b10", "e10", "a0", "c0", "f0", "d-5"], log.Names(1));
        Assert.Equal(6, nr);
        Assert.Equal(NotifyResult.Ok, ret);
    }

    [Fact]
    public void Empty_chain_returns_done_and_calls_nobody()
    {
        var chain = new BlockingNotifierChain();
        Assert.Equal(NotifyResult.Done, chain.CallChain(3, null, -1, out int nr));
        Assert.Equal(0, nr);
    }

    [Fact]
    public void Returns_last_callee_value()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("ok", 2, NotifyResult.Ok));
        chain.Register(log.Block("done", 1, NotifyResult.Done));
        Assert.Equal(NotifyResult.Done, chain.CallChain(1));
    }

    [Fact]
    public void Duplicate_registration_is_refused_with_eexist_and_chain_unchanged()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        NotifierBlock block = log.Block("a", 0);
        Assert.Equal(0, chain.Register(block));
        Assert.Equal(-17, chain.Register(block));
        Assert.Equal(1, chain.Count);
        chain.CallChain(1);
        Assert.Single(log.Calls);
    }

    [Fact]
    public void Unregister_unknown_block_gives_enoent()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        NotifierBlock block = log.Block("a", 0);
        Assert.Equal(-2, chain.Unregister(block));
        chain.Register(block);
        Assert.Equal(0, chain.Unregister(block));
        Assert.Equal(-2, chain.Unregister(block));
        chain.CallChain(1);
        Assert.Empty(log.Calls);
    }

    [Theory]
    [InlineData(NotifyResult.Stop)]
    [InlineData(NotifyResult.Bad)]
    [InlineData((NotifyResult)0x8006)]
    public void Stop_mask_ends_the_walk_and_nr_calls_counts_the_stopping_block(NotifyResult stopper)
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("first", 3));
        chain.Register(log.Block("stopper", 2, stopper));
        chain.Register(log.Block("never", 1));

        NotifyResult ret = chain.CallChain(1, null, -1, out int nr);

        Assert.Equal(stopper, ret);
        Assert.Equal(2, nr);
        Assert.Equal(["first", "stopper"], log.Names(1));
    }

    [Fact]
    public void Result_without_stop_bit_does_not_stop()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("weird", 2, (NotifyResult)0x0002)); // BAD without the mask
        chain.Register(log.Block("next", 1));
        chain.CallChain(1);
        Assert.Equal(["weird", "next"], log.Names(1));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 3)]
    [InlineData(10, 3)]
    [InlineData(-1, 3)]
    public void Nr_to_call_limits_the_walk(int nrToCall, int expectedCalls)
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("a", 3));
        chain.Register(log.Block("b", 2));
        chain.Register(log.Block("c", 1));

        NotifyResult ret = chain.CallChain(9, null, nrToCall, out int nr);

        Assert.Equal(expectedCalls, nr);
        Assert.Equal(new[] { "a", "b", "c" }.Take(expectedCalls), log.Names(9));
        Assert.Equal(expectedCalls == 0 ? NotifyResult.Done : NotifyResult.Ok, ret);
    }

    [Fact]
    public void Data_and_block_reach_the_callback()
    {
        var chain = new BlockingNotifierChain();
        object payload = new();
        object? seen = null;
        NotifierBlock? seenBlock = null;
        var block = new NotifierBlock((b, a, d) => { seen = d; seenBlock = b; return NotifyResult.Done; });
        chain.Register(block);
        chain.CallChain(1, payload);
        Assert.Same(payload, seen);
        Assert.Same(block, seenBlock);
    }

    [Fact]
    public void Robust_rolls_back_the_first_nr_minus_1_in_chain_order_not_the_failing_one()
    {
        const ulong up = 3, down = 4;
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("p30", 30));
        chain.Register(log.Block("p20", 20));
        chain.Register(log.Block("p10-veto", 10, a => a == up ? Notifier.FromErrno(-16) : NotifyResult.Ok));
        chain.Register(log.Block("p5", 5));

        NotifyResult ret = chain.CallChainRobust(up, down);

        Assert.Equal(Notifier.FromErrno(-16), ret);
        Assert.Equal(["p30", "p20", "p10-veto"], log.Names(up));
        Assert.Equal(["p30", "p20"], log.Names(down)); // same order as up, not reversed
    }

    [Fact]
    public void Robust_without_failure_sends_no_down_event()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("a", 1));
        chain.Register(log.Block("b", 0));
        Assert.Equal(NotifyResult.Ok, chain.CallChainRobust(1, 2));
        Assert.Empty(log.Names(2));
    }

    [Fact]
    public void Robust_failure_in_first_block_rolls_back_nobody()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        chain.Register(log.Block("veto", 1, NotifyResult.Bad));
        chain.Register(log.Block("b", 0));
        Assert.Equal(NotifyResult.Bad, chain.CallChainRobust(1, 2));
        Assert.Empty(log.Names(2));
        Assert.Equal(["veto"], log.Names(1));
    }

    [Fact]
    public void Pm_robust_stop_rolls_back_but_reports_success()
    {
        var log = new Log();
        var pm = new PmNotifier();
        pm.Register(log.Block("a", 2));
        pm.Register(log.Block("stopper", 1, a => a == (ulong)PmEvent.SuspendPrepare ? NotifyResult.Stop : NotifyResult.Ok));
        pm.Register(log.Block("never", 0));

        int err = pm.CallChainRobust(PmEvent.SuspendPrepare, PmEvent.PostSuspend);

        Assert.Equal(0, err); // notifier_to_errno(NOTIFY_STOP) == 0
        Assert.Equal(["a"], log.Names((ulong)PmEvent.PostSuspend)); // yet the rollback happened
        Assert.DoesNotContain("never", log.Names((ulong)PmEvent.SuspendPrepare));
    }

    [Fact]
    public void Pm_robust_bad_reports_eperm_and_errno_round_trips()
    {
        var pm = new PmNotifier();
        var veto = new NotifierBlock((b, a, d) => NotifyResult.Bad);
        pm.Register(veto);
        Assert.Equal(-1, pm.CallChainRobust(PmEvent.HibernationPrepare, PmEvent.PostHibernation));
        pm.Unregister(veto);
        pm.Register(new NotifierBlock((b, a, d) => Notifier.FromErrno(-5)));
        Assert.Equal(-5, pm.CallChainRobust(PmEvent.RestorePrepare, PmEvent.PostRestore));
    }

    [Fact]
    public void Pm_events_have_kernel_values()
    {
        Assert.Equal(1UL, (ulong)PmEvent.HibernationPrepare);
        Assert.Equal(2UL, (ulong)PmEvent.PostHibernation);
        Assert.Equal(3UL, (ulong)PmEvent.SuspendPrepare);
        Assert.Equal(4UL, (ulong)PmEvent.PostSuspend);
        Assert.Equal(5UL, (ulong)PmEvent.RestorePrepare);
        Assert.Equal(6UL, (ulong)PmEvent.PostRestore);
        Assert.Equal(7UL, (ulong)PmEvent.PostVmFork);
    }

    [Fact]
    public void Pm_call_chain_delivers_event_value()
    {
        var log = new Log();
        var pm = new PmNotifier();
        pm.Register(log.Block("a", 0));
        Assert.Equal(NotifyResult.Ok, pm.CallChain(PmEvent.PostVmFork));
        Assert.Equal(["a"], log.Names(7));
    }

    [Fact]
    public void Throwing_callback_counts_as_bad_is_logged_and_the_chain_keeps_working()
    {
        var logger = new ListLogger();
        var log = new Log();
        var chain = new BlockingNotifierChain(logger);
        chain.Register(log.Block("before", 2));
        chain.Register(new NotifierBlock((b, a, d) => throw new InvalidOperationException("boom"), 1) { Name = "thrower" });
        chain.Register(log.Block("after", 0));

        NotifyResult ret = chain.CallChain(1, null, -1, out int nr);
        Assert.Equal(NotifyResult.Bad, ret);
        Assert.Equal(2, nr);
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Error && e.Exception is InvalidOperationException);

        // the robust call rolls back the block before the thrower
        Assert.Equal(NotifyResult.Bad, chain.CallChainRobust(5, 6));
        Assert.Equal(["before"], log.Names(6));

        // and the chain (and its lock) is still usable from another thread
        var other = Task.Run(() => chain.Register(log.Block("late", 5)));
        Assert.Equal(0, other.Wait(TimeSpan.FromSeconds(10)) ? other.Result : -999);
        Assert.Equal(4, chain.Count);
    }

    [Fact]
    public void A_callback_may_unregister_itself_and_the_walk_continues()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        NotifierBlock? self = null;
        int selfCalls = 0;
        self = new NotifierBlock((b, a, d) =>
        {
            selfCalls++;
            Assert.Equal(0, chain.Unregister(b));
            return NotifyResult.Ok;
        }, 5);
        chain.Register(self);
        chain.Register(log.Block("next", 1));

        chain.CallChain(1, null, -1, out int nr);
        Assert.Equal(2, nr);
        Assert.Equal(["next"], log.Names(1));
        chain.CallChain(2);
        Assert.Equal(1, selfCalls);
        Assert.Equal(["next"], log.Names(2));
    }

    [Fact]
    public void Registering_during_a_call_takes_effect_at_the_next_call()
    {
        var log = new Log();
        var chain = new BlockingNotifierChain();
        NotifierBlock added = log.Block("added", 100);
        chain.Register(new NotifierBlock((b, a, d) =>
        {
            if (a == 1) Assert.Equal(0, chain.Register(added));
            return NotifyResult.Ok;
        }, 0));

        chain.CallChain(1, null, -1, out int nr1);
        Assert.Equal(1, nr1);
        Assert.Empty(log.Names(1));
        chain.CallChain(2, null, -1, out int nr2);
        Assert.Equal(2, nr2);
        Assert.Equal(["added"], log.Names(2));
    }

    [Fact]
    public void Robust_call_sees_the_same_chain_in_both_passes_even_if_a_callback_changes_it()
    {
        const ulong up = 1, down = 2;
        var log = new Log();
        var chain = new BlockingNotifierChain();
        NotifierBlock first = log.Block("first", 10);
        NotifierBlock second = log.Block("second", 9);
        chain.Register(first);
        chain.Register(second);
        chain.Register(new NotifierBlock((b, a, d) =>
        {
            if (a == up)
            {
                chain.Unregister(first); // would shift indexes if the down pass re-read the chain
                chain.Register(log.Block("newcomer", 50));
                return NotifyResult.Bad;
            }
            return NotifyResult.Ok;
        }, 5));

        chain.CallChainRobust(up, down);
        Assert.Equal(["first", "second"], log.Names(down));
    }

    [Fact]
    public void Unregister_from_another_thread_waits_for_the_running_call()
    {
        var chain = new BlockingNotifierChain();
        using var inside = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var block = new NotifierBlock((b, a, d) =>
        {
            inside.Set();
            release.Wait();
            return NotifyResult.Ok;
        });
        chain.Register(block);
        var call = Task.Run(() => chain.CallChain(1));
        Assert.True(inside.Wait(TimeSpan.FromSeconds(10)));
        var unregister = Task.Run(() => chain.Unregister(block));
        // as down_write waits for readers: unregister cannot complete while the call runs
        Assert.False(unregister.Wait(TimeSpan.FromMilliseconds(200)));
        release.Set();
        Assert.True(Task.WaitAll([call, unregister], TimeSpan.FromSeconds(10)));
        Assert.Equal(0, unregister.Result);
    }

    [Fact]
    public void Concurrent_callers_and_registrations_stress()
    {
        var chain = new BlockingNotifierChain();
        int inCall = 0, overlaps = 0, calls = 0;
        var stable = new NotifierBlock((b, a, d) =>
        {
            if (Interlocked.Increment(ref inCall) != 1) Interlocked.Increment(ref overlaps);
            Interlocked.Increment(ref calls);
            Thread.SpinWait(50);
            Interlocked.Decrement(ref inCall);
            return NotifyResult.Ok;
        }, 1000);
        chain.Register(stable);

        const int threads = 4, iterations = 2000;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var tasks = new List<Task>();
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            tasks.Add(Task.Run(() =>
            {
                var mine = new NotifierBlock((b, a, d) => NotifyResult.Done, id);
                for (int i = 0; i < iterations; i++)
                {
                    if (chain.Register(mine) != 0) failures.Enqueue($"register {id}/{i}");
                    NotifyResult ret = chain.CallChain((ulong)i, null, -1, out int nr);
                    if (nr < 1 || Notifier.Stops(ret)) failures.Enqueue($"call {id}/{i}: nr={nr} ret={ret}");
                    if (chain.Unregister(mine) != 0) failures.Enqueue($"unregister {id}/{i}");
                    if (Notifier.Stops(chain.CallChainRobust(1, 2))) failures.Enqueue($"robust {id}/{i}");
                }
            }));
        }
        Assert.True(Task.WaitAll(tasks.ToArray(), TimeSpan.FromMinutes(2)));
        Assert.Empty(failures);
        Assert.Equal(0, overlaps); // callers were serialised
        Assert.Equal(threads * iterations * 2, calls);
        Assert.Equal(1, chain.Count);
    }
}
