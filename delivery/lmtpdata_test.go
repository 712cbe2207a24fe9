package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// go-smtp is patched (third_party/go-smtp) to read DATA in pieces. These
// tests send raw protocol bytes over a real LMTP connection and compare
// what is stored with what go-smtp's original byte-at-a-time state
// machine makes of the same bytes.

// referenceData is upstream go-smtp's dataReader and lineLimitReader, a
// byte at a time, over the bytes that follow "DATA\r\n": the message, how
// many bytes the data phase spans, and whether a line was too long.
func referenceData(wire []byte, lineLimit int) (msg []byte, consumed int, tooLong, ended bool) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	state := stateBeginLine
	cur := 1 // the line count restarts at the newline of "DATA\r\n"
	for consumed < len(wire) && state != stateEOF {
		c := wire[consumed]
		consumed++
		if c == '\n' {
			cur = 0
		}
		cur++
		if cur > lineLimit {
			tooLong = true
		}
		switch state {
		case stateBeginLine:
			if c == '.' {
				state = stateDot
				continue
			}
			if c == '\r' {
				state = stateCR
				break
			}
			state = stateData
		case stateDot:
			if c == '\r' {
				state = stateDotCR
				continue
			}
			state = stateData
		case stateDotCR:
			if c == '\n' {
				state = stateEOF
				continue
			}
			state = stateData
		case stateCR:
			if c == '\n' {
				state = stateBeginLine
				break
			}
			state = stateData
		case stateData:
			if c == '\r' {
				state = stateCR
			}
		}
		msg = append(msg, c)
	}
	return msg, consumed, tooLong, state == stateEOF
}

// dataWire is what the test sends after DATA: a header, body, and as
// many end-of-data lines as it takes (the state machine does not see one
// right after ".\r\r"); the message the server must store; and whether a
// line is too long.
func dataWire(body []byte) (wire, msg []byte, tooLong bool) {
	wire = append([]byte("Subject: fuzz\r\n\r\n"), body...)
	for {
		wire = append(wire, "\r\n.\r\n"...)
		m, consumed, long, ended := referenceData(wire, goSMTPLineLimit)
		if ended {
			return wire[:consumed], m, long
		}
	}
}

// goSMTPLineLimit is go-smtp's default MaxLineLength, which the LMTP
// server keeps.
const goSMTPLineLimit = 2000

func checkLMTPData(t *testing.T, addr string, body []byte) {
	t.Helper()
	wire, _, tooLong := dataWire(body)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() string {
		var last string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "closed: " + err.Error()
			}
			last = line
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(last)
			}
		}
	}
	reply() // greeting
	for _, cmd := range []string{"LHLO fuzz.test", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@example.org>", "DATA"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		if got := reply(); got[0] != '2' && got[0] != '3' {
			t.Fatalf("%s: %s", cmd, got)
		}
	}
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	got := reply()
	if tooLong {
		if strings.HasPrefix(got, "250") {
			t.Fatalf("a line over %d bytes was accepted: %s", goSMTPLineLimit, got)
		}
		return
	}
	if !strings.HasPrefix(got, "250") {
		t.Fatalf("DATA of %d bytes: %s", len(wire), got)
	}
}

func lastStored(t *testing.T, d *Deliverer) []byte {
	t.Helper()
	msgs := inbox(t, d.store, "alice")
	if len(msgs) == 0 {
		return nil
	}
	return msgs[len(msgs)-1]
}

func runDataCase(t *testing.T, addr string, d *Deliverer, body []byte) {
	t.Helper()
	before := len(inbox(t, d.store, "alice"))
	checkLMTPData(t, addr, body)
	_, want, tooLong := dataWire(body)
	after := inbox(t, d.store, "alice")
	if tooLong {
		if len(after) != before {
			t.Fatal("a message with a too-long line was stored")
		}
		return
	}
	if len(after) != before+1 {
		t.Fatalf("%d messages stored, want %d", len(after), before+1)
	}
	if got := lastStored(t, d); !bytes.Equal(got, want) {
		t.Fatalf("stored %q\nwant   %q", got, want)
	}
}

var dataCases = [][]byte{
	[]byte("plain body"),
	[]byte("..stuffed line\r\n.\r\nafter an early end"),
	[]byte(".\rX odd dot CR\r\n.x\r\n..\r\n"),
	[]byte("bare\nLF\rCR\r\r\n\r\n\r\n"),
	[]byte("\r\n.\r"),
	[]byte(strings.Repeat("a", 1990) + "\r\n" + strings.Repeat("b", 3000)),
	[]byte(strings.Repeat("line of text\r\n", 5000)),
	bytes.Repeat([]byte("x\r."), 40000),
}

func TestLMTPDataMatchesReference(t *testing.T) {
	st := openStore(t, "alice")
	addr, d := startLMTP(t, st, Options{}, LMTPOptions{})
	for _, c := range dataCases {
		runDataCase(t, addr, d, c)
	}
}

// FuzzLMTPData: arbitrary DATA bytes, with a long run of one byte spliced
// in so that lines near and over the length limit and reads across the
// server's buffer boundaries come up.
func FuzzLMTPData(f *testing.F) {
	for _, c := range dataCases[:5] {
		f.Add(c, uint16(0), byte('a'))
	}
	f.Add([]byte("a\r\nb"), uint16(1998), byte('z'))
	f.Add([]byte(".\r\n"), uint16(5000), byte('.'))
	st := openStore(f, "alice")
	addr, d := startLMTP(f, st, Options{}, LMTPOptions{})
	f.Fuzz(func(t *testing.T, body []byte, run uint16, fill byte) {
		if len(body) > 1<<16 {
			return
		}
		mid := len(body) / 2
		b := append(append(append([]byte{}, body[:mid]...), bytes.Repeat([]byte{fill}, int(run))...), body[mid:]...)
		runDataCase(t, addr, d, b)
	})
}
