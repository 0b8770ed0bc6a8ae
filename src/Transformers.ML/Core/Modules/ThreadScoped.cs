// A setting for the code running on one thread, from when it is set until its scope is disposed, which restores the
// setting before it: how the training loop hands the Core's modules what a step runs under (Autocast's type,
// StepRandom's generator) without passing it through every forward. Each TOwner has its own setting.
namespace Transformers.ML.Core.Modules;

internal static class ThreadScoped<TOwner, T>
{
    [ThreadStatic]
    private static T? t_value;

    /// <summary>This thread's setting; default outside a scope.</summary>
    public static T? Value => t_value;

    /// <summary>Sets this thread's setting to <paramref name="value"/> until the returned scope is disposed.</summary>
    public static Scope Set(T? value)
    {
        var scope = new Scope(t_value);
        t_value = value;
        return scope;
    }

    /// <summary>Restores the setting before it.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly T? _previous;

        internal Scope(T? previous) => _previous = previous;

        public void Dispose() => t_value = _previous;
    }
}
