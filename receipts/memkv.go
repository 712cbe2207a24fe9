package receipts

import (
	"bytes"
	"errors"
	"sort"
	"sync"

	certkv "certmail/kv"
)

// MemKV is an in-memory KV, for tests and for tools that verify without a
// store. It is safe for concurrent use.
type MemKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: make(map[string][]byte)} }

func (kv *MemKV) Get(key []byte) ([]byte, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[string(key)]
	return bytes.Clone(v), ok, nil
}

func (kv *MemKV) GetMany(keys [][]byte, fn func(i int, value []byte) error) error {
	for i, k := range keys {
		kv.mu.Lock()
		v, ok := kv.m[string(k)]
		kv.mu.Unlock()
		if !ok {
			continue
		}
		if err := fn(i, v); err != nil {
			if errors.Is(err, certkv.ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (kv *MemKV) Set(key, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.m[string(key)] = bytes.Clone(value)
	return nil
}

func (kv *MemKV) Delete(key []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.m, string(key))
	return nil
}

func (kv *MemKV) Scan(prefix []byte, fn func(key, value []byte) error) error {
	kv.mu.Lock()
	keys := make([]string, 0, len(kv.m))
	for k := range kv.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = kv.m[k]
	}
	kv.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}
