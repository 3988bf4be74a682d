using Mica.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Mica.Tests;

/// <summary>
/// The seeded mutation fuzzer (<see cref="Http1Fuzzer"/>) against an ASGI and a WSGI worker:
/// 2000 cases each in the suite, more on demand (scripts/fuzz).
/// </summary>
public sealed class Http1FuzzAsgiTests(WireEchoServer server, ITestOutputHelper output) : ServerTests<WireEchoServer>(server)
{
    [Fact]
    public async Task Mutated_requests_are_answered_or_closed_and_the_worker_lives_on()
    {
        var report = await Http1Fuzzer.AssertServerHoldsAsync(Mica, Http1Fuzzer.CasesFromEnvironment(2000), Http1Fuzzer.SeedFromEnvironment(1));
        output.WriteLine(report.ToString());
    }
}

public sealed class Http1FuzzWsgiTests(WireEchoWsgiServer server, ITestOutputHelper output) : ServerTests<WireEchoWsgiServer>(server)
{
    [Fact]
    public async Task Mutated_requests_are_answered_or_closed_and_the_worker_lives_on()
    {
        var report = await Http1Fuzzer.AssertServerHoldsAsync(Mica, Http1Fuzzer.CasesFromEnvironment(2000), Http1Fuzzer.SeedFromEnvironment(2));
        output.WriteLine(report.ToString());
    }
}
