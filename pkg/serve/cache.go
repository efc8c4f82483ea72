package serve

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Cache stores encoded responses by key. Implementations are safe for
// concurrent use. A failing shared cache must never fail a request: Get
// reports a miss and Set drops the value.
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, val []byte)
	Close() error
}

// cacheKey hashes the model identity and every input's name, dtype, shape
// and bytes. Requested outputs are not part of it: the full result is cached.
// The hashed byte stream is fixed (replicas sharing a Redis cache, and
// entries written by earlier versions, must agree on keys).
func cacheKey(model, version string, names []string, in []*runtime.Tensor) string {
	kh := keyHashers.Get().(*keyHasher)
	defer keyHashers.Put(kh)
	h, b := kh.h, kh.buf[:0]
	h.Reset()
	str := func(s string) {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
		if len(s) > 256 {
			h.Write(b)
			b = b[:0]
			io.WriteString(h, s)
			return
		}
		b = append(b, s...)
	}
	str(model)
	str(version)
	for i, t := range in {
		str(names[i])
		b = binary.LittleEndian.AppendUint64(b, uint64(t.DType))
		for _, d := range t.Shape {
			b = binary.LittleEndian.AppendUint64(b, uint64(d))
		}
		if t.DType == graph.String {
			str(string(rawBytes(t)))
			continue
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(len(t.Raw)))
		h.Write(b)
		b = b[:0]
		h.Write(t.Raw)
	}
	h.Write(b)
	kh.buf = b[:0]
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

type keyHasher struct {
	h   hash.Hash
	buf []byte
}

var keyHashers = sync.Pool{New: func() any { return &keyHasher{h: sha256.New(), buf: make([]byte, 0, 512)} }}

// encodeResult serializes the variant name and outputs for the cache.
func encodeResult(variant string, outs []*runtime.Tensor) []byte {
	var buf []byte
	app := func(p []byte) {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	app([]byte(variant))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(outs)))
	for _, t := range outs {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(t.DType))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(t.Shape)))
		for _, d := range t.Shape {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
		}
		app(rawBytes(t))
	}
	return buf
}

var errCorruptEntry = errors.New("serve: corrupt cache entry")

func decodeResult(buf []byte) (string, []*runtime.Tensor, error) {
	bad := errCorruptEntry
	u64 := func() (uint64, bool) {
		if len(buf) < 8 {
			return 0, false
		}
		v := binary.LittleEndian.Uint64(buf)
		buf = buf[8:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		n, ok := u64()
		if !ok || n > uint64(len(buf)) {
			return nil, false
		}
		p := buf[:n]
		buf = buf[n:]
		return p, true
	}
	v, ok := bytesField()
	if !ok {
		return "", nil, bad
	}
	n, ok := u64()
	if !ok || n > 1024 {
		return "", nil, bad
	}
	outs := make([]*runtime.Tensor, 0, n)
	for i := uint64(0); i < n; i++ {
		dt, ok1 := u64()
		rank, ok2 := u64()
		if !ok1 || !ok2 || rank > 64 {
			return "", nil, bad
		}
		shape := make([]int64, rank)
		for k := range shape {
			d, ok := u64()
			if !ok {
				return "", nil, bad
			}
			shape[k] = int64(d)
		}
		raw, ok := bytesField()
		if !ok {
			return "", nil, bad
		}
		t, err := tensorFromRaw("cached", graph.DType(dt), shape, raw)
		if err != nil {
			return "", nil, bad
		}
		outs = append(outs, t)
	}
	return string(v), outs, nil
}

// LRU is an in-process cache bounded in bytes.
type LRU struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	val []byte
}

// NewLRU makes an LRU holding at most maxBytes of values.
func NewLRU(maxBytes int64) *LRU {
	return &LRU{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *LRU) Get(_ context.Context, key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry).val, true
	}
	return nil, false
}

func (c *LRU) Set(_ context.Context, key string, val []byte) {
	cost := int64(len(val) + len(key))
	if cost > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.size -= int64(len(e.Value.(*lruEntry).val) + len(key))
		c.ll.Remove(e)
		delete(c.items, key)
	}
	for c.size+cost > c.max && c.ll.Len() > 0 {
		old := c.ll.Back()
		en := old.Value.(*lruEntry)
		c.size -= int64(len(en.val) + len(en.key))
		c.ll.Remove(old)
		delete(c.items, en.key)
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key, val})
	c.size += cost
}

// Len is the number of entries; Bytes their size.
func (c *LRU) Len() int { c.mu.Lock(); defer c.mu.Unlock(); return c.ll.Len() }

func (c *LRU) Close() error { return nil }

// RedisCache shares responses between replicas through Redis.
//
// Trust: whoever can write to the Redis server can plant answers. With an
// HMAC key (SetHMACKey, --cache-hmac-key) every entry is stored with
// HMAC-SHA256(key, redis key || value) in front, and an entry whose MAC does
// not verify (planted, altered, moved to another key, or written without
// the key) is ignored: a miss, counted in Rejected. Without a key, entries
// are trusted as they are.
type RedisCache struct {
	c        *redis.Client
	ttl      time.Duration
	prefix   string
	mac      []byte
	rejected atomic.Int64
}

// NewRedis connects to redis://host:port[/db] and checks it answers.
func NewRedis(url string, ttl time.Duration) (*RedisCache, error) {
	if !strings.HasPrefix(url, "redis://") && !strings.HasPrefix(url, "rediss://") {
		return nil, fmt.Errorf("serve: cache %q: want redis://host:port", url)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("serve: cache %q: %w", url, err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 500 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("serve: cache %q does not answer: %w", url, err)
	}
	return &RedisCache{c: c, ttl: ttl, prefix: "optictl:"}, nil
}

// SetHMACKey makes the cache sign what it stores and ignore entries that
// are not signed with key (see RedisCache). Call it before use.
func (r *RedisCache) SetHMACKey(key []byte) { r.mac = append([]byte(nil), key...) }

// Rejected counts entries ignored because their MAC did not verify.
func (r *RedisCache) Rejected() int64 { return r.rejected.Load() }

func (r *RedisCache) sum(key string, val []byte) []byte {
	m := hmac.New(sha256.New, r.mac)
	io.WriteString(m, key)
	m.Write([]byte{0})
	m.Write(val)
	return m.Sum(nil)
}

func (r *RedisCache) Get(ctx context.Context, key string) ([]byte, bool) {
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if err != nil {
		return nil, false
	}
	if r.mac == nil {
		return b, true
	}
	if len(b) < sha256.Size || !hmac.Equal(b[:sha256.Size], r.sum(r.prefix+key, b[sha256.Size:])) {
		r.rejected.Add(1)
		return nil, false
	}
	return b[sha256.Size:], true
}

func (r *RedisCache) Set(ctx context.Context, key string, val []byte) {
	if r.mac != nil {
		val = append(r.sum(r.prefix+key, val), val...)
	}
	_ = r.c.Set(ctx, r.prefix+key, val, r.ttl).Err()
}

func (r *RedisCache) Close() error { return r.c.Close() }
