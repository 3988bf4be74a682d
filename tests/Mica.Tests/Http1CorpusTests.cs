using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Every case of tests/corpus/http1 gets the answer it states, from an ASGI app (<see cref="Http1Corpus"/>).</summary>
public sealed class Http1CorpusAsgiTests(WireEchoServer server) : ServerTests<WireEchoServer>(server)
{
    public static TheoryData<string> Cases() => Http1Corpus.Names();

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Gets_the_stated_answer(string name) => Http1Corpus.RunAsync(name, Mica);
}

/// <summary>Every case of tests/corpus/http1 gets the answer it states, from a WSGI app.</summary>
public sealed class Http1CorpusWsgiTests(WireEchoWsgiServer server) : ServerTests<WireEchoWsgiServer>(server)
{
    public static TheoryData<string> Cases() => Http1Corpus.Names();

    [Theory]
    [MemberData(nameof(Cases))]
    public Task Gets_the_stated_answer(string name) => Http1Corpus.RunAsync(name, Mica);
}
