namespace Mica.Server.Hosting;

/// <summary>
/// Maps the small integers Python holds (request handles) to C# objects. A handle carries a
/// generation, so a stale handle kept by an app after its request ended finds nothing instead of
/// someone else's request. Used with the GIL held and calling no Python, so the GIL serialises
/// every use: no locking, even with several WSGI threads.
/// </summary>
internal sealed class HandleTable<T> where T : class
{
    private const int IndexBits = 22;
    private const int IndexMask = (1 << IndexBits) - 1;

    private T?[] _items = new T?[64];
    private int[] _generations = new int[64];
    private readonly Stack<int> _free = new();
    private int _used;

    public int Add(T item)
    {
        int index;
        if (_free.Count > 0) index = _free.Pop();
        else
        {
            if (_used == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
                Array.Resize(ref _generations, _generations.Length * 2);
            }
            index = _used++;
        }
        _items[index] = item;
        return (_generations[index] << IndexBits) | index;
    }

    public T? Get(long handle)
    {
        var index = (int)(handle & IndexMask);
        if (handle < 0 || index >= _used || _generations[index] != (int)(handle >> IndexBits)) return null;
        return _items[index];
    }

    public void Remove(long handle)
    {
        var index = (int)(handle & IndexMask);
        if (Get(handle) is null) return;
        _items[index] = null;
        _generations[index] = (_generations[index] + 1) & 0x1FF;   // stays a positive Python int
        _free.Push(index);
    }
}
