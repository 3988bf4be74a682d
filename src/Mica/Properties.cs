using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Mica.Tests")]
