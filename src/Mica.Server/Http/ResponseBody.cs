using System.Buffers;
using Mica.Server.Python;

namespace Mica.Server.Http;

/// <summary>
/// A piece of response body on its way from a Python thread to the request's Kestrel task, which
/// copies it into Kestrel's output and then releases it. A small body is copied into a pooled array
/// on the Python thread. A large one is not copied there: Kestrel reads it straight from the app's
/// bytes object (immutable), which a reference keeps alive until <see cref="Release"/> hands that
/// reference to <see cref="DeferredRelease"/>. That saves the Python thread a copy of every large body.
/// </summary>
internal readonly struct ResponseBody
{
    /// <summary>From this size on, a body is shared rather than copied.</summary>
    private const int ShareFrom = 8 * 1024;

    private readonly byte[]? _pooled;
    private readonly SharedBytes? _shared;

    public int Length { get; }

    private ResponseBody(byte[]? pooled, SharedBytes? shared, int length)
    {
        _pooled = pooled;
        _shared = shared;
        Length = length;
    }

    /// <summary>GIL held: the contents of a bytes object (a TypeError for anything else).</summary>
    public static unsafe ResponseBody FromPython(nint bytes)
    {
        var data = PyStr.AsSpan(bytes);
        if (data.IsEmpty) return default;
        if (data.Length >= ShareFrom)
        {
            fixed (byte* p = data) return new ResponseBody(null, new SharedBytes(bytes, p, data.Length), data.Length);
        }
        var pooled = ArrayPool<byte>.Shared.Rent(data.Length);
        data.CopyTo(pooled);
        return new ResponseBody(pooled, null, data.Length);
    }

    public ReadOnlyMemory<byte> Memory => _shared is not null ? _shared.Memory : _pooled.AsMemory(0, Length);

    /// <summary>Any thread, once the body has been copied out (or is not wanted), exactly once.</summary>
    public void Release()
    {
        if (_pooled is not null) ArrayPool<byte>.Shared.Return(_pooled);
        ((IDisposable?)_shared)?.Dispose();
    }

    /// <summary>The bytes of a Python bytes object, held by a reference of its own.</summary>
    private sealed unsafe class SharedBytes : MemoryManager<byte>
    {
        private nint _owner;
        private readonly byte* _data;
        private readonly int _length;

        /// <summary>GIL held.</summary>
        public SharedBytes(nint owner, byte* data, int length)
        {
            _owner = PyRef.NewReference(owner);
            _data = data;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_data, _length);

        // Python never moves an object: nothing to pin.
        public override MemoryHandle Pin(int elementIndex = 0) => new(_data + elementIndex);

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            var owner = Interlocked.Exchange(ref _owner, 0);
            if (owner != 0) DeferredRelease.Add(owner);
        }
    }
}
