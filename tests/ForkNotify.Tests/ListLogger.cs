using Microsoft.Extensions.Logging;

namespace ForkNotify.Tests;

/// <summary>Collects log entries so a test can assert something was logged.</summary>
internal sealed class ListLogger : ILogger
{
    public readonly List<(LogLevel Level, string Message, Exception? Exception)> Entries = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries) Entries.Add((logLevel, formatter(state, exception), exception));
    }
}
