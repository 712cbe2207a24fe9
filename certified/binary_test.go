package certified_test

import (
	"bytes"
	"fmt"
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

// TestStubCatenateRevealsNothingOfM extends the stub-leak tests to
// CATENATE (RFC 4469): a URL naming the stub, whole or by section, gives
// the stub's own bytes, and no URL form reaches M.
func TestStubCatenateRevealsNothingOfM(t *testing.T) {
	e := newEnv(t)
	it := e.post(certified.Spec{Reveal: certified.RevealNone})
	rc := e.rawLogin("alice")
	rc.ok("SELECT INBOX")
	urls := []string{"/INBOX/;UID=1", ";UID=1", "imap://alice@localhost/INBOX/;UID=1/;SECTION=TEXT"}
	for _, s := range []string{"HEADER", "TEXT", "1", "2", "1.1", "1.2", "2.1", "1.MIME", "2.HEADER"} {
		urls = append(urls, "/INBOX/;UID=1/;SECTION="+s)
	}
	for _, u := range urls {
		// A part the stub lacks is empty; TEXT keeps the message a message.
		rc.ok(fmt.Sprintf(`APPEND Drafts CATENATE (TEXT {2+}`+"\r\n\r\n"+` URL "%s")`, u))
	}
	c := e.login("alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	stub := fetchAll(t, c, imap.SeqSetNum(1), whole)[0].BodySection[0].Bytes
	sel, err := c.Select("Drafts", nil).Wait()
	if err != nil || sel.NumMessages != uint32(len(urls)) {
		t.Fatalf("select Drafts: %v %+v, want %d messages", err, sel, len(urls))
	}
	var seq imap.SeqSet
	seq.AddRange(1, uint32(len(urls)))
	var all bytes.Buffer
	for i, m := range fetchAll(t, c, seq, whole) {
		b := m.BodySection[0].Bytes
		all.Write(b)
		if i < 2 && !bytes.Equal(b, append([]byte("\r\n"), stub...)) {
			t.Errorf("CATENATE of %s is not the stub:\n%s", urls[i], b)
		}
	}
	if bytes.Contains(all.Bytes(), []byte(secret)) || bytes.Contains(all.Bytes(), []byte("summoned")) || bytes.Contains(all.Bytes(), []byte("clerk@court")) {
		t.Fatalf("CATENATE from the stub leaks M:\n%s", all.String())
	}
	if !bytes.Contains(all.Bytes(), []byte(it.Label)) {
		t.Fatalf("CATENATE from the stub lacks the stub's label:\n%s", all.String())
	}
}
