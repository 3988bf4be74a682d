using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("mica")]
[assembly: InternalsVisibleTo("Mica.Tests")]

// Linux only: eventfd, prctl and dlopen of libpython.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
