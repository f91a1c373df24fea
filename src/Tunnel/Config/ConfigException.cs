namespace Tunnel.Config;

/// <summary>
/// A configuration file that cannot be used. <see cref="Exception.Message"/> is the line a user
/// reads: <c>FILE:LINE: PROBLEM</c> (line 0 when the problem belongs to the whole file, such as a
/// missing section). The caller prints it and exits with code 2.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string fileName, int line, string problem)
        : base($"{fileName}:{line}: {problem}")
    {
        FileName = fileName;
        Line = line;
        Problem = problem;
    }

    public string FileName { get; }

    /// <summary>1-based line number, or 0 for a problem of the whole file.</summary>
    public int Line { get; }

    public string Problem { get; }
}
