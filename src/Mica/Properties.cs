using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Mica.Tests")]

// Linux only: the master and workers rely on /proc, prctl, eventfd and POSIX signals.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
