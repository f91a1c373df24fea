namespace ForkNotify;

/// <summary>A fork seen by a host source, with what the source knows about the new generation.</summary>
/// <param name="Source">The <see cref="IForkSource.Name"/> that saw it.</param>
/// <param name="Generation">The new generation counter, if the mechanism carries one.</param>
/// <param name="VmId">The new VM ID bytes, if the mechanism carries one.</param>
/// <param name="Detail">A human-readable description (the log line, the uevent, ...).</param>
/// <param name="Sequence">The message's own sequence number (the kmsg record's <c>seq</c>, the uevent's
/// <c>SEQNUM</c>), for a mechanism that carries neither generation nor VM ID.</param>
public sealed record ForkEvent(string Source, ulong? Generation = null, byte[]? VmId = null, string? Detail = null,
    ulong? Sequence = null);
