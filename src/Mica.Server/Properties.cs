using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("mica")]
[assembly: InternalsVisibleTo("Mica.Tests")]
