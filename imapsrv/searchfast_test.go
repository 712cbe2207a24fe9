package imapsrv

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// naiveIndexFold is the obvious definition indexFoldASCII must agree with.
func naiveIndexFold(hay []byte, needle string) int {
	lower := func(b []byte) []byte {
		out := make([]byte, len(b))
		for i, c := range b {
			out[i] = lowerASCII(c)
		}
		return out
	}
	return bytes.Index(lower(hay), lower([]byte(needle)))
}

func TestIndexFoldASCII(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aAbBqQ-1 \r\n\xff")
	for n := 0; n < 20000; n++ {
		hay := make([]byte, r.IntN(40))
		for i := range hay {
			hay[i] = alphabet[r.IntN(len(alphabet))]
		}
		needle := make([]byte, r.IntN(4))
		for i := range needle {
			needle[i] = alphabet[r.IntN(len(alphabet)-1)] // ASCII only
		}
		if got, want := indexFoldASCII(hay, string(needle)), naiveIndexFold(hay, string(needle)); got != want {
			t.Fatalf("indexFoldASCII(%q, %q) = %d, want %d", hay, needle, got, want)
		}
	}
}

// rawHeaderLacks may only say "no" when the decoded header text indeed
// lacks the word.
func TestRawHeaderLacks(t *testing.T) {
	raw := []byte("From: Ann <ann@example.org>\r\nSubject: the quarterly\r\n report is late\r\n" +
		"X-Enc: =?utf-8?q?quokka?=\r\nTo:bob@example.org\r\n\r\nbody quokka\r\n")
	mm := &matchMessage{raw: raw}
	for _, w := range []string{"quarterly", "REPORT", "quokka", "ann@EXAMPLE", "subject", "to", "bob", "absent",
		"quarterly report", "to: bob", "late\r\n", "x-enc: quokka"} {
		lacks := rawHeaderLacks(raw[:headerLen(raw)], w)
		mm.headerText = nil
		has := mm.headerContains(w)
		if lacks && has {
			t.Errorf("%q: raw header says absent, decoded header has it", w)
		}
	}
	plain := []byte("Subject: the quarterly\r\n report\r\n\r\nquokka\r\n")
	for w, want := range map[string]bool{"quarterly": false, "report": false, "quokka": true, "subject": false, "the quarterly": false} {
		if got := rawHeaderLacks(plain[:headerLen(plain)], w); got != want {
			t.Errorf("rawHeaderLacks(%q) = %v, want %v", w, got, want)
		}
	}
}

func TestMightBeEncoded(t *testing.T) {
	for raw, want := range map[string]bool{
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello":                false,
		"Content-Type: text/plain; charset=\"UTF-8\"\r\n\r\nhello a=b":           false,
		"Content-Type: text/plain; charset=\"utf-16\"\r\n\r\nh\x00i\x00":         true,
		"Content-Type: text/plain; CHARSET=UTF-7\r\n\r\n+AGgAaQ-":                true,
		"Content-Transfer-Encoding: BASE64\r\n\r\naGk=":                          true,
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nh=\r\ni":             true,
		"Subject: charset=utf-16 in a subject is harmless too, but detected\r\n": true,
		"plain text with = signs and no charset":                                 false,
	} {
		if got := mightBeEncoded([]byte(raw)); got != want {
			t.Errorf("mightBeEncoded(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestRarestByte(t *testing.T) {
	for s, want := range map[string]int{"quokka": 0, "base64": 4, "quoted-printable": 6, "the": 1, "a": 0} {
		if got := rarestByte(s); got != want {
			t.Errorf("rarestByte(%q) = %d, want %d", s, got, want)
		}
	}
}
