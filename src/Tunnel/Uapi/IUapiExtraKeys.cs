namespace Tunnel.Uapi;

/// <summary>
/// Something beside the device that reports state through <c>get=1</c> as extra device-level keys
/// (the fork watcher). Called under the UAPI lock for each get; it must be quick and must only add
/// keys that <see cref="UapiGetWriter.IsValidExtraKey"/> accepts.
/// </summary>
public interface IUapiExtraKeys
{
    void AddExtraKeys(List<KeyValuePair<string, string>> keys);
}
