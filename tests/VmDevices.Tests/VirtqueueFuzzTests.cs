namespace VmDevices.Tests;

public class VirtqueueFuzzTests
{
    /// <summary>
    /// Random garbage in every ring and descriptor, then kicks and leak events: the device must never
    /// throw, legal chains still complete, and every refusal is reported and leaves the device in
    /// DEVICE_NEEDS_RESET (and only a refusal does).
    /// </summary>
    [Fact]
    public void Garbage_rings_never_crash_the_device()
    {
        var random = new Random(20261121);
        var refusedKinds = new HashSet<VirtqError>();
        int completions = 0;
        for (int round = 0; round < 3000; round++)
        {
            var s = new DeterministicScheduler((ulong)round);
            var m = new GuestMemory(0x2000);
            var d = new VirtioRngDevice(m, new InterruptLine("irq", s), new DeterministicEntropy(1), queueNumMax: 8);
            d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver);
            d.WriteDriverFeatures(d.DeviceFeatures);
            d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk);
            for (int q = 0; q < 3; q++)
                Assert.True(d.ConfigureQueue(q, new VirtqAddresses(8, 0x100ul + 0x200ul * (ulong)q, 0x180ul + 0x200ul * (ulong)q, 0x1a0ul + 0x200ul * (ulong)q)));
            d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk);

            var garbage = new byte[0x600];
            random.NextBytes(garbage);
            // Keep descriptors plausible half the time so that deep paths are reached too.
            if (round % 2 == 0)
            {
                for (int i = 0; i < garbage.Length; i += 16)
                {
                    BitConverter.TryWriteBytes(garbage.AsSpan(i), (ulong)random.Next(0, 0x2100));
                    BitConverter.TryWriteBytes(garbage.AsSpan(i + 8), (uint)random.Next(0, 64));
                    garbage[i + 12] &= 0x3;
                    garbage[i + 14] &= 0xf; // next: 8..15 are out of range
                    garbage[i + 15] = 0;
                }
            }
            m.TryWrite(0x100, garbage, "fuzz");
            for (int q = 0; q < 3; q++)
                m.TryWriteUInt16(0x180ul + 0x200ul * (ulong)q + 2, (ushort)random.Next(0, 12), "fuzz");

            d.QueueNotify(random.Next(0, 3));
            d.SignalEntropyLeak(TimeSpan.Zero);
            d.QueueNotify(random.Next(0, 3));
            d.SignalEntropyLeak(TimeSpan.Zero);
            s.RunUntilIdle();

            foreach (var e in d.Errors)
                refusedKinds.Add(e.Error);
            for (int q = 0; q < 3; q++)
                completions += d.Capture().Transport.Queues[q].UsedIdx;
            Assert.Equal(d.Errors.Count > 0, (d.Status & VirtioStatus.DeviceNeedsReset) != 0);
        }
        Assert.True(completions > 0, "some random chains are legal and must complete");
        Assert.Contains(VirtqError.OutOfGuestMemory, refusedKinds);
        Assert.Contains(VirtqError.BadNextIndex, refusedKinds);
        Assert.Contains(VirtqError.BadHeadIndex, refusedKinds);
        Assert.Contains(VirtqError.BadAvailIndex, refusedKinds);
    }
}
