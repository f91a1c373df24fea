using System.Text;

namespace ForkNotify;

/// <summary>
/// A kernel uevent as broadcast on <c>NETLINK_KOBJECT_UEVENT</c> group 1 (<c>lib/kobject_uevent.c</c>):
/// <c>"action@devpath\0"</c> followed by NUL-terminated <c>KEY=value</c> strings
/// (<c>ACTION</c>, <c>DEVPATH</c>, <c>SUBSYSTEM</c>, the driver's own variables, <c>SEQNUM</c>).
/// </summary>
public sealed class UeventMessage
{
    private UeventMessage(string action, string devPath, IReadOnlyDictionary<string, string> variables)
    {
        Action = action;
        DevPath = devPath;
        Variables = variables;
    }

    public string Action { get; }

    public string DevPath { get; }

    public IReadOnlyDictionary<string, string> Variables { get; }

    /// <summary>The kernel's uevent sequence number (<c>SEQNUM</c>), if present and numeric.</summary>
    public ulong? SequenceNumber =>
        Variables.TryGetValue("SEQNUM", out string? text)
        && ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong seq)
            ? seq
            : null;

    /// <summary>
    /// The vmgenid driver's fork announcement: a <c>change</c> event carrying <c>NEW_VMGENID=1</c>
    /// (sent by Linux 6.8 only; the patch was reverted).
    /// </summary>
    public bool IsVmGenIdChange =>
        Action == "change"
        && Variables.TryGetValue("ACTION", out string? action) && action == "change"
        && Variables.TryGetValue("NEW_VMGENID", out string? flag) && flag == "1";

    /// <summary>
    /// Parses a datagram; false for anything that is not a kernel-format uevent, including udev's
    /// re-broadcasts (which start with <c>"libudev\0"</c> and a binary header).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out UeventMessage? message)
    {
        message = null;
        int headerEnd = datagram.IndexOf((byte)0);
        if (headerEnd <= 0)
            return false;
        ReadOnlySpan<byte> header = datagram[..headerEnd];
        int at = header.IndexOf((byte)'@');
        if (at <= 0 || at == header.Length - 1)
            return false; // "libudev" has no '@': udev's group-2 format is not ours to parse
        string action = Encoding.UTF8.GetString(header[..at]);
        string devPath = Encoding.UTF8.GetString(header[(at + 1)..]);

        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        ReadOnlySpan<byte> rest = datagram[(headerEnd + 1)..];
        while (!rest.IsEmpty)
        {
            int end = rest.IndexOf((byte)0);
            ReadOnlySpan<byte> field = end < 0 ? rest : rest[..end];
            int eq = field.IndexOf((byte)'=');
            if (eq > 0)
                variables[Encoding.UTF8.GetString(field[..eq])] = Encoding.UTF8.GetString(field[(eq + 1)..]);
            if (end < 0)
                break;
            rest = rest[(end + 1)..];
        }
        message = new UeventMessage(action, devPath, variables);
        return true;
    }

    /// <summary>Serialises in the kernel's format (for tests that inject an event).</summary>
    public static byte[] Format(string action, string devPath, params string[] variables)
    {
        var builder = new StringBuilder();
        builder.Append(action).Append('@').Append(devPath).Append('\0');
        foreach (string v in variables)
            builder.Append(v).Append('\0');
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    public override string ToString() =>
        $"{Action}@{DevPath} {string.Join(' ', Variables.Select(kv => $"{kv.Key}={kv.Value}"))}";
}
