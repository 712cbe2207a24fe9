package kv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The engine-neutral stream: every pair of a store, in key order, in a
// format that no engine owns, so that a store dumped from one engine loads
// into another (Badger to PostgreSQL and back) and a backup outlives the
// engine that wrote it.
//
//	"certmail-kv 1\n"
//	pair*            uvarint len(key) ‖ key ‖ uvarint len(value) ‖ value; len(key) > 0
//	end              uvarint 0 ‖ uvarint pair count ‖ SHA-256 of every byte before it
//
// Keys are strictly increasing, so a stream cannot hold a key twice; the
// count and the digest catch a truncated or damaged stream before a load
// is trusted.
const streamMagic = "certmail-kv 1\n"

// MaxStreamValue bounds a value in a stream, so that a damaged length
// cannot make a reader allocate without limit. PostgreSQL's bytea holds up
// to 1 GB.
const MaxStreamValue = 1 << 30

// ErrBadStream: the input is not a whole, undamaged stream.
var ErrBadStream = errors.New("kv: not a valid stream")

// WriteStream writes every pair of e to w, from one snapshot (Engine.Dump),
// and returns how many it wrote.
func WriteStream(w io.Writer, e Engine) (int64, error) { return writeStream(w, e.Dump) }

func writeStream(w io.Writer, dump func(fn func(k, v []byte) error) error) (int64, error) {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 64<<10)
	var n int64
	if _, err := bw.WriteString(streamMagic); err != nil {
		return 0, err
	}
	var num [binary.MaxVarintLen64]byte
	put := func(b []byte) error {
		if _, err := bw.Write(num[:binary.PutUvarint(num[:], uint64(len(b)))]); err != nil {
			return err
		}
		_, err := bw.Write(b)
		return err
	}
	err := dump(func(k, v []byte) error {
		if err := put(k); err != nil {
			return err
		}
		n++
		return put(v)
	})
	if err != nil {
		return n, fmt.Errorf("writing stream: %w", err)
	}
	end := binary.AppendUvarint([]byte{0}, uint64(n))
	if _, err := bw.Write(end); err != nil {
		return n, fmt.Errorf("writing stream: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("writing stream: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return n, fmt.Errorf("writing stream: %w", err)
	}
	return n, nil
}

// ReadStream calls fn for every pair of a stream written by WriteStream,
// in order, and returns how many there were; key and value are valid only
// during the call. It returns ErrBadStream (wrapped) if the stream is
// damaged or cut short, which it can know only at the end: a caller must
// not trust what fn received until ReadStream returns nil.
func ReadStream(r io.Reader, fn func(key, value []byte) error) (int64, error) {
	h := sha256.New()
	br := &hashReader{r: bufio.NewReaderSize(r, 64<<10), h: h}
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != streamMagic {
		return 0, fmt.Errorf("%w: no stream header", ErrBadStream)
	}
	var n int64
	var key, prev, val []byte
	for {
		kl, err := binary.ReadUvarint(br)
		if err != nil {
			return n, fmt.Errorf("%w: after %d pairs: %v", ErrBadStream, n, err)
		}
		if kl == 0 {
			break
		}
		if kl > MaxKeySize*32 {
			return n, fmt.Errorf("%w: key of %d bytes", ErrBadStream, kl)
		}
		key = grow(key, int(kl))
		if _, err := io.ReadFull(br, key); err != nil {
			return n, fmt.Errorf("%w: after %d pairs: %v", ErrBadStream, n, err)
		}
		if n > 0 && bytes.Compare(key, prev) <= 0 {
			return n, fmt.Errorf("%w: keys out of order at pair %d", ErrBadStream, n+1)
		}
		vl, err := binary.ReadUvarint(br)
		if err != nil {
			return n, fmt.Errorf("%w: after %d pairs: %v", ErrBadStream, n, err)
		}
		if vl > MaxStreamValue {
			return n, fmt.Errorf("%w: value of %d bytes", ErrBadStream, vl)
		}
		if val, err = readN(br, val, int(vl)); err != nil {
			return n, fmt.Errorf("%w: after %d pairs: %v", ErrBadStream, n, err)
		}
		n++
		if err := fn(key, val); err != nil {
			return n, err
		}
		prev = append(prev[:0], key...)
	}
	count, err := binary.ReadUvarint(br)
	if err != nil || count != uint64(n) {
		return n, fmt.Errorf("%w: %d pairs read, the stream says %d (%v)", ErrBadStream, n, count, err)
	}
	want := h.Sum(nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br.r, got); err != nil || !bytes.Equal(got, want) {
		return n, fmt.Errorf("%w: digest does not match", ErrBadStream)
	}
	return n, nil
}

// readN reads n bytes into b, reusing it. A large n is read a megabyte
// at a time, so that a damaged length costs memory only for bytes that are
// really there.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk || cap(b) >= n {
		b = grow(b, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b = b[:0]
	for len(b) < n {
		m := min(chunk, n-len(b))
		b = append(b, make([]byte, m)...)
		if _, err := io.ReadFull(r, b[len(b)-m:]); err != nil {
			return b, err
		}
	}
	return b, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// hashReader hashes what is read through it.
type hashReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashReader) ReadByte() (byte, error) {
	b, err := h.r.ReadByte()
	if err == nil {
		h.h.Write([]byte{b})
	}
	return b, err
}

// Load writes the pairs of a stream into e, which should be empty and
// not in use, in transactions of a bounded size, and returns how many it
// wrote. On ErrBadStream some pairs may have been written: the target
// is then to be discarded, not used.
func Load(e Engine, r io.Reader) (int64, error) {
	const batchBytes, batchPairs = 4 << 20, 1000
	var txn Txn
	var size, pairs int
	commit := func() error {
		if txn == nil {
			return nil
		}
		err := txn.Commit()
		txn.Discard()
		txn, size, pairs = nil, 0, 0
		return err
	}
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	n, err := ReadStream(r, func(k, v []byte) error {
		if txn != nil && (size+len(k)+len(v) > batchBytes || pairs >= batchPairs) {
			if err := commit(); err != nil {
				return err
			}
		}
		// Set may keep its slices until the commit; the reader reuses
		// them.
		k, v = bytes.Clone(k), bytes.Clone(v)
		for range 2 {
			if txn == nil {
				var err error
				if txn, err = e.Begin(true); err != nil {
					return err
				}
			}
			err := txn.Set(k, v)
			if errors.Is(err, ErrTooBig) && pairs > 0 {
				// The engine's bound is below ours: commit what fits.
				if err := commit(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			size += len(k) + len(v)
			pairs++
			return nil
		}
		return fmt.Errorf("writing %q: %w", k, ErrTooBig)
	})
	if err != nil {
		return n, fmt.Errorf("loading stream: %w", err)
	}
	if err := commit(); err != nil {
		return n, fmt.Errorf("loading stream: %w", err)
	}
	return n, nil
}

// IsEmpty reports whether e holds no pair: a restore or migrate writes
// only into an empty engine, since loading over data would mix two
// histories.
func IsEmpty(e Engine) (bool, error) {
	txn, err := e.Begin(false)
	if err != nil {
		return false, err
	}
	defer txn.Discard()
	empty := true
	err = txn.Scan(Range{KeysOnly: true, Limit: 1}, func(k, v []byte) error {
		empty = false
		return ErrStop
	})
	if errors.Is(err, ErrStop) {
		err = nil
	}
	return empty, err
}
