package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"certmail/config"
	"certmail/kv"
	"certmail/kv/badgerkv"
	"certmail/kv/keyspace"
	"certmail/kv/pgkv"
	"certmail/mailbox"
)

// Migrate moves a store from one engine to another (Badger to PostgreSQL
// and back): every pair goes through the engine-neutral stream
// (kv.WriteStream into kv.Load), into a destination that must be empty,
// and the copy is then checked against the source by Compare.

// OpenOptions say how OpenStore opens a store.
type OpenOptions struct {
	// Key is the encryption key of a Badger store (encryption_key_file):
	// it decrypts a source and encrypts a new destination.
	Key []byte
	// Create makes a new Badger data directory (a destination), which
	// must not exist or be empty; without it the directory must hold a
	// store (a source).
	Create bool
	// DiscardIncomplete lets Create empty a data directory holding a
	// store left by a load that did not finish (and only such a store).
	DiscardIncomplete bool
	Logger            *slog.Logger
}

// OpenStore opens the engine of store, a Badger data directory or a
// postgres:// URL. The URL may not carry a password (pgkv refuses it):
// it comes from a passfile (passfile= in the URL, or PGPASSFILE).
func OpenStore(ctx context.Context, store string, o OpenOptions) (kv.Engine, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if config.IsStoreURL(store) {
		e, err := pgkv.Open(ctx, store, pgkv.Options{})
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", RedactURL(store), err)
		}
		return e, nil
	}
	if o.Create {
		// As for restore: a new or empty directory, so that nothing of
		// another store (files, or Badger's) mixes with the copy.
		if ents, err := os.ReadDir(store); err == nil && len(ents) > 0 {
			if !o.DiscardIncomplete {
				return nil, fmt.Errorf("%s is not empty: migrate into a new data directory (one left by a migration that did not finish is emptied with --discard-incomplete)", store)
			}
			if err := discardIncompleteDir(store, o.Key); err != nil {
				return nil, err
			}
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := mailbox.PrepareDataDir(store, logger); err != nil {
			return nil, err
		}
	} else if _, err := os.Stat(filepath.Join(store, "MANIFEST")); err != nil {
		// Badger would make an empty store there: a mistyped source
		// would then "migrate" nothing.
		return nil, fmt.Errorf("%s is not a certmail data directory (no store in it)", store)
	}
	e, err := badgerkv.Open(badgerkv.Options{Dir: store, EncryptionKey: o.Key, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("opening %s (is a server running on it? stop it first): %w", store, err)
	}
	return e, nil
}

// RedactURL is a store as it may be printed: a URL without its query
// (files and options nobody needs in a log) and without a password,
// should one have been given against the rules.
func RedactURL(store string) string {
	if !config.IsStoreURL(store) {
		return store
	}
	u, err := url.Parse(store)
	if err != nil {
		return "(a URL that does not parse)"
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.Redacted()
}

// CopyOptions say how Copy copies.
type CopyOptions struct {
	// Count, if not nil, is written the stream's bytes as they pass (a
	// progress meter).
	Count io.Writer
	// Source names the source in the destination's mark while the copy
	// runs (no password: RedactURL).
	Source string
	// DiscardIncomplete empties a destination holding part of an
	// earlier restore or migration that did not finish, and only such a
	// destination, first.
	DiscardIncomplete bool
}

// Copy writes every pair of src into dst, which must be empty, through
// the engine-neutral stream, and syncs dst. It returns the pairs copied
// and the stream's size. Every pair is kept as it is, UIDVALIDITYs,
// UIDs and MODSEQs included: a migration moves a live store whose
// clients keep their state (a restore, which goes back in time, gives
// new UIDVALIDITYs).
//
// A copy is all or nothing, as a restore (mailbox's load.go): dst is
// marked incomplete until every pair is in and synced, and on an error
// (ctx cancelled included) what was copied is deleted again; only if
// that fails too does dst keep part of the store, marked, which no
// server opens (the error then wraps mailbox.ErrIncomplete). A source
// that is itself part of an unfinished load is refused.
func Copy(ctx context.Context, src, dst kv.Engine, o CopyOptions) (pairs, size int64, err error) {
	if err := mailbox.CheckComplete(src); err != nil {
		return 0, 0, fmt.Errorf("the source: %w", err)
	}
	if empty, err := kv.IsEmpty(src); err != nil {
		return 0, 0, fmt.Errorf("reading the source: %w", err)
	} else if empty {
		return 0, 0, errors.New("the source store is empty: nothing to migrate (a mistyped source?)")
	}
	if err := mailbox.BeginLoad(dst, mailbox.NewLoadMark("migrate", o.Source), o.DiscardIncomplete); err != nil {
		if errors.Is(err, mailbox.ErrNotEmpty) {
			return 0, 0, fmt.Errorf("the destination is not empty: migrate into a new data directory or an empty database: %w", err)
		}
		return 0, 0, fmt.Errorf("the destination: %w", err)
	}
	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	cw := &countWriter{w: pw, count: o.Count}
	go func() {
		_, err := kv.WriteStream(cw, src)
		pw.CloseWithError(err) // nil: Load sees the end
		wrote <- err
	}()
	pairs, err = kv.Load(dst, &ctxReader{ctx: ctx, r: pr})
	pr.CloseWithError(errors.New("load ended")) // stops a writer still going
	if werr := <-wrote; werr != nil && err == nil {
		err = werr
	}
	if err == nil {
		err = mailbox.EndLoad(dst)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("stopped: %w", cerr) // rather than the cut stream it made
		}
		err = fmt.Errorf("copying: %w", err)
		if _, derr := mailbox.DiscardLoad(dst); derr != nil {
			return pairs, cw.n, fmt.Errorf("%w; and what was copied could not be deleted (%v), so the destination is marked: %w", err, derr, mailbox.ErrIncomplete)
		}
		return 0, cw.n, err
	}
	return pairs, cw.n, nil
}

type countWriter struct {
	w     io.Writer
	count io.Writer
	n     int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.count != nil {
		c.count.Write(p[:n])
	}
	return n, err
}

// Census counts a store's keys by the prefix that claims them
// (kv/keyspace).
type Census struct {
	// Prefixes, in the order of keyspace.Claims and AuxClaims; "" counts
	// keys no claim covers.
	Prefixes []PrefixCount
	Keys     int64
	Bytes    int64 // keys and values
}

// PrefixCount is a prefix's keys and their bytes (keys and values).
type PrefixCount struct {
	Prefix string
	Keys   int64
	Bytes  int64
}

func (c *Census) add(key []byte, size int64) {
	p := keyspace.Prefix(key)
	c.Keys++
	c.Bytes += size
	for i := range c.Prefixes {
		if c.Prefixes[i].Prefix == p {
			c.Prefixes[i].Keys++
			c.Prefixes[i].Bytes += size
			return
		}
	}
	c.Prefixes = append(c.Prefixes, PrefixCount{Prefix: p, Keys: 1, Bytes: size})
}

// Count is the keys under prefix.
func (c *Census) Count(prefix string) PrefixCount {
	for _, p := range c.Prefixes {
		if p.Prefix == prefix {
			return p
		}
	}
	return PrefixCount{Prefix: prefix}
}

// sortPrefixes puts the prefixes in the keyspace's order.
func (c *Census) sortPrefixes() {
	rank := map[string]int{}
	for _, cl := range keyspace.Claims {
		rank[cl.Prefix] = len(rank)
	}
	for _, cl := range keyspace.AuxClaims {
		rank[keyspace.Aux+cl.Prefix] = len(rank)
	}
	out := make([]PrefixCount, 0, len(c.Prefixes))
	for i := range len(rank) + 1 {
		for _, p := range c.Prefixes {
			if r, ok := rank[p.Prefix]; (ok && r == i) || (!ok && i == len(rank)) {
				out = append(out, p)
			}
		}
	}
	c.Prefixes = out
}

// Mismatch is a key the two stores do not agree on.
type Mismatch struct {
	Prefix string
	Key    string // printable
	// What: "missing" (only in the source), "extra" (only in the
	// destination) or "differs" (its value's SHA-256 differs).
	What string
}

// maxMismatches is how many mismatches a Report lists; it counts all.
const maxMismatches = 20

// Report is what Compare found.
type Report struct {
	Source, Dest Census
	// Bodies are the message bodies (keyspace.Raw) compared by their
	// SHA-256, one by one, and their bytes in the source.
	Bodies, BodyBytes int64
	// BodyMismatches and OtherMismatches count the keys that differ.
	BodyMismatches, OtherMismatches int64
	// Mismatches lists the first of them.
	Mismatches []Mismatch
}

// OK reports whether the stores hold the same keys under every prefix
// and the same bytes under every key.
func (r *Report) OK() bool {
	return r.BodyMismatches == 0 && r.OtherMismatches == 0 && r.Source.Keys == r.Dest.Keys
}

// Compare reads both stores, each from one snapshot, side by side in key
// order (memory stays at a few batches however large they are), and
// reports their census and every key whose value is not the same: each
// message body (raw/) and every other record is compared by its SHA-256.
func Compare(src, dst kv.Engine) (*Report, error) {
	done := make(chan struct{})
	defer close(done)
	a, aerr := entries(src, done)
	b, berr := entries(dst, done)
	r := &Report{}
	var x, y *entry
	next := func(ch <-chan []entry, buf *[]entry) *entry {
		if len(*buf) == 0 {
			var ok bool
			if *buf, ok = <-ch; !ok {
				return nil
			}
		}
		e := &(*buf)[0]
		*buf = (*buf)[1:]
		return e
	}
	var abuf, bbuf []entry
	x, y = next(a, &abuf), next(b, &bbuf)
	for x != nil || y != nil {
		var c int
		switch {
		case x == nil:
			c = 1
		case y == nil:
			c = -1
		default:
			c = bytes.Compare(x.key, y.key)
		}
		switch {
		case c == 0:
			r.Source.add(x.key, x.size)
			r.Dest.add(y.key, y.size)
			r.body(x)
			if x.sum != y.sum {
				r.mismatch(x.key, "differs")
			}
			x, y = next(a, &abuf), next(b, &bbuf)
		case c < 0:
			r.Source.add(x.key, x.size)
			r.body(x)
			r.mismatch(x.key, "missing")
			x = next(a, &abuf)
		default:
			r.Dest.add(y.key, y.size)
			r.mismatch(y.key, "extra")
			y = next(b, &bbuf)
		}
	}
	if err := <-aerr; err != nil {
		return nil, fmt.Errorf("reading the source: %w", err)
	}
	if err := <-berr; err != nil {
		return nil, fmt.Errorf("reading the destination: %w", err)
	}
	r.Source.sortPrefixes()
	r.Dest.sortPrefixes()
	return r, nil
}

func (r *Report) body(e *entry) {
	if bytes.HasPrefix(e.key, []byte(keyspace.Raw)) {
		r.Bodies++
		r.BodyBytes += e.size - int64(len(e.key))
	}
}

func (r *Report) mismatch(key []byte, what string) {
	if bytes.HasPrefix(key, []byte(keyspace.Raw)) {
		r.BodyMismatches++
	} else {
		r.OtherMismatches++
	}
	if len(r.Mismatches) < maxMismatches {
		p := keyspace.Prefix(key)
		r.Mismatches = append(r.Mismatches, Mismatch{Prefix: p, Key: printable(key), What: what})
	}
}

// printable shows a key's printable bytes as they are, others in hex
// (keys hold big-endian numbers).
func printable(key []byte) string {
	var b strings.Builder
	for _, c := range key {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}

// entry is a key, its value's SHA-256 and the pair's size.
type entry struct {
	key  []byte
	sum  [sha256.Size]byte
	size int64
}

// entries dumps e in a goroutine, in batches, until done is closed; the
// error channel gets Dump's result when the batches end.
func entries(e kv.Engine, done <-chan struct{}) (<-chan []entry, <-chan error) {
	const batch = 256
	out := make(chan []entry, 4)
	errc := make(chan error, 1)
	stopped := errors.New("comparison ended")
	go func() {
		defer close(errc)
		buf := make([]entry, 0, batch)
		send := func() error {
			select {
			case out <- buf:
				buf = make([]entry, 0, batch)
				return nil
			case <-done:
				return stopped
			}
		}
		err := e.Dump(func(k, v []byte) error {
			buf = append(buf, entry{key: bytes.Clone(k), sum: sha256.Sum256(v), size: int64(len(k) + len(v))})
			if len(buf) == batch {
				return send()
			}
			return nil
		})
		if err == nil && len(buf) > 0 {
			err = send()
		}
		close(out)
		if errors.Is(err, stopped) {
			err = nil
		}
		errc <- err
	}()
	return out, errc
}

// DataFiles are the data directory's own files, which are not in the
// store (the gateway's signing key): a migration between two data
// directories copies them, one to or from PostgreSQL leaves them where
// they are.
func DataFiles(dir string) ([]string, error) { return dataDirFiles(dir) }

// CopyDataFiles copies the data directory's own files from one data
// directory to another (mode 0600), refusing to replace one.
func CopyDataFiles(from, to string) ([]string, error) {
	files, err := dataDirFiles(from)
	if err != nil {
		return nil, err
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(to, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("copying %s: %w", name, err)
		}
	}
	return files, nil
}
