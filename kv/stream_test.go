package kv

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
)

type kvPair struct{ k, v string }

func dumpOf(pairs []kvPair) func(fn func(k, v []byte) error) error {
	return func(fn func(k, v []byte) error) error {
		for _, p := range pairs {
			if err := fn([]byte(p.k), []byte(p.v)); err != nil {
				return err
			}
		}
		return nil
	}
}

func sampleStream(t testing.TB) ([]kvPair, []byte) {
	pairs := []kvPair{{"\x00", ""}, {"a", "1"}, {"a\x00", string(bytes.Repeat([]byte{0xff}, 300))}, {"b/c", "x"}, {"\xff\xff", "last"}}
	var buf bytes.Buffer
	n, err := writeStream(&buf, dumpOf(pairs))
	if err != nil || n != int64(len(pairs)) {
		t.Fatalf("writeStream: %d, %v", n, err)
	}
	return pairs, buf.Bytes()
}

func readAll(b []byte) ([]kvPair, error) {
	var got []kvPair
	_, err := ReadStream(bytes.NewReader(b), func(k, v []byte) error {
		got = append(got, kvPair{string(k), string(v)})
		return nil
	})
	return got, err
}

func TestStreamRoundTrip(t *testing.T) {
	pairs, b := sampleStream(t)
	got, err := readAll(b)
	if err != nil || !slices.Equal(got, pairs) {
		t.Fatalf("ReadStream = %q, %v; want %q", got, err, pairs)
	}
	// The format, byte by byte: what a backup written today must read as
	// in every later version.
	var one bytes.Buffer
	if _, err := writeStream(&one, dumpOf([]kvPair{{"a", "1"}})); err != nil {
		t.Fatal(err)
	}
	body := append([]byte("certmail-kv 1\n"), 1, 'a', 1, '1', 0, 1)
	sum := sha256.Sum256(body)
	if want := append(body, sum[:]...); !bytes.Equal(one.Bytes(), want) {
		t.Fatalf("stream of one pair:\n got %x\nwant %x", one.Bytes(), want)
	}
	// An empty store is a valid stream too.
	var empty bytes.Buffer
	if _, err := writeStream(&empty, dumpOf(nil)); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(empty.Bytes()); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %q, %v", got, err)
	}
}

// TestStreamDamage: a stream cut short anywhere, or with any byte changed,
// is refused.
func TestStreamDamage(t *testing.T) {
	_, b := sampleStream(t)
	for i := range len(b) {
		if _, err := readAll(b[:i]); !errors.Is(err, ErrBadStream) {
			t.Fatalf("stream cut at %d of %d: %v; want ErrBadStream", i, len(b), err)
		}
		d := bytes.Clone(b)
		d[i] ^= 0x20
		if _, err := readAll(d); !errors.Is(err, ErrBadStream) {
			t.Fatalf("byte %d of %d changed: %v; want ErrBadStream", i, len(b), err)
		}
	}
	// Keys out of order, or twice, even with a right digest.
	for _, pairs := range [][]kvPair{{{"b", "1"}, {"a", "2"}}, {{"a", "1"}, {"a", "2"}}} {
		var buf bytes.Buffer
		if _, err := writeStream(&buf, dumpOf(pairs)); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(buf.Bytes()); !errors.Is(err, ErrBadStream) {
			t.Errorf("keys %q: %v; want ErrBadStream", pairs, err)
		}
	}
	// A huge length in a short stream costs no huge allocation.
	huge := append([]byte(streamMagic), 1, 'k', 0xff, 0xff, 0xff, 0xff, 0x03)
	allocs := testing.AllocsPerRun(1, func() { readAll(huge) })
	if _, err := readAll(huge); !errors.Is(err, ErrBadStream) || allocs > 100 {
		t.Errorf("a 1 GB value announced in a short stream: %v, %v allocations", err, allocs)
	}
}

func TestStreamCallbackError(t *testing.T) {
	_, b := sampleStream(t)
	boom := errors.New("boom")
	n, err := ReadStream(bytes.NewReader(b), func(k, v []byte) error {
		if string(k) == "a" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("ReadStream with a failing callback: %d, %v", n, err)
	}
}

func FuzzReadStream(f *testing.F) {
	_, b := sampleStream(f)
	f.Add(b)
	f.Add([]byte(streamMagic))
	f.Add(append([]byte(streamMagic), 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		var prev []byte
		n, err := ReadStream(bytes.NewReader(data), func(k, v []byte) error {
			if len(k) == 0 || (prev != nil && bytes.Compare(k, prev) <= 0) {
				return fmt.Errorf("key %q after %q", k, prev)
			}
			prev = bytes.Clone(k)
			return nil
		})
		if err != nil && !errors.Is(err, ErrBadStream) {
			t.Fatalf("ReadStream: %v (after %d pairs)", err, n)
		}
	})
}
