using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace Mica;

/// <summary>
/// Traps signals for the master loop: each handler only posts an event and cancels the default
/// action; all the work happens in the loop. A signal that was ignored when the process started
/// (e.g. SIGINT for a background job of a non-interactive shell) stays ignored, as in every
/// runtime: .NET does not override an inherited SIG_IGN.
/// </summary>
internal sealed class SignalTraps : IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];

    public SignalTraps(ChannelWriter<SupervisorEvent> events, params PosixSignal[] signals)
    {
        foreach (var signal in signals)
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true;
                events.TryWrite(new SignalReceived(signal));
            }));
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
    }
}
