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

// Restore unpacks the archive at file into the new or empty data
// directory so.Dir (restoring over live data would mix two histories),
// as a store opened with so (its EncryptionKey decrypts an encrypted
// backup and encrypts the new store). count, if not nil, is written each
// byte read from file (a progress meter). A backup of format 1 (Badger's
// stream) is restored through Badger's Load, one of format 2 through
// mailbox.Load.
func Restore(so mailbox.Options, file string, count io.Writer) (*Manifest, *Trailer, error) {
	dir := so.Dir
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, nil, fmt.Errorf("data directory %s is not empty: restore into a new directory", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var in io.Reader = f
	if count != nil {
		in = io.TeeReader(f, count)
	}
	r, err := newBackupReader(in, so.EncryptionKey)
	if err != nil {
		return nil, nil, err
	}
	// Before any file is written into it: the store checks too, but
	// only once the archive's files are in.
	if err := mailbox.PrepareDataDir(dir, nil); err != nil {
		return nil, nil, err
	}
	// The store chunks are fed, in order, to one Load running beside.
	var (
		pw       *io.PipeWriter
		loadDone chan error
		loaded   int64
		chunks   int
		bytes    int64
		man      *Manifest
	)
	startLoad := func() {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		loadDone = make(chan error, 1)
		badgerFormat := man.Format == formatBadger
		go func() {
			var err error
			if badgerFormat {
				err = mailbox.Restore(so, pr)
			} else {
				loaded, err = mailbox.Load(so, pr)
			}
			pr.CloseWithError(err) // unblocks the writer if Load stops early
			loadDone <- err
		}()
	}
	fail := func(err error) (*Manifest, *Trailer, error) {
		if pw != nil {
			pw.CloseWithError(err)
			<-loadDone
		}
		// The directory was empty: leave it so, not half restored, so
		// that nobody starts a server on part of the mail.
		if ents, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
		return nil, nil, err
	}
	tr := tar.NewReader(r)
	var trailer *Trailer
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
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				return fail(err)
			}
		case h.Name == fmt.Sprintf("%s%06d", storePrefix, chunks):
			if pw == nil {
				startLoad()
			}
			n, err := io.Copy(pw, tr)
			if err != nil {
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
	pw.Close()
	if err := <-loadDone; err != nil {
		pw = nil
		return fail(err)
	}
	if man.Format == format && loaded != trailer.Pairs {
		return fail(fmt.Errorf("backup: the store stream held %d pairs, the trailer says %d", loaded, trailer.Pairs))
	}
	return man, trailer, nil
}
