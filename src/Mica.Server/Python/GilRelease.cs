namespace Mica.Server.Python;

/// <summary>
/// Releases the GIL for the length of a <c>using</c> block and takes it back at the end, so other
/// Python threads run while this one waits on a socket. No Python object may be touched inside.
/// </summary>
internal readonly unsafe ref struct GilRelease
{
    private readonly nint _threadState;

    private GilRelease(nint threadState) => _threadState = threadState;

    /// <summary>GIL held on entry.</summary>
    public static GilRelease Begin() => new(Py.EvalSaveThread());

    public void Dispose() => Py.EvalRestoreThread(_threadState);
}
