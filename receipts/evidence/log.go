package evidence

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"certmail/kv"
)

// Log appends gateway P's evidence records to the Merkle log kept in a
// kv.Records. A Log holds no state of its own beyond its keys: everything
// lives in the store, so any number of Logs (and processes) may share a store.
type Log struct {
	signer *Signer
	origin string
	note   note.Signer
	vkey   string
	now    func() time.Time
}

// LogOption adjusts a Log.
type LogOption func(*Log)

// WithClock sets the clock that times events appended without a Time.
func WithClock(now func() time.Time) LogOption {
	return func(l *Log) { l.now = now }
}

// NewLog returns the log of signer's gateway. origin names the log in its
// checkpoints (a C2SP origin such as "mail.example.org/certmail/evidence")
// and is the checkpoints' note key name.
func NewLog(signer *Signer, origin string, opts ...LogOption) (*Log, error) {
	ns, err := newNoteSigner(origin, signer.key)
	if err != nil {
		return nil, fmt.Errorf("new log %q: %w", origin, err)
	}
	vkey, err := VerifierKey(origin, signer.Public())
	if err != nil {
		return nil, fmt.Errorf("new log %q: %w", origin, err)
	}
	l := &Log{signer: signer, origin: origin, note: ns, vkey: vkey, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l, nil
}

// Origin is the log's name in its checkpoints.
func (l *Log) Origin() string { return l.origin }

// Signer is the gateway identity that signs records and checkpoints.
func (l *Log) Signer() *Signer { return l.signer }

// VerifierKey is the note verifier key of the log's checkpoints.
func (l *Log) VerifierKey() string { return l.vkey }

// Entry is a record as the log holds it.
type Entry struct {
	Index uint64 // leaf index in the log
	JWS   string // the record, compact JWS
}

// Record decodes the entry's payload without checking its signature: for
// reading back what this log wrote. Use OpenRecord or Verify on evidence
// from elsewhere.
func (e Entry) Record() (Record, error) {
	payload, err := payloadWithoutVerification(e.JWS)
	if err != nil {
		return Record{}, fmt.Errorf("leaf %d: %w", e.Index, err)
	}
	r, err := parsePayload(payload)
	if err != nil {
		return Record{}, fmt.Errorf("leaf %d: %w", e.Index, err)
	}
	return r, nil
}

// Append records ev: it takes seq and prev from the item's last record,
// checks that ev may follow the item's chain, signs, and adds the record
// to the tree.
//
// Call it inside the write transaction that makes the change ev records,
// so both commit or neither does. Appends are serialised by the store:
// each writes the log head, so concurrent transactions that append
// conflict on that key and the store retries all but one. This is
// expected, and is what keeps the leaf order and the chains consistent.
func (l *Log) Append(kv kv.Records, ev Event) (Entry, error) {
	if err := checkLabel(ev.Label); err != nil {
		return Entry{}, fmt.Errorf("append %s: %w", ev.Type, err)
	}
	indexes, err := labelIndexes(kv, ev.Label)
	if err != nil {
		return Entry{}, fmt.Errorf("append %s for %q: %w", ev.Type, ev.Label, err)
	}
	c, err := replay(kv, indexes)
	if err != nil {
		return Entry{}, fmt.Errorf("append %s for %q: %w", ev.Type, ev.Label, err)
	}
	t := ev.Time
	if t.IsZero() {
		t = l.now()
	}
	r := Record{Type: ev.Type, Gateway: l.signer.gateway, Label: ev.Label, Hash: ev.Hash,
		Seq: c.next, Prev: c.prevDigest, Time: t, Data: ev.Data}
	jws, err := l.signer.signRecord(r)
	if err != nil {
		return Entry{}, fmt.Errorf("append %s for %q: %w", ev.Type, ev.Label, err)
	}
	if err := c.apply(r, RecordDigest(jws)); err != nil {
		return Entry{}, fmt.Errorf("append %s for %q: %w", ev.Type, ev.Label, err)
	}
	index, err := l.appendLeaf(kv, ev.Label, indexes, jws)
	if err != nil {
		return Entry{}, fmt.Errorf("append %s for %q: %w", ev.Type, ev.Label, err)
	}
	return Entry{Index: index, JWS: jws}, nil
}

// appendLeaf stores the record as the next leaf and indexes it under label.
func (l *Log) appendLeaf(kv kv.Records, label string, indexes []uint64, jws string) (uint64, error) {
	size, _, err := readHead(kv)
	if err != nil {
		return 0, err
	}
	root, err := appendLeaf(kv, size, LeafHash(jws))
	if err != nil {
		return 0, err
	}
	if err := kv.Set(leafKey(size), []byte(jws)); err != nil {
		return 0, fmt.Errorf("writing leaf %d: %w", size, err)
	}
	list := make([]byte, 0, 8*(len(indexes)+1))
	for _, i := range append(indexes, size) {
		list = binary.BigEndian.AppendUint64(list, i)
	}
	if err := kv.Set(labelKey(label), list); err != nil {
		return 0, fmt.Errorf("writing label index: %w", err)
	}
	if err := writeHead(kv, size+1, root); err != nil {
		return 0, err
	}
	return size, nil
}

// Records returns the label's records in chain order.
func Records(kv kv.Records, label string) ([]Entry, error) {
	indexes, err := labelIndexes(kv, label)
	if err != nil {
		return nil, fmt.Errorf("records of %q: %w", label, err)
	}
	jws, err := readLeaves(kv, indexes)
	if err != nil {
		return nil, fmt.Errorf("records of %q: %w", label, err)
	}
	entries := make([]Entry, len(indexes))
	for i, index := range indexes {
		entries[i] = Entry{Index: index, JWS: jws[i]}
	}
	return entries, nil
}

// replay rebuilds the chain state of the records at indexes.
func replay(kv kv.Records, indexes []uint64) (*chain, error) {
	jws, err := readLeaves(kv, indexes)
	if err != nil {
		return nil, err
	}
	c := &chain{}
	for i, index := range indexes {
		e := Entry{Index: index, JWS: jws[i]}
		r, err := e.Record()
		if err != nil {
			return nil, err
		}
		if err := c.apply(r, RecordDigest(e.JWS)); err != nil {
			return nil, fmt.Errorf("stored record %d (%s): %w", r.Seq, r.Type, err)
		}
	}
	return c, nil
}

func readLeaf(kv kv.Records, index uint64) (string, error) {
	v, found, err := kv.Get(leafKey(index))
	if err != nil {
		return "", fmt.Errorf("reading leaf %d: %w", index, err)
	}
	if !found {
		return "", fmt.Errorf("leaf %d is missing", index)
	}
	return string(v), nil
}

// readLeaves reads the leaves at indexes, in their order, with one
// GetMany: on PostgreSQL one round trip for them all. Append replays the
// item's chain with it, inside the write transaction that every other
// append conflicts with (they all write the log head): a Get per record
// made that transaction a round trip longer for each record of the item,
// and under load three nodes appending to items of twenty records lost
// to each other for seconds on end (TestNodesAppendOneLog).
func readLeaves(kv kv.Records, indexes []uint64) ([]string, error) {
	keys := make([][]byte, len(indexes))
	for i, index := range indexes {
		keys[i] = leafKey(index)
	}
	out := make([]string, len(indexes))
	found := make([]bool, len(indexes))
	if err := kv.GetMany(keys, func(i int, v []byte) error {
		out[i], found[i] = string(v), true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading %d leaves: %w", len(indexes), err)
	}
	for i, ok := range found {
		if !ok {
			return nil, fmt.Errorf("leaf %d is missing", indexes[i])
		}
	}
	return out, nil
}

func labelIndexes(kv kv.Records, label string) ([]uint64, error) {
	v, _, err := kv.Get(labelKey(label))
	if err != nil {
		return nil, fmt.Errorf("reading label index: %w", err)
	}
	if len(v)%8 != 0 {
		return nil, fmt.Errorf("label index has %d bytes, not a multiple of 8", len(v))
	}
	indexes := make([]uint64, len(v)/8)
	for i := range indexes {
		indexes[i] = binary.BigEndian.Uint64(v[8*i:])
	}
	return indexes, nil
}
