// Package kvtest is the conformance suite of kv engines: what the mailbox
// store and everything above it rely on, said as tests. An engine's own
// test calls Run with a function that opens a new, empty engine.
package kvtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"certmail/kv"
)

// Run runs the suite, each test on an engine of its own from open, which
// must return a new, empty engine; Run closes it when the test ends.
func Run(t *testing.T, open func(t *testing.T) kv.Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e kv.Engine)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"GetMany", testGetMany},
		{"ScanOrder", testScanOrder},
		{"PrefixBounds", testPrefixBounds},
		{"ScanOptions", testScanOptions},
		{"ReadYourWrites", testReadYourWrites},
		{"Isolation", testIsolation},
		{"CommitDiscard", testCommitDiscard},
		{"Conflict", testConflict},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"LargeValues", testLargeValues},
		{"LongKeys", testLongKeys},
		{"Dump", testDump},
		{"DumpSnapshot", testDumpSnapshot},
		{"ScanWithPendingWrites", testScanWithPendingWrites},
		{"StreamLoad", testStreamLoad},
		{"LongScan", testLongScan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := open(t)
			t.Cleanup(func() {
				if err := e.Close(); err != nil {
					t.Errorf("closing engine: %v", err)
				}
			})
			tc.fn(t, e)
		})
	}
}

func set(t *testing.T, e kv.Engine, pairs ...string) {
	t.Helper()
	if len(pairs)%2 != 0 {
		t.Fatal("set: odd number of arguments")
	}
	err := kv.Update(e, func(tx kv.Txn) error {
		for i := 0; i < len(pairs); i += 2 {
			if err := tx.Set([]byte(pairs[i]), []byte(pairs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("set: %v", err)
	}
}

func begin(t *testing.T, e kv.Engine, writable bool) kv.Txn {
	t.Helper()
	tx, err := e.Begin(writable)
	if err != nil {
		t.Fatalf("Begin(%v): %v", writable, err)
	}
	t.Cleanup(tx.Discard)
	return tx
}

// get returns the value of key and whether it has one.
func get(t *testing.T, tx kv.Txn, key string) (string, bool) {
	t.Helper()
	v, err := tx.Get([]byte(key), nil)
	if errors.Is(err, kv.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), true
}

func getView(t *testing.T, e kv.Engine, key string) (v string, found bool) {
	t.Helper()
	err := kv.View(e, func(tx kv.Txn) error {
		v, found = get(t, tx, key)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return v, found
}

type pair struct{ k, v string }

func scan(t *testing.T, tx kv.Txn, r kv.Range) []pair {
	t.Helper()
	var out []pair
	err := tx.Scan(r, func(k, v []byte) error {
		if r.KeysOnly && v != nil {
			return fmt.Errorf("KeysOnly scan passed value %q for %q", v, k)
		}
		out = append(out, pair{string(k), string(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%+v): %v", r, err)
	}
	return out
}

func scanView(t *testing.T, e kv.Engine, r kv.Range) (out []pair) {
	t.Helper()
	err := kv.View(e, func(tx kv.Txn) error {
		out = scan(t, tx, r)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return out
}

func keys(ps []pair) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.k)
	}
	return out
}

func testGetSetDelete(t *testing.T, e kv.Engine) {
	if _, found := getView(t, e, "k"); found {
		t.Fatal("new engine has a value for k")
	}
	set(t, e, "k", "one", "empty", "")
	if v, found := getView(t, e, "k"); !found || v != "one" {
		t.Fatalf("k = %q, %v; want one", v, found)
	}
	if v, found := getView(t, e, "empty"); !found || v != "" {
		t.Fatalf("empty = %q, %v; want an empty value, found", v, found)
	}
	set(t, e, "k", "two")
	err := kv.View(e, func(tx kv.Txn) error {
		// Get appends to dst[:0] and may reuse it.
		buf := make([]byte, 0, 64)
		buf = append(buf, "junk"...)
		v, err := tx.Get([]byte("k"), buf)
		if err != nil || string(v) != "two" {
			return fmt.Errorf("Get with a buffer = %q, %v; want two", v, err)
		}
		var got string
		if err := tx.GetFunc([]byte("k"), func(v []byte) error { got = string(v); return nil }); err != nil {
			return fmt.Errorf("GetFunc: %w", err)
		}
		if got != "two" {
			return fmt.Errorf("GetFunc = %q; want two", got)
		}
		called := false
		err = tx.GetFunc([]byte("missing"), func([]byte) error { called = true; return nil })
		if !errors.Is(err, kv.ErrNotFound) || called {
			return fmt.Errorf("GetFunc(missing) = %v, called %v; want ErrNotFound, not called", err, called)
		}
		wantErr := errors.New("from fn")
		if err := tx.GetFunc([]byte("k"), func([]byte) error { return wantErr }); !errors.Is(err, wantErr) {
			return fmt.Errorf("GetFunc returned %v; want fn's error", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = kv.Update(e, func(tx kv.Txn) error {
		if err := tx.Delete([]byte("k")); err != nil {
			return err
		}
		// Deleting what is not there is not an error.
		return tx.Delete([]byte("never"))
	})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if v, found := getView(t, e, "k"); found {
		t.Fatalf("k = %q after Delete", v)
	}
	if _, found := getView(t, e, "empty"); !found {
		t.Fatal("Delete of k removed another key")
	}
}

// testScanOrder: keys come back in bytewise order, whatever order they
// were written in, with the bytes that trip up text collations.
// getMany returns what GetMany passes, by index, failing t if an index
// comes twice.
func getMany(t *testing.T, tx kv.Txn, keys ...string) map[int]string {
	t.Helper()
	bk := make([][]byte, len(keys))
	for i, k := range keys {
		bk[i] = []byte(k)
	}
	got := make(map[int]string)
	err := tx.GetMany(bk, func(i int, v []byte) error {
		if _, dup := got[i]; dup {
			return fmt.Errorf("index %d passed twice", i)
		}
		got[i] = string(v)
		return nil
	})
	if err != nil {
		t.Fatalf("GetMany(%q): %v", keys, err)
	}
	return got
}

func testGetMany(t *testing.T, e kv.Engine) {
	set(t, e, "a", "1", "b", "2", "c", "3", "empty", "")
	tx := begin(t, e, true)
	if err := tx.Set([]byte("d"), []byte("4 pending")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Set([]byte("b"), []byte("2 pending")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete([]byte("c")); err != nil {
		t.Fatal(err)
	}
	// Stored, pending, replaced, deleted, missing, empty, and a key twice.
	got := getMany(t, tx, "a", "d", "b", "c", "missing", "empty", "a")
	want := map[int]string{0: "1", 1: "4 pending", 2: "2 pending", 5: "", 6: "1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GetMany = %v; want %v", got, want)
	}
	if got := getMany(t, tx); len(got) != 0 {
		t.Fatalf("GetMany() = %v", got)
	}
	// ErrStop ends it without an error; another error is returned.
	n := 0
	err := tx.GetMany([][]byte{[]byte("a"), []byte("d"), []byte("empty")}, func(int, []byte) error {
		n++
		return kv.ErrStop
	})
	if err != nil || n != 1 {
		t.Fatalf("GetMany stopped: %v after %d calls; want nil after 1", err, n)
	}
	wantErr := errors.New("from fn")
	if err := tx.GetMany([][]byte{[]byte("a")}, func(int, []byte) error { return wantErr }); !errors.Is(err, wantErr) {
		t.Fatalf("GetMany returned %v; want fn's error", err)
	}
	// The transaction goes on after both.
	if v, ok := get(t, tx, "a"); !ok || v != "1" {
		t.Fatalf("a = %q, %v after GetMany", v, ok)
	}
	tx.Discard()

	// Many keys at once, more than one statement's worth on PostgreSQL.
	const many = 2500
	err = kv.Update(e, func(tx kv.Txn) error {
		for i := range many {
			if i%3 != 0 {
				if err := tx.Set(fmt.Appendf(nil, "m/%05d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, many)
	for i := range keys {
		keys[i] = fmt.Sprintf("m/%05d", many-1-i) // not in key order
	}
	err = kv.View(e, func(tx kv.Txn) error {
		got := getMany(t, tx, keys...)
		for i, k := range keys {
			var n int
			fmt.Sscanf(k, "m/%d", &n)
			v, ok := got[i]
			if ok != (n%3 != 0) || (ok && v != fmt.Sprintf("v%d", n)) {
				return fmt.Errorf("GetMany: %s = %q, %v", k, v, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// GetMany reads as Get does (testConflict): two transactions that
	// read a key with it and write the key, the second to commit fails.
	w := begin(t, e, true)
	getMany(t, w, "a", "b")
	set(t, e, "b", "changed")
	err = w.Set([]byte("b"), []byte("from w"))
	if err == nil {
		err = w.Commit()
	}
	if !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("second writer of b, read with GetMany: %v; want ErrConflict", err)
	}
}

func testScanOrder(t *testing.T, e kv.Engine) {
	want := []string{"\x00", "\x00\x00", "\x01", "A", "B", "a", "a\x00", "a\x00b", "a\x01", "aa", "ab", "b", "\x7f", "\x80", "\xc3\xa9", "\xff", "\xff\x00", "\xff\xff"}
	shuffled := slices.Clone(want)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var pairs []string
	for _, k := range shuffled {
		pairs = append(pairs, k, "v"+k)
	}
	set(t, e, pairs...)
	got := scanView(t, e, kv.Range{})
	if !slices.Equal(keys(got), want) {
		t.Fatalf("scan order\n got %q\nwant %q", keys(got), want)
	}
	for _, p := range got {
		if p.v != "v"+p.k {
			t.Fatalf("value of %q = %q", p.k, p.v)
		}
	}
	rev := scanView(t, e, kv.Range{Reverse: true})
	r := slices.Clone(want)
	slices.Reverse(r)
	if !slices.Equal(keys(rev), r) {
		t.Fatalf("reverse scan order\n got %q\nwant %q", keys(rev), r)
	}
	// Numbers big-endian encoded sort as numbers: what every counter
	// and UID key relies on.
	var nums []string
	for _, n := range []uint64{300, 1, 65536, 255, 256, 0, 1 << 40} {
		k := binary.BigEndian.AppendUint64([]byte("n/"), n)
		nums = append(nums, string(k), "")
	}
	set(t, e, nums...)
	var prev uint64
	for i, p := range scanView(t, e, kv.Prefix([]byte("n/"))) {
		n := binary.BigEndian.Uint64([]byte(p.k[2:]))
		if i > 0 && n <= prev {
			t.Fatalf("number keys out of order: %d after %d", n, prev)
		}
		prev = n
	}
}

func testPrefixBounds(t *testing.T, e kv.Engine) {
	all := []string{"a", "a\x00", "a\xff", "a\xff\xff", "ab", "b", "b\x00", "\xff", "\xff\xff"}
	var pairs []string
	for _, k := range all {
		pairs = append(pairs, k, k)
	}
	set(t, e, pairs...)
	for _, tc := range []struct {
		r    kv.Range
		want []string
	}{
		{kv.Prefix([]byte("a")), []string{"a", "a\x00", "ab", "a\xff", "a\xff\xff"}},
		{kv.Prefix([]byte("a\xff")), []string{"a\xff", "a\xff\xff"}},
		{kv.Prefix([]byte("b")), []string{"b", "b\x00"}},
		{kv.Prefix([]byte("\xff")), []string{"\xff", "\xff\xff"}},
		{kv.Prefix([]byte("c")), nil},
		{kv.Prefix([]byte("ab\x00")), nil},
		{kv.Range{Prefix: []byte("a"), Start: []byte("a\x00"), End: []byte("a\xff\xff")}, []string{"a\x00", "ab", "a\xff"}},
		// Start and End outside the prefix are clipped to it.
		{kv.Range{Prefix: []byte("a"), Start: []byte("0"), End: []byte("z")}, []string{"a", "a\x00", "ab", "a\xff", "a\xff\xff"}},
		{kv.Range{Start: []byte("ab"), End: []byte("b\x00")}, []string{"ab", "a\xff", "a\xff\xff", "b"}},
		{kv.Range{Start: []byte("b")}, []string{"b", "b\x00", "\xff", "\xff\xff"}},
		{kv.Range{End: []byte("a\x00")}, []string{"a"}},
		{kv.Range{Start: []byte("b"), End: []byte("b")}, nil},
		{kv.Range{Start: []byte("c"), End: []byte("b")}, nil},
	} {
		got := keys(scanView(t, e, tc.r))
		if !slices.Equal(got, tc.want) {
			t.Errorf("Scan(%+v)\n got %q\nwant %q", tc.r, got, tc.want)
		}
		r := tc.r
		r.Reverse = true
		want := slices.Clone(tc.want)
		slices.Reverse(want)
		if got := keys(scanView(t, e, r)); !slices.Equal(got, want) {
			t.Errorf("reverse Scan(%+v)\n got %q\nwant %q", tc.r, got, want)
		}
	}
}

func testScanOptions(t *testing.T, e kv.Engine) {
	var pairs []string
	for i := range 10 {
		pairs = append(pairs, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i))
	}
	set(t, e, pairs...)
	p := []byte("k")
	if got := keys(scanView(t, e, kv.Range{Prefix: p, Limit: 3})); !slices.Equal(got, []string{"k00", "k01", "k02"}) {
		t.Errorf("Limit 3: %q", got)
	}
	if got := keys(scanView(t, e, kv.Range{Prefix: p, Limit: 2, Reverse: true})); !slices.Equal(got, []string{"k09", "k08"}) {
		t.Errorf("Limit 2 reverse: %q", got)
	}
	if got := keys(scanView(t, e, kv.Range{Prefix: p, Start: []byte("k05"), Limit: 2, Reverse: true})); !slices.Equal(got, []string{"k09", "k08"}) {
		t.Errorf("Start k05, Limit 2 reverse: %q", got)
	}
	if got := keys(scanView(t, e, kv.Range{Prefix: p, End: []byte("k05"), Limit: 2, Reverse: true})); !slices.Equal(got, []string{"k04", "k03"}) {
		t.Errorf("End k05, Limit 2 reverse: %q", got)
	}
	// Expect is a hint: the same pairs, with a Limit or without, in
	// either order.
	for _, r := range []kv.Range{{Prefix: p}, {Prefix: p, Limit: 3}, {Prefix: p, Start: []byte("k04"), Reverse: true}} {
		want := keys(scanView(t, e, r))
		r.Expect = 1000
		if got := keys(scanView(t, e, r)); !slices.Equal(got, want) {
			t.Errorf("%+v: %q, want %q as without Expect", r, got, want)
		}
	}
	// KeysOnly: nil values (checked in scan), all keys.
	if got := scanView(t, e, kv.Range{Prefix: p, KeysOnly: true}); len(got) != 10 {
		t.Errorf("KeysOnly: %d keys, want 10", len(got))
	}
	err := kv.View(e, func(tx kv.Txn) error {
		// ErrStop ends the scan; Scan returns nil.
		n := 0
		err := tx.Scan(kv.Prefix(p), func(k, v []byte) error {
			if n++; n == 4 {
				return kv.ErrStop
			}
			return nil
		})
		if err != nil || n != 4 {
			return fmt.Errorf("scan stopped at 4: %d calls, %v", n, err)
		}
		// Another error ends it and comes back.
		boom := errors.New("boom")
		n = 0
		err = tx.Scan(kv.Prefix(p), func(k, v []byte) error {
			n++
			return boom
		})
		if !errors.Is(err, boom) || n != 1 {
			return fmt.Errorf("scan ending with an error: %d calls, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testReadYourWrites(t *testing.T, e kv.Engine) {
	set(t, e, "a", "1", "b", "2", "c", "3")
	tx := begin(t, e, true)
	must(t, tx.Set([]byte("b"), []byte("22")))
	must(t, tx.Set([]byte("bb"), []byte("new")))
	must(t, tx.Delete([]byte("c")))
	if v, found := get(t, tx, "b"); v != "22" || !found {
		t.Errorf("own write of b: %q, %v", v, found)
	}
	if v, found := get(t, tx, "c"); found {
		t.Errorf("own delete of c: still %q", v)
	}
	want := []pair{{"a", "1"}, {"b", "22"}, {"bb", "new"}}
	if got := scan(t, tx, kv.Range{}); !slices.Equal(got, want) {
		t.Errorf("scan in the writing transaction\n got %q\nwant %q", got, want)
	}
	rwant := slices.Clone(want)
	slices.Reverse(rwant)
	if got := scan(t, tx, kv.Range{Reverse: true}); !slices.Equal(got, rwant) {
		t.Errorf("reverse scan in the writing transaction\n got %q\nwant %q", got, rwant)
	}
	must(t, tx.Commit())
	if got := scanView(t, e, kv.Range{}); !slices.Equal(got, want) {
		t.Errorf("after commit\n got %q\nwant %q", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testIsolation: what a transaction has not committed is invisible to
// others, and a transaction's reads come from one snapshot.
func testIsolation(t *testing.T, e kv.Engine) {
	set(t, e, "k", "old", "other", "x")
	w := begin(t, e, true)
	r := begin(t, e, false)
	// The reader's snapshot is taken by the time of its first read.
	if v, _ := get(t, r, "other"); v != "x" {
		t.Fatalf("other = %q", v)
	}
	must(t, w.Set([]byte("k"), []byte("new")))
	must(t, w.Set([]byte("k2"), []byte("added")))
	must(t, w.Delete([]byte("other")))
	if v, _ := get(t, r, "k"); v != "old" {
		t.Errorf("uncommitted write visible: k = %q", v)
	}
	if _, found := get(t, r, "k2"); found {
		t.Error("uncommitted insert visible")
	}
	must(t, w.Commit())
	// Still the old snapshot after the commit.
	if v, _ := get(t, r, "k"); v != "old" {
		t.Errorf("commit after the snapshot visible: k = %q", v)
	}
	if got := scan(t, r, kv.Range{}); !slices.Equal(got, []pair{{"k", "old"}, {"other", "x"}}) {
		t.Errorf("snapshot scan after another's commit: %q", got)
	}
	must(t, r.Commit())
	if got := scanView(t, e, kv.Range{}); !slices.Equal(got, []pair{{"k", "new"}, {"k2", "added"}}) {
		t.Errorf("new transaction after the commit: %q", got)
	}
}

func testCommitDiscard(t *testing.T, e kv.Engine) {
	tx := begin(t, e, true)
	must(t, tx.Set([]byte("d"), []byte("discarded")))
	tx.Discard()
	if _, found := getView(t, e, "d"); found {
		t.Error("discarded write kept")
	}
	tx = begin(t, e, true)
	must(t, tx.Set([]byte("c"), []byte("committed")))
	must(t, tx.Commit())
	tx.Discard() // after Commit: nothing
	if v, _ := getView(t, e, "c"); v != "committed" {
		t.Errorf("c = %q after Commit and Discard", v)
	}
	// An error from fn: Update keeps nothing.
	boom := errors.New("boom")
	err := kv.Update(e, func(tx kv.Txn) error {
		if err := tx.Set([]byte("u"), []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update = %v; want fn's error", err)
	}
	if _, found := getView(t, e, "u"); found {
		t.Error("write of a failed Update kept")
	}
	// A read-only transaction refuses writes.
	r := begin(t, e, false)
	if err := r.Set([]byte("r"), []byte("1")); !errors.Is(err, kv.ErrReadOnly) {
		if err == nil {
			err = r.Commit()
		}
		if !errors.Is(err, kv.ErrReadOnly) {
			t.Errorf("write in a read-only transaction: %v; want ErrReadOnly", err)
		}
	}
	r.Discard()
	if _, found := getView(t, e, "r"); found {
		t.Error("write of a read-only transaction kept")
	}
}

// testConflict: two transactions read a key and both write it; the second
// to commit must fail with ErrConflict, from its write or its commit, and
// leave the first one's value.
func testConflict(t *testing.T, e kv.Engine) {
	set(t, e, "n", "0")
	t1 := begin(t, e, true)
	t2 := begin(t, e, true)
	get(t, t1, "n")
	get(t, t2, "n")
	must(t, t1.Set([]byte("n"), []byte("1")))
	must(t, t1.Commit())
	err := t2.Set([]byte("n"), []byte("2"))
	if err == nil {
		err = t2.Commit()
	}
	if !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("second writer of n: %v; want ErrConflict", err)
	}
	t2.Discard()
	if v, _ := getView(t, e, "n"); v != "1" {
		t.Fatalf("n = %q; want the first writer's 1", v)
	}
}

// testConcurrentIncrements: read-modify-write transactions from several
// goroutines, retried by kv.Update on conflict, lose no increment.
func testConcurrentIncrements(t *testing.T, e kv.Engine) {
	const workers, each = 3, 30
	key := []byte("counter")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := kv.Update(e, func(tx kv.Txn) error {
					var n uint64
					v, err := tx.Get(key, nil)
					switch {
					case err == nil:
						n = binary.BigEndian.Uint64(v)
					case !errors.Is(err, kv.ErrNotFound):
						return err
					}
					return tx.Set(key, binary.BigEndian.AppendUint64(nil, n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	v, found := getView(t, e, string(key))
	if !found || binary.BigEndian.Uint64([]byte(v)) != workers*each {
		t.Fatalf("counter = %x, want %d", v, workers*each)
	}
}

func testLargeValues(t *testing.T, e kv.Engine) {
	big := make([]byte, 6<<20)
	for i := range big {
		big[i] = byte(i * 7 / 3)
	}
	other := bytes.Repeat([]byte("m"), 3<<20)
	err := kv.Update(e, func(tx kv.Txn) error {
		if err := tx.Set([]byte("big"), big); err != nil {
			return err
		}
		return tx.Set([]byte("big2"), other)
	})
	if err != nil {
		t.Fatalf("writing large values: %v", err)
	}
	err = kv.View(e, func(tx kv.Txn) error {
		v, err := tx.Get([]byte("big"), nil)
		if err != nil || !bytes.Equal(v, big) {
			return fmt.Errorf("Get(big): %d bytes, %v", len(v), err)
		}
		err = tx.GetFunc([]byte("big2"), func(v []byte) error {
			if !bytes.Equal(v, other) {
				return fmt.Errorf("GetFunc(big2): %d bytes differ", len(v))
			}
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		err = tx.Scan(kv.Prefix([]byte("big")), func(k, v []byte) error {
			want := big
			if string(k) == "big2" {
				want = other
			}
			if !bytes.Equal(v, want) {
				return fmt.Errorf("scan: %q has %d bytes, not its own", k, len(v))
			}
			n++
			return nil
		})
		if err != nil || n != 2 {
			return fmt.Errorf("scan of large values: %d, %v", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testLongKeys(t *testing.T, e kv.Engine) {
	long := bytes.Repeat([]byte{0xab}, kv.MaxKeySize)
	long2 := bytes.Clone(long)
	long2[len(long2)-1] = 0xac
	err := kv.Update(e, func(tx kv.Txn) error {
		if err := tx.Set(long2, []byte("2")); err != nil {
			return err
		}
		return tx.Set(long, []byte("1"))
	})
	if err != nil {
		t.Fatalf("writing keys of MaxKeySize: %v", err)
	}
	got := scanView(t, e, kv.Prefix(long[:100]))
	if len(got) != 2 || got[0].k != string(long) || got[1].v != "2" {
		t.Fatalf("scan of long keys: %d pairs", len(got))
	}
}

func testDump(t *testing.T, e kv.Engine) {
	var pairs []string
	want := []pair{}
	for i := range 300 {
		k := fmt.Sprintf("%c/%04d", 'a'+i%3, i)
		v := string(bytes.Repeat([]byte{byte(i)}, i*13))
		pairs = append(pairs, k, v)
		want = append(want, pair{k, v})
	}
	pairs = append(pairs, "\xff\xff", "last")
	want = append(want, pair{"\xff\xff", "last"})
	set(t, e, pairs...)
	slices.SortFunc(want, func(a, b pair) int { return bytes.Compare([]byte(a.k), []byte(b.k)) })
	var got []pair
	if err := e.Dump(func(k, v []byte) error {
		got = append(got, pair{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Dump gave %d pairs, want %d (or not in key order, or values differ)", len(got), len(want))
	}
	n := 0
	if err := e.Dump(func(k, v []byte) error {
		if n++; n == 5 {
			return kv.ErrStop
		}
		return nil
	}); err != nil || n != 5 {
		t.Fatalf("Dump stopped at 5: %d calls, %v", n, err)
	}
}

// testDumpSnapshot: a transaction committed while Dump runs is not in it.
func testDumpSnapshot(t *testing.T, e kv.Engine) {
	var pairs []string
	for i := range 50 {
		pairs = append(pairs, fmt.Sprintf("k%03d", i), "before")
	}
	set(t, e, pairs...)
	var got []pair
	first := true
	err := e.Dump(func(k, v []byte) error {
		if first {
			first = false
			// Writers are not blocked by a running Dump.
			err := kv.Update(e, func(tx kv.Txn) error {
				if err := tx.Set([]byte("k049"), []byte("during")); err != nil {
					return err
				}
				if err := tx.Delete([]byte("k040")); err != nil {
					return err
				}
				return tx.Set([]byte("k100"), []byte("during"))
			})
			if err != nil {
				return fmt.Errorf("writing during Dump: %w", err)
			}
		}
		got = append(got, pair{string(k), string(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if len(got) != 50 {
		t.Fatalf("Dump gave %d pairs, want the 50 of its snapshot", len(got))
	}
	for _, p := range got {
		if p.v != "before" {
			t.Fatalf("Dump saw %q = %q, written after it began", p.k, p.v)
		}
	}
}

// testStreamLoad: a store written out as an engine-neutral stream and
// loaded back (into the emptied engine) holds the same pairs, large values
// and more pairs than one load transaction takes included.
func testStreamLoad(t *testing.T, e kv.Engine) {
	var want []pair
	err := kv.Update(e, func(tx kv.Txn) error {
		for i := range 2500 {
			k, v := fmt.Sprintf("s/%05d", i), fmt.Sprintf("value %d", i)
			if i%500 == 0 {
				v = string(bytes.Repeat([]byte{byte(i)}, 2<<20))
			}
			if err := tx.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
			want = append(want, pair{k, v})
		}
		return tx.Set([]byte("\xff\xff"), []byte{})
	})
	if err != nil {
		t.Fatalf("filling the store: %v", err)
	}
	want = append(want, pair{"\xff\xff", ""})
	var buf bytes.Buffer
	n, err := kv.WriteStream(&buf, e)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("WriteStream: %d pairs, %v; want %d", n, err, len(want))
	}
	// Empty the store, in batches.
	for {
		var keys [][]byte
		err := kv.View(e, func(tx kv.Txn) error {
			return tx.Scan(kv.Range{KeysOnly: true, Limit: 500}, func(k, _ []byte) error {
				keys = append(keys, bytes.Clone(k))
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		err = kv.Update(e, func(tx kv.Txn) error {
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := kv.Load(e, bytes.NewReader(buf.Bytes())); err != nil || n != int64(len(want)) {
		t.Fatalf("Load: %d pairs, %v; want %d", n, err, len(want))
	}
	var got []pair
	if err := e.Dump(func(k, v []byte) error {
		got = append(got, pair{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after Load: %d pairs, want %d (or values differ)", len(got), len(want))
	}
	// A damaged stream is refused.
	b := buf.Bytes()
	if _, err := kv.Load(e, bytes.NewReader(b[:len(b)-1])); !errors.Is(err, kv.ErrBadStream) {
		t.Fatalf("Load of a cut stream: %v; want ErrBadStream", err)
	}
}

// testScanWithPendingWrites checks a writing transaction's scans against
// a model: thousands of stored keys (many pages for an engine that reads
// by pages), pending sets and deletes between and on them, ranges in both
// directions, limits, and then the commit of it all.
func testScanWithPendingWrites(t *testing.T, e kv.Engine) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() string { return fmt.Sprintf("p/%04d", rng.IntN(3000)) }
	model := map[string]string{}
	err := kv.Update(e, func(tx kv.Txn) error {
		for range 2000 {
			k := key()
			model[k] = "stored" + k
			if err := tx.Set([]byte(k), []byte(model[k])); err != nil {
				return err
			}
		}
		return tx.Set([]byte("q"), []byte("outside the prefix"))
	})
	if err != nil {
		t.Fatal(err)
	}
	tx := begin(t, e, true)
	for i := range 600 {
		k := key()
		if i%3 == 0 {
			delete(model, k)
			must(t, tx.Delete([]byte(k)))
		} else {
			model[k] = fmt.Sprintf("pending%d", i)
			must(t, tx.Set([]byte(k), []byte(model[k])))
		}
	}
	var all []string
	for k := range model {
		all = append(all, k)
	}
	slices.Sort(all)
	for _, r := range []kv.Range{
		kv.Prefix([]byte("p/")),
		{Prefix: []byte("p/"), Reverse: true},
		{Prefix: []byte("p/"), Start: []byte("p/0500"), End: []byte("p/2500")},
		{Prefix: []byte("p/"), Start: []byte("p/0500"), End: []byte("p/2500"), Reverse: true},
		{Prefix: []byte("p/"), Limit: 1000},
		{Prefix: []byte("p/"), Limit: 77, Reverse: true, KeysOnly: true},
		{Prefix: []byte("p/1")},
	} {
		lo, hi := r.Bounds()
		var want []string
		for _, k := range all {
			if k >= string(lo) && (hi == nil || k < string(hi)) {
				want = append(want, k)
			}
		}
		if r.Reverse {
			slices.Reverse(want)
		}
		if r.Limit > 0 && len(want) > r.Limit {
			want = want[:r.Limit]
		}
		var got []string
		err := tx.Scan(r, func(k, v []byte) error {
			if !r.KeysOnly && string(v) != model[string(k)] {
				return fmt.Errorf("%s = %q, want %q", k, v, model[string(k)])
			}
			got = append(got, string(k))
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%+v): %v", r, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Scan(%+v): %d keys, want %d", r, len(got), len(want))
		}
	}
	must(t, tx.Commit())
	// The commit wrote 600 pending writes in chunks; a fresh snapshot
	// agrees with the model.
	var got []string
	err = kv.View(e, func(tx kv.Txn) error {
		return tx.Scan(kv.Prefix([]byte("p/")), func(k, v []byte) error {
			if string(v) != model[string(k)] {
				return fmt.Errorf("%s = %q after commit, want %q", k, v, model[string(k)])
			}
			got = append(got, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Errorf("after commit: %d keys, want %d", len(got), len(all))
	}
}

// testLongScan reads a range of many pages (for an engine that reads by
// pages, as PostgreSQL's does, whose page memory is reused) in a read
// transaction: every pair's value, empty ones included, in both
// directions and keys only; reads of the transaction from the callback
// between pages; and a scan that stops in the middle, after which the
// transaction reads on.
func testLongScan(t *testing.T, e kv.Engine) {
	const n = 10000
	val := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), (i*7)%301) }
	for b := 0; b < n; b += 1000 { // batches: Badger bounds a transaction
		err := kv.Update(e, func(tx kv.Txn) error {
			for i := b; i < b+1000; i++ {
				if err := tx.Set(fmt.Appendf(nil, "l/%05d", i), []byte(val(i))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tx := begin(t, e, false)
	for _, r := range []kv.Range{
		kv.Prefix([]byte("l/")),
		{Prefix: []byte("l/"), Reverse: true},
		{Prefix: []byte("l/"), KeysOnly: true},
	} {
		i := 0
		err := tx.Scan(r, func(k, v []byte) error {
			j := i
			if r.Reverse {
				j = n - 1 - i
			}
			if want := fmt.Sprintf("l/%05d", j); string(k) != want {
				return fmt.Errorf("pair %d: key %q, want %q", i, k, want)
			}
			if !r.KeysOnly && string(v) != val(j) {
				return fmt.Errorf("%s: %d bytes, want %d", k, len(v), len(val(j)))
			}
			if i%1000 == 999 {
				// A read from the callback, between the pages.
				if got, ok := get(t, tx, "l/00003"); !ok || got != val(3) {
					return fmt.Errorf("Get from the callback: %q, %v", got, ok)
				}
			}
			i++
			return nil
		})
		if err != nil || i != n {
			t.Fatalf("Scan(%+v): %d pairs, %v", r, i, err)
		}
	}
	// Stopped in the middle, by ErrStop and by Limit: the transaction
	// goes on reading.
	i := 0
	err := tx.Scan(kv.Prefix([]byte("l/")), func(k, v []byte) error {
		if i++; i == 6000 {
			return kv.ErrStop
		}
		return nil
	})
	if err != nil || i != 6000 {
		t.Fatalf("Scan stopped at 6000: %d pairs, %v", i, err)
	}
	if got := scan(t, tx, kv.Range{Prefix: []byte("l/"), Start: []byte("l/05000"), Limit: 4321}); len(got) != 4321 || got[0].k != "l/05000" || got[4320].v != val(9320) {
		t.Fatalf("Limit 4321 from l/05000: %d pairs", len(got))
	}
	if got, ok := get(t, tx, "l/09999"); !ok || got != val(9999) {
		t.Fatalf("Get after the stopped scans: %q, %v", got, ok)
	}
	must(t, tx.Commit())

	// A writing transaction's pending sets and deletes, spread over the
	// range, in scans both ways.
	wtx := begin(t, e, true)
	model := map[string]string{}
	for i := range n {
		model[fmt.Sprintf("l/%05d", i)] = val(i)
	}
	for i := 5; i < n; i += 97 {
		k := fmt.Sprintf("l/%05d", i)
		if i%2 == 0 {
			delete(model, k)
			must(t, wtx.Delete([]byte(k)))
		} else {
			model[k] = "pending"
			must(t, wtx.Set([]byte(k), []byte("pending")))
		}
		k += "+" // between two stored keys
		model[k] = "new"
		must(t, wtx.Set([]byte(k), []byte("new")))
	}
	var all []string
	for k := range model {
		all = append(all, k)
	}
	slices.Sort(all)
	for _, reverse := range []bool{false, true} {
		var got []string
		err := wtx.Scan(kv.Range{Prefix: []byte("l/"), Reverse: reverse}, func(k, v []byte) error {
			if string(v) != model[string(k)] {
				return fmt.Errorf("%s = %q, want %q", k, v, model[string(k)])
			}
			got = append(got, string(k))
			return nil
		})
		want := slices.Clone(all)
		if reverse {
			slices.Reverse(want)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("pending writes, reverse %v: %d keys, want %d, %v", reverse, len(got), len(want), err)
		}
	}
}
