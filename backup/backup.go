// Package backup writes and restores certmail backups and migrates a
// store between engines: a backup is a tar archive of the store (the
// engine-neutral stream of kv.WriteStream, from one snapshot) and the
// data directory's own files, encrypted with the store's key when the
// store is, streamed through the admin socket to the command that writes
// the file (`certmail backup`, `certmail restore`); migrate copies a store
// from one engine to another through the same stream and checks the copy
// (migrate.go; `certmail migrate`, docs/operations.md).
package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"certmail/admin"
	"certmail/kv"
	"certmail/kv/badgerkv"
	"certmail/mailbox"
)

// A backup is a tar archive, written as a stream (no scratch file, and
// memory bounded by one chunk):
//
//	certmail-backup.json      manifest: format, time, the files below
//	files/NAME                the data directory's own files (gateway.key)
//	store/000000, 000001, …   the store's stream, in chunks of 4 MiB
//	certmail-backup-end.json  trailer: pairs, chunks and bytes
//
// The store's stream is kv.WriteStream's (format 2), which any engine
// loads; format 1, which certmail wrote before, held Badger's own backup
// stream and is still restored (into Badger). The trailer is written only
// once the store stream is complete, so a truncated archive is refused.
// When the store is encrypted at rest, the whole archive is encrypted
// with the same key (crypt.go).
const (
	manifestName = "certmail-backup.json"
	trailerName  = "certmail-backup-end.json"
	storePrefix  = "store/"
	filesDir     = "files/"
	format       = 2
	// formatBadger is the format of backups holding Badger's stream.
	formatBadger = 1
	storeChunk   = 4 << 20
	// readChunk is what one ops.backup.read returns: its base64
	// must fit the admin client's 1 MiB reply line.
	readChunk = 512 << 10
	// idle ends a backup stream nobody reads (a CLI that died).
	idle = time.Minute
)

type Manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Files   []string  `json:"files"`
}

type Trailer struct {
	// Pairs is how many key-value pairs the store's stream holds
	// (format 2).
	Pairs int64 `json:"pairs,omitempty"`
	// Version is the Badger version the snapshot was consistent at
	// (format 1 only).
	Version uint64 `json:"version,omitempty"`
	Chunks  int    `json:"chunks"`
	Bytes   int64  `json:"bytes"`
}

// Result says what a backup holds.
type Result struct {
	Pairs      int64    `json:"pairs"`
	StoreBytes int64    `json:"store_bytes"`
	Files      []string `json:"files"`
	Encrypted  bool     `json:"encrypted"`
}

// Write streams the archive of store and the files of
// dir to w, encrypted with key if not nil (the store's
// encryption_key_file). The store is read from one snapshot
// (kv.Engine.Dump): a delivery committing meanwhile is wholly in the
// backup or not at all, and writers are not blocked.
func Write(store *mailbox.Store, dir string, key []byte, w io.Writer) (*Result, error) {
	files, err := dataDirFiles(dir)
	if err != nil {
		return nil, err
	}
	out, err := newBackupWriter(w, key)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(out)
	man, _ := json.MarshalIndent(Manifest{Format: format, Created: time.Now().UTC(), Files: files}, "", "  ")
	if err := tarAdd(tw, manifestName, man); err != nil {
		return nil, err
	}
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("backing up %s: %w", name, err)
		}
		if err := tarAdd(tw, filesDir+name, data); err != nil {
			return nil, err
		}
	}
	ch := &chunkWriter{tw: tw, buf: make([]byte, 0, storeChunk)}
	pairs, err := kv.WriteStream(ch, store.Engine())
	if err == nil {
		err = ch.flush()
	}
	if err != nil {
		return nil, fmt.Errorf("backing up store: %w", err)
	}
	trailer, _ := json.Marshal(Trailer{Pairs: pairs, Chunks: ch.chunks, Bytes: ch.bytes})
	if err := tarAdd(tw, trailerName, trailer); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	return &Result{Pairs: pairs, StoreBytes: ch.bytes, Files: files, Encrypted: key != nil}, nil
}

// chunkWriter cuts the store stream into tar entries of storeChunk
// bytes: a tar entry needs its size first, and the stream's is known only
// at its end.
type chunkWriter struct {
	tw     *tar.Writer
	buf    []byte
	chunks int
	bytes  int64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(c.buf)-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := tarAdd(c.tw, fmt.Sprintf("%s%06d", storePrefix, c.chunks), c.buf); err != nil {
		return err
	}
	c.chunks++
	c.bytes += int64(len(c.buf))
	c.buf = c.buf[:0]
	return nil
}

func tarAdd(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(data)), Mode: 0o600, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	return nil
}

// dataDirFiles are the regular files of the data directory that are not
// Badger's: they are not in the store's backup stream but belong to the
// data (the gateway's signing key, without which the restored gateway
// would sign new evidence under a new key).
func dataDirFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading data directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || isBadgerFile(n) || strings.HasPrefix(n, ".") {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func isBadgerFile(name string) bool {
	switch name {
	case "MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK", "REWRITE-MANIFEST", "REWRITE-KEYREGISTRY":
		return true
	}
	for _, ext := range []string{".sst", ".vlog", ".mem"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// The backup travels to the CLI through the admin socket, in chunks:
// ops.backup.open starts the archive in the process holding the store,
// ops.backup.read returns its next bytes until the end, and the CLI
// writes the file with its own permissions, wherever it may (the server
// itself may write only its data directory under the systemd unit).

// StreamParams name a backup stream.
type StreamParams struct {
	ID string `json:"id"`
}

// Chunk is the reply of ops.backup.read.
type Chunk struct {
	Data []byte `json:"data"`
	EOF  bool   `json:"eof"`
	// Result is set with EOF.
	Result *Result `json:"result,omitempty"`
}

type Streams struct {
	store *mailbox.Store
	dir   string
	key   func() ([]byte, error)
	log   *slog.Logger

	mu sync.Mutex
	m  map[string]*stream
}

type stream struct {
	pr    *io.PipeReader
	timer *time.Timer
	done  chan struct{}
	res   *Result
	err   error
}

// NewStreams serves backup streams of store, whose data directory is dir;
// key returns the store's encryption key (nil: a plain store).
func NewStreams(store *mailbox.Store, dir string, key func() ([]byte, error), log *slog.Logger) *Streams {
	return &Streams{store: store, dir: dir, key: key, log: log, m: make(map[string]*stream)}
}

// Open starts a backup stream and returns its ID.
func (b *Streams) Open() (string, error) {
	idb := make([]byte, 12)
	rand.Read(idb)
	id := fmt.Sprintf("%x", idb)
	pr, pw := io.Pipe()
	st := &stream{pr: pr, done: make(chan struct{})}
	// A stream nobody reads for idle is dropped: closing the pipe
	// makes the writer, and so Badger's stream, stop.
	st.timer = time.AfterFunc(idle, func() {
		b.log.Warn("backup abandoned: nobody read it", "id", id, "idle", idle.String())
		b.Close(id)
	})
	b.mu.Lock()
	if len(b.m) >= 4 {
		b.mu.Unlock()
		st.timer.Stop()
		return "", fmt.Errorf("%w: 4 backups are already running", admin.ErrBadRequest)
	}
	b.m[id] = st
	b.mu.Unlock()
	b.log.Info("backup started", "id", id)
	go func() {
		defer close(st.done)
		key, err := b.key()
		if err == nil {
			st.res, err = Write(b.store, b.dir, key, pw)
		}
		st.err = err
		pw.CloseWithError(st.err) // nil: the reader sees EOF
	}()
	return id, nil
}

func (b *Streams) get(id string) (*stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.m[id]
	if st == nil {
		return nil, fmt.Errorf("%w: no backup stream %q (finished, or dropped after %v unread)", admin.ErrBadRequest, id, idle)
	}
	return st, nil
}

// Close ends a stream, read to its end or not.
func (b *Streams) Close(id string) {
	b.mu.Lock()
	st := b.m[id]
	delete(b.m, id)
	b.mu.Unlock()
	if st != nil {
		st.timer.Stop()
		st.pr.CloseWithError(errors.New("backup stream closed"))
	}
}

// Read returns the stream's next bytes; the last Chunk has EOF and the
// Result.
func (b *Streams) Read(id string) (*Chunk, error) {
	st, err := b.get(id)
	if err != nil {
		return nil, err
	}
	st.timer.Reset(idle)
	buf := make([]byte, readChunk)
	n, err := io.ReadFull(st.pr, buf)
	switch {
	case err == nil:
		return &Chunk{Data: buf[:n]}, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		<-st.done
		b.Close(id)
		if st.err != nil {
			return nil, st.err
		}
		b.log.Info("backup written", "id", id, "pairs", st.res.Pairs, "store_bytes", st.res.StoreBytes, "encrypted", st.res.Encrypted)
		return &Chunk{Data: buf[:n], EOF: true, Result: st.res}, nil
	default:
		b.Close(id)
		<-st.done
		if st.err != nil {
			return nil, st.err
		}
		return nil, err
	}
}

// Fetch reads a backup stream into path, through a temporary file
// beside it that is linked into place once complete and synced: a
// failure leaves no partial file under the name, and an existing file is
// never replaced.
// count, if not nil, is written what is written to the file.
func Fetch(ctx context.Context, ops admin.Ops, path string, count io.Writer) (*Result, int64, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, 0, fmt.Errorf("%s already exists", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".certmail-backup-*")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var stream StreamParams
	if err := ops.Call(ctx, "ops.backup.open", struct{}{}, &stream); err != nil {
		return nil, 0, err
	}
	var size int64
	for {
		var chunk Chunk
		if err := ops.Call(ctx, "ops.backup.read", stream, &chunk); err != nil {
			ops.Call(context.Background(), "ops.backup.close", stream, nil)
			return nil, 0, err
		}
		n, err := tmp.Write(chunk.Data)
		size += int64(n)
		if count != nil {
			count.Write(chunk.Data[:n])
		}
		if err != nil {
			ops.Call(context.Background(), "ops.backup.close", stream, nil)
			return nil, 0, fmt.Errorf("writing %s: %w", tmp.Name(), err)
		}
		if chunk.EOF {
			if chunk.Result == nil {
				return nil, 0, errors.New("backup stream ended without a result")
			}
			if err := tmp.Sync(); err != nil {
				return nil, 0, err
			}
			if err := tmp.Close(); err != nil {
				return nil, 0, err
			}
			if err := os.Link(tmp.Name(), path); err != nil {
				return nil, 0, fmt.Errorf("creating backup: %w", err)
			}
			return chunk.Result, size, nil
		}
	}
}

// RestoreOptions say how Restore restores.
type RestoreOptions struct {
	// Count, if not nil, is written each byte read from the file (a
	// progress meter).
	Count io.Writer
	// DiscardIncomplete empties a target store that holds part of an
	// earlier restore or migration that did not finish (and only such a
	// store) before restoring: `certmail restore --discard-incomplete`.
	DiscardIncomplete bool
}

// Restored says what Restore restored.
type Restored struct {
	Manifest *Manifest
	Trailer  *Trailer
	// Renumbered are the new UIDVALIDITYs the mailboxes got.
	Renumbered *mailbox.Renumbered
}

// Restore unpacks the archive at file into the new or empty data
// directory so.Dir (restoring over live data would mix two histories),
// as a store opened with so (its EncryptionKey decrypts an encrypted
// backup and encrypts the new store; its Engine, if set, is the empty
// database the store is restored into). A backup of format 1 (Badger's
// stream) is restored through mailbox.Restore, one of format 2 through
// mailbox.Load.
//
// A restore is all or nothing: on any error (a truncated or damaged
// archive, ctx cancelled, the database failing) the data directory is
// emptied again and what was written to the store deleted (mailbox's
// load.go); if the database cannot be reached to delete it, the store
// stays marked incomplete, the error wraps mailbox.ErrIncomplete, no
// server opens it, and a restore with DiscardIncomplete empties it.
//
// Every restored mailbox gets a new UIDVALIDITY, above any the store
// had: a backup is older than the store it replaces, whose clients may
// have seen UIDs and MODSEQs above the backup's, which the restored
// store will hand out again (RFC 3501 2.3.1.1; mailbox.Store's
// newUIDValidities). Migrate, which copies a live store, keeps them.
func Restore(ctx context.Context, so mailbox.Options, file string, ro RestoreOptions) (*Restored, error) {
	dir := so.Dir
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		if !ro.DiscardIncomplete || so.Engine != nil {
			return nil, fmt.Errorf("data directory %s is not empty: restore into a new directory (one left by a restore that did not finish is emptied with --discard-incomplete)", dir)
		}
		if err := discardIncompleteDir(dir, so.EncryptionKey); err != nil {
			return nil, err
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var in io.Reader = &ctxReader{ctx: ctx, r: f}
	if ro.Count != nil {
		in = io.TeeReader(in, ro.Count)
	}
	r, err := newBackupReader(in, so.EncryptionKey)
	if err != nil {
		return nil, err
	}
	// Before any file is written into it: the store checks too, but
	// only once the archive's files are in.
	if err := mailbox.PrepareDataDir(dir, nil); err != nil {
		return nil, err
	}
	lo := mailbox.LoadOptions{
		Mark:              mailbox.NewLoadMark("restore", file),
		DiscardIncomplete: ro.DiscardIncomplete,
		NewUIDValidity:    true,
	}
	// The store chunks are fed, in order, to one Load running beside.
	var (
		pw       *io.PipeWriter
		loadDone chan error
		loaded   *mailbox.LoadResult
		chunks   int
		bytes    int64
		man      *Manifest
	)
	var trailer *Trailer
	// Before the load is made whole: the trailer, read once the last
	// chunk is in the pipe, agrees with the stream (which has checked
	// its own count and digest).
	// The data directory's files are written then too, not as they are
	// read: until the store is whole the directory stays empty, so that
	// a restore killed part way into PostgreSQL leaves nothing there to
	// remove before it is run again.
	var files []dataFile
	// The load may reach its end before the archive's trailer is read
	// (the stream ends with its digest): the whole archive, checked, is
	// handed to it through wholec, which fail closes.
	wholec := make(chan *Trailer, 1)
	var closeWhole sync.Once
	lo.Check = func(pairs int64) error {
		trailer, ok := <-wholec
		if !ok {
			return errors.New("the archive did not end as it should")
		}
		if man.Format == format && pairs != trailer.Pairs {
			return fmt.Errorf("backup: the store stream held %d pairs, the trailer says %d", pairs, trailer.Pairs)
		}
		for _, f := range files {
			if err := writeSynced(filepath.Join(dir, f.name), f.data); err != nil {
				return err
			}
		}
		return nil
	}
	startLoad := func() {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		loadDone = make(chan error, 1)
		badgerFormat := man.Format == formatBadger
		go func() {
			var err error
			if badgerFormat {
				loaded, err = mailbox.Restore(so, pr, lo)
			} else {
				loaded, err = mailbox.Load(so, pr, lo)
			}
			pr.CloseWithError(err) // unblocks the writer if Load stops early
			loadDone <- err
		}()
	}
	fail := func(err error) (*Restored, error) {
		closeWhole.Do(func() { close(wholec) })
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("stopped: %w", cerr) // rather than the cut archive it made
		}
		if pw != nil {
			pw.CloseWithError(err)
			if lerr := <-loadDone; lerr != nil && errors.Is(lerr, mailbox.ErrIncomplete) {
				// The store kept part of the backup (load.go): say so.
				err = lerr
			}
		}
		// The directory was empty: leave it so, not half restored, so
		// that nobody starts a server on part of the mail.
		if ents, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		return nil, err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("reading backup: %w", err))
		}
		switch {
		case trailer != nil:
			return fail(fmt.Errorf("backup: entry %q after the end", h.Name))
		case h.Name == manifestName && man == nil:
			man = new(Manifest)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(man); err != nil {
				return fail(fmt.Errorf("backup manifest: %w", err))
			}
			if man.Format != format && man.Format != formatBadger {
				return fail(fmt.Errorf("backup format %d: this certmail reads formats %d and %d", man.Format, formatBadger, format))
			}
		case man == nil:
			return fail(fmt.Errorf("%s is not a certmail backup (no manifest first)", file))
		case strings.HasPrefix(h.Name, filesDir):
			name := strings.TrimPrefix(h.Name, filesDir)
			// Only plain names: an archive must not write outside DIR.
			if name == "" || name != filepath.Base(name) || name == "." || name == ".." || isBadgerFile(name) {
				return fail(fmt.Errorf("backup: refusing file name %q", h.Name))
			}
			data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				return fail(fmt.Errorf("backup: %s: %w", name, err))
			}
			files = append(files, dataFile{name, data})
		case h.Name == fmt.Sprintf("%s%06d", storePrefix, chunks):
			if pw == nil {
				startLoad()
			}
			n, err := io.Copy(pw, tr)
			if err != nil {
				// Load's own error, if it stopped first (pr.CloseWithError).
				return fail(fmt.Errorf("restoring the store: %w", err))
			}
			chunks++
			bytes += n
		case h.Name == trailerName:
			trailer = new(Trailer)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(trailer); err != nil {
				return fail(fmt.Errorf("backup trailer: %w", err))
			}
			if trailer.Chunks != chunks || trailer.Bytes != bytes {
				return fail(fmt.Errorf("backup: the store has %d chunks (%d bytes), the trailer says %d (%d)", chunks, bytes, trailer.Chunks, trailer.Bytes))
			}
		default:
			return fail(fmt.Errorf("backup: unexpected entry %q", h.Name))
		}
	}
	if trailer == nil {
		return fail(fmt.Errorf("%s ends before its trailer (truncated?)", file))
	}
	if err := r.Close(); err != nil { // checks an encrypted archive's end
		return fail(err)
	}
	if pw == nil {
		startLoad() // an empty store still gets created
	}
	wholec <- trailer
	pw.Close()
	if err := <-loadDone; err != nil {
		pw = nil
		return fail(err)
	}
	return &Restored{Manifest: man, Trailer: trailer, Renumbered: loaded.Renumbered}, nil
}

// discardIncompleteDir empties the data directory dir if it holds a
// store marked by a load that did not finish (a restore or migration
// killed part way: mailbox's load.go) or an empty store, and refuses
// anything else: a store, a directory without a store, one that does not
// open with key.
func discardIncompleteDir(dir string, key []byte) error {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		return fmt.Errorf("data directory %s is not empty and holds no store: refusing to empty it", dir)
	}
	e, err := badgerkv.Open(badgerkv.Options{Dir: dir, EncryptionKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("data directory %s is not empty, and its store does not open: %w", dir, err)
	}
	err = mailbox.CheckComplete(e)
	empty := false
	if err == nil {
		// A load that failed and deleted what it wrote (a migration)
		// leaves an empty store.
		empty, err = kv.IsEmpty(e)
	}
	if cerr := e.Close(); cerr != nil && err == nil {
		err = cerr
	}
	switch {
	case err == nil && !empty:
		return fmt.Errorf("data directory %s holds a store, which is not an unfinished one: refusing to empty it", dir)
	case err != nil && !errors.Is(err, mailbox.ErrIncomplete):
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		if err := os.RemoveAll(filepath.Join(dir, ent.Name())); err != nil {
			return fmt.Errorf("emptying %s: %w", dir, err)
		}
	}
	return nil
}

type dataFile struct {
	name string
	data []byte
}

// writeSynced creates the file name (mode 0600), which must not exist,
// with data, and syncs it.
func writeSynced(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restoring %s: %w", name, err)
	}
	return nil
}

// ctxReader fails its reads once ctx is done: a restore stopped by the
// operator (Ctrl-C) ends like one whose file was cut short.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("stopped: %w", err)
	}
	return c.r.Read(p)
}
