using Tunnel.Device;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>The bounded ring between the udp-receive thread and the handshake worker.</summary>
public sealed class HandshakeQueueTests
{
    private static readonly Endpoint From = Endpoint.TryParse("192.0.2.7:40000", out var ep) ? ep : default;

    private static byte[] Message(int i, int length = HandshakeQueue.SlotSize)
    {
        var message = new byte[length];
        BitConverter.TryWriteBytes(message, i);
        message[^1] = (byte)i;
        return message;
    }

    [Fact]
    public void A_full_queue_drops_the_new_message_and_counts_it()
    {
        var queue = new HandshakeQueue();
        for (int i = 0; i < HandshakeQueue.Capacity; i++)
            Assert.True(queue.TryEnqueue(Message(i), new Endpoint([192, 0, 2, 7], 1000 + i)));
        Assert.False(queue.TryEnqueue(Message(-1), From));
        Assert.False(queue.TryEnqueue(Message(-2), From));
        Assert.Equal(2, queue.Dropped);
        Assert.Equal(HandshakeQueue.Capacity, queue.Count);
        Assert.True(queue.Backlogged);

        // Oldest first, each with its own sender; the dropped ones never come out.
        var into = new byte[HandshakeQueue.SlotSize];
        Assert.True(queue.TryDequeue(into, out int length, out Endpoint from, 0));
        Assert.Equal(Message(0), into[..length]);
        Assert.Equal(1000, from.Port);
        Assert.True(queue.TryEnqueue(Message(5000, 92), From)); // room again, for a shorter message too
        for (int i = 1; i < HandshakeQueue.Capacity; i++)
        {
            Assert.True(queue.TryDequeue(into, out length, out from, 0));
            Assert.Equal(Message(i), into[..length]);
            Assert.Equal(1000 + i, from.Port);
        }
        Assert.True(queue.TryDequeue(into, out length, out _, 0));
        Assert.Equal(Message(5000, 92), into[..length]);
        Assert.False(queue.TryDequeue(into, out _, out _, 0));
        Assert.Equal(2, queue.Dropped);
        Assert.Equal(HandshakeQueue.Capacity + 1, queue.Queued);
    }

    [Fact]
    public void Messages_for_a_cookie_reply_fill_half_the_queue_and_leave_the_rest_to_handshakes()
    {
        var queue = new HandshakeQueue();
        int cookies = 0;
        while (queue.TryEnqueue(Message(cookies), From, HandshakeAdmission.CookieReply))
            cookies++;
        Assert.Equal(HandshakeQueue.CookieReplyDepth, cookies);
        Assert.Equal(1, queue.Dropped);
        Assert.True(queue.TryEnqueue(Message(7), From, HandshakeAdmission.Consume));
        var into = new byte[HandshakeQueue.SlotSize];
        Assert.True(queue.TryDequeue(into, out _, out _, out HandshakeAdmission work, 0));
        Assert.Equal(HandshakeAdmission.CookieReply, work);
    }

    [Fact]
    public void Backlogged_from_an_eighth_of_the_capacity()
    {
        var queue = new HandshakeQueue();
        for (int i = 0; i < HandshakeQueue.BackloggedDepth - 1; i++)
            queue.TryEnqueue(Message(i), From);
        Assert.False(queue.Backlogged);
        queue.TryEnqueue(Message(0), From);
        Assert.True(queue.Backlogged);
        Assert.Equal(HandshakeQueue.Capacity / 8, HandshakeQueue.BackloggedDepth);
    }

    [Fact]
    public void Queueing_a_message_allocates_nothing()
    {
        var queue = new HandshakeQueue();
        var message = Message(1);
        var into = new byte[HandshakeQueue.SlotSize];
        // The least of a few rounds: the runtime's one-time allocations on this thread (on-stack
        // replacement of the loop, tier-up) once showed 7,808 bytes in a single measured round.
        long allocated = AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                queue.TryEnqueue(message, From);
                queue.TryEnqueue(message, From);
                queue.TryDequeue(into, out _, out _, 0);
                queue.TryDequeue(into, out _, out _, 0);
            }
        });
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void A_waiting_consumer_wakes_for_a_message_and_for_close()
    {
        var queue = new HandshakeQueue();
        var got = new TaskCompletionSource<int>();
        var consumer = new Thread(() =>
        {
            var into = new byte[HandshakeQueue.SlotSize];
            got.SetResult(queue.TryDequeue(into, out int length, out _, Timeout.Infinite) ? length : -1);
        });
        consumer.Start();
        Thread.Sleep(50);
        queue.TryEnqueue(Message(3, 64), From);
        Assert.True(consumer.Join(TimeSpan.FromSeconds(20))); // a liveness bound, not a speed check
        Assert.Equal(64, got.Task.Result);

        var closed = new Thread(() => Assert.False(queue.TryDequeue(new byte[HandshakeQueue.SlotSize], out _, out _, Timeout.Infinite)));
        closed.Start();
        Thread.Sleep(50);
        queue.Close();
        Assert.True(closed.Join(TimeSpan.FromSeconds(20)));
        Assert.False(queue.TryEnqueue(Message(4), From));
    }
}
