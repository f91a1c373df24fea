using ForkNotify;

namespace VmDevices.Tests;

public class VirtioRngTests
{
    private sealed class RngRig
    {
        public RngRig(ushort queueSize = 8, bool offerLeak = true, ushort queueNumMax = 256)
        {
            Memory = new GuestMemory(64 * 1024);
            Heap = new GuestHeap(Memory, 0x3000, Memory.Size);
            Irq = new InterruptLine("virtio-rng", K.Scheduler);
            Device = new VirtioRngDevice(Memory, Irq, new DeterministicEntropy(99), queueNumMax, offerLeak);
            Driver = new VirtioRngDriver(K.Kernel, Memory, Device, Irq);
            Assert.True(Driver.Probe(Heap, queueSize));
        }

        public KernelRig K { get; } = new();
        public GuestMemory Memory { get; }
        public GuestHeap Heap { get; }
        public InterruptLine Irq { get; }
        public VirtioRngDevice Device { get; }
        public VirtioRngDriver Driver { get; }

        public ulong LeakWord => Driver.LeakGeneration!.Read();
    }

    [Fact]
    public void Driver_negotiates_the_leak_feature_and_arms_both_commands()
    {
        var rig = new RngRig();
        Assert.True(rig.Driver.LeakNegotiated);
        Assert.True(rig.Device.LeakNegotiated);
        Assert.Equal(VirtioFeatures.Version1 | VirtioRngDevice.FeatureLeak, rig.Device.DriverFeatures);
        Assert.True((rig.Device.Status & VirtioStatus.DriverOk) != 0);
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration, rig.LeakWord);
        Assert.Equal(VirtioRngDevice.LeakQueue1, rig.Device.ActiveLeakQueue);
        // Held, not completed: 1 fill + 1 copy chain are waiting in leakq.1.
        Assert.Equal(0, rig.Device.LeakBuffersCompleted);
        Assert.Equal(0, rig.Irq.PendingCount);
    }

    [Fact]
    public void Without_the_feature_only_the_request_queue_exists()
    {
        var rig = new RngRig(offerLeak: false);
        Assert.False(rig.Driver.LeakNegotiated);
        Assert.Null(rig.Driver.LeakGeneration);
        Assert.Equal(1, rig.Device.QueueCount);
        Assert.Equal(-1, rig.Device.SignalEntropyLeak(TimeSpan.Zero));
        Assert.Equal(32, rig.Driver.Read(new byte[32]));
    }

    [Fact]
    public void Device_refuses_features_it_did_not_offer()
    {
        var k = new KernelRig();
        var m = new GuestMemory(0x4000);
        var d = new VirtioRngDevice(m, new InterruptLine("i", k.Scheduler), new DeterministicEntropy(1), offerLeak: false);
        d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver);
        d.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioRngDevice.FeatureLeak);
        d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk);
        Assert.Equal((VirtioStatus)0, d.Status & VirtioStatus.FeaturesOk);
    }

    [Fact]
    public void Entropy_requests_are_served_with_host_entropy()
    {
        var rig = new RngRig();
        var got = new byte[80];
        Assert.Equal(64, rig.Driver.Read(got));
        var expected = new byte[64];
        new DeterministicEntropy(99).Fill(expected);
        Assert.Equal(expected, got[..64]);
        Assert.All(got[64..], b => Assert.Equal(0, b));
        // Polled queue: the driver set NO_INTERRUPT, so the device raised nothing.
        Assert.Equal(0, rig.Irq.PendingCount);
        // Many reads reuse the same descriptors around the ring.
        for (int i = 0; i < 100; i++)
            Assert.Equal(16, rig.Driver.Read(new byte[16]));
    }

    [Fact]
    public void Leak_completes_before_resume_and_the_interrupt_comes_after_the_delay()
    {
        var rig = new RngRig();
        ulong gen0 = rig.K.Kernel.Generation.Current;

        Assert.Equal(2, rig.Device.SignalEntropyLeak(TimeSpan.FromMilliseconds(10)));

        // The counter is new before the interrupt is delivered: a hot path reading it now sees the fork.
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 1, rig.LeakWord);
        Assert.Equal(1, rig.Irq.PendingCount);
        Assert.Equal(gen0, rig.K.Kernel.Generation.Current);
        Assert.Equal(0, rig.K.PostVmForkCount);
        Assert.Equal(VirtioRngDevice.LeakQueue2, rig.Device.ActiveLeakQueue);
        Assert.Equal(VirtioRngDevice.LeakQueue1, rig.Device.SignaledLeakQueue);

        rig.K.Scheduler.RunFor(TimeSpan.FromMilliseconds(9));
        Assert.Equal(0, rig.K.PostVmForkCount);
        rig.K.Scheduler.RunFor(TimeSpan.FromMilliseconds(1));

        Assert.Equal(1, rig.K.PostVmForkCount);
        Assert.Equal(gen0 + 1, rig.K.Kernel.Generation.Current);
        Assert.Equal(VirtioRngDevice.LeakQueue2, rig.Driver.ActiveLeakQueue);
        Assert.Equal(1, rig.Driver.LeakEventsHandled);
    }

    [Fact]
    public void Ring_wraps_around_with_a_small_queue_over_many_leak_events()
    {
        // 4 descriptors: exactly one fill (1) + copy (2) chain per queue. 33,000 leaks pass 66,000
        // chains through the two leak queues, so the 16-bit ring indexes wrap as well.
        var rig = new RngRig(queueSize: 4);
        ulong gen0 = rig.K.Kernel.Generation.Current;
        const int leaks = 33_000;
        for (int i = 1; i <= leaks; i++)
        {
            Assert.Equal(2, rig.Device.SignalEntropyLeak(TimeSpan.FromMilliseconds(1)));
            Assert.Equal(VirtioRngDriver.InitialLeakGeneration + (ulong)i, rig.LeakWord);
            rig.K.Scheduler.RunUntilIdle();
        }
        Assert.Equal(leaks, rig.Driver.LeakEventsHandled);
        Assert.Equal(leaks, rig.K.PostVmForkCount);
        Assert.Equal(gen0 + leaks, rig.K.Kernel.Generation.Current);
        Assert.Equal(0, rig.Device.LeakEventsWithoutRequest);
        Assert.Empty(rig.Device.Errors);
        Assert.False(rig.Driver.Broken);
    }

    [Fact]
    public void Leak_with_no_armed_request_completes_nothing_and_the_driver_recovers()
    {
        var rig = new RngRig();
        rig.Device.SignalEntropyLeak(TimeSpan.FromMilliseconds(5));
        // Second leak before the driver re-armed: leakq.2 is empty.
        Assert.Equal(0, rig.Device.SignalEntropyLeak(TimeSpan.FromMilliseconds(5)));
        Assert.Equal(1, rig.Device.LeakEventsWithoutRequest);
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 1, rig.LeakWord); // the documented window
        Assert.Equal(1, rig.Irq.PendingCount); // no interrupt for an event that completed nothing

        rig.K.Scheduler.RunUntilIdle();

        // The driver re-armed on leakq.2, which the device had already signalled, so it completed at
        // once; the driver then moved to leakq.1, where its commands are held again.
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 2, rig.LeakWord);
        Assert.Equal(VirtioRngDevice.LeakQueue1, rig.Device.ActiveLeakQueue);
        Assert.Equal(VirtioRngDevice.LeakQueue1, rig.Driver.ActiveLeakQueue);
        Assert.Equal(2, rig.Driver.LeakEventsHandled);
        Assert.Equal(2, rig.Device.SignalEntropyLeak(TimeSpan.Zero));
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 3, rig.LeakWord);
        Assert.Empty(rig.Device.Errors);
    }

    [Fact]
    public void Leak_before_the_driver_is_ready_is_ignored()
    {
        var k = new KernelRig();
        var m = new GuestMemory(0x4000);
        var d = new VirtioRngDevice(m, new InterruptLine("i", k.Scheduler), new DeterministicEntropy(1));
        Assert.Equal(-1, d.SignalEntropyLeak(TimeSpan.Zero));
        Assert.Equal(0, d.LeakEvents);
    }

    [Fact]
    public void Spurious_interrupt_does_nothing()
    {
        var rig = new RngRig();
        rig.Irq.Raise(0, TimeSpan.Zero); // nothing in the ISR
        rig.K.Scheduler.RunUntilIdle();
        Assert.Equal(0, rig.Driver.LeakEventsHandled);
        Assert.Equal(0, rig.K.PostVmForkCount);
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration, rig.LeakWord);
    }

    [Fact]
    public void Snapshot_of_device_and_driver_state_survives_the_round_trip()
    {
        var rig = new RngRig();
        rig.Device.SignalEntropyLeak(TimeSpan.Zero);
        rig.K.Scheduler.RunUntilIdle();
        byte[] image = rig.Memory.Capture();
        var ds = rig.Device.Capture();
        var dr = rig.Driver.Capture();

        var k2 = new KernelRig(2);
        var m2 = new GuestMemory(64 * 1024);
        m2.Restore(image);
        var irq2 = new InterruptLine("irq2", k2.Scheduler);
        var dev2 = new VirtioRngDevice(m2, irq2, new DeterministicEntropy(5));
        var drv2 = new VirtioRngDriver(k2.Kernel, m2, dev2, irq2);
        dev2.Restore(ds);
        drv2.Restore(dr);

        Assert.Equal(2, dev2.SignalEntropyLeak(TimeSpan.Zero));
        k2.Scheduler.RunUntilIdle();
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 2, drv2.LeakGeneration!.Read());
        Assert.Equal(1, k2.PostVmForkCount);
        Assert.Equal(VirtioRngDriver.InitialLeakGeneration + 1, rig.LeakWord); // the original is untouched
    }
}
