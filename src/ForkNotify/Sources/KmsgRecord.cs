using System.Globalization;

namespace ForkNotify;

/// <summary>
/// One <c>/dev/kmsg</c> record (<c>Documentation/ABI/testing/dev-kmsg</c>):
/// <c>prio,seq,time_usec,flags[,more];text</c>, where <c>prio</c> is
/// <c>facility &lt;&lt; 3 | level</c> and facility 0 is the kernel itself (user-space writes to
/// <c>/dev/kmsg</c> can never claim facility 0).
/// </summary>
public readonly record struct KmsgRecord(int Priority, ulong Sequence, ulong TimestampMicroseconds, string Flags, string Text)
{
    public int Facility => Priority >> 3;

    public int Level => Priority & 7;

    public bool FromKernel => Facility == 0;

    /// <summary>Parses the first line of a record; false for continuation lines and malformed text.</summary>
    public static bool TryParse(string line, out KmsgRecord record)
    {
        record = default;
        int semicolon = line.IndexOf(';');
        if (semicolon <= 0)
            return false;
        string[] fields = line[..semicolon].Split(',');
        if (fields.Length < 4
            || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out int priority)
            || !ulong.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out ulong sequence)
            || !ulong.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out ulong time))
            return false;
        string text = line[(semicolon + 1)..].TrimEnd('\n');
        record = new KmsgRecord(priority, sequence, time, fields[3], text);
        return true;
    }
}
