package certified_test

import (
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"

	"certmail/certified"
)

// TestStubBinaryRevealsNothingOfM extends the stub-leak tests to BINARY
// (RFC 3516): every section of the stub, decoded, and every BINARY.SIZE,
// comes from the stub's own bytes; no section number reaches M.
func TestStubBinaryRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealNone})
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	parts := [][]int{nil, {1}, {2}, {3}, {1, 1}, {1, 2}, {2, 1}, {2, 2}}
	opts := &imap.FetchOptions{RFC822Size: true}
	for _, p := range parts {
		opts.BinarySection = append(opts.BinarySection, &imap.FetchItemBinarySection{Part: p, Peek: true})
		opts.BinarySectionSize = append(opts.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: p})
	}
	m := fetchAll(t, c, imap.SeqSetNum(1), opts)[0]
	var all bytes.Buffer
	for _, b := range m.BinarySection {
		all.Write(b.Bytes)
	}
	if bytes.Contains(all.Bytes(), []byte(secret)) || bytes.Contains(all.Bytes(), []byte("summoned")) || bytes.Contains(all.Bytes(), []byte("clerk@court")) {
		t.Fatalf("BINARY of the stub leaks M:\n%s", all.String())
	}
	if !bytes.Contains(all.Bytes(), []byte(it.Label)) {
		t.Fatalf("BINARY of the stub lacks the stub's own label:\n%s", all.String())
	}
	if len(m.BinarySectionSize) != len(parts) {
		t.Fatalf("BINARY.SIZE: %+v", m.BinarySectionSize)
	}
	for _, s := range m.BinarySectionSize {
		if int64(s.Size) > m.RFC822Size || int(s.Size) == len(heldMessage) {
			t.Errorf("BINARY.SIZE%v = %d: not the stub's (RFC822.SIZE %d); M is %d bytes", s.Part, s.Size, m.RFC822Size, len(heldMessage))
		}
	}
}
