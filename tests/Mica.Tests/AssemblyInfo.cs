// Mica is Linux only (its assemblies say so); so are these tests, which use /proc and POSIX signals.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
