package imapsrv_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzAuthenticate runs one AUTHENTICATE PLAIN exchange on a real server:
// msg is the PLAIN message, sent base64-encoded, or as it is when raw is
// set (garbage in place of base64); onLine sends it on a line of its own
// after the server's "+" instead of as the initial response. Whatever it
// is, the answer is a tagged BAD or NO (OK only for alice's own
// credentials), never NO [SERVERBUG], and the connection goes on.
func FuzzAuthenticate(f *testing.F) {
	for _, seed := range []struct {
		msg         string
		raw, onLine bool
	}{
		{"\x00alice\x00" + testPassword, false, false},
		{"alice\x00alice\x00" + testPassword, false, true},
		{"\x00alice\x00wrong", false, false},
		{"alice\x00" + testPassword, false, false},
		{"\x00alice\x00" + testPassword + "\x00", false, true},
		{"\x00\x00", false, false},
		{"", false, false},
		{"!!!notbase64", true, false},
		{"=AAA", true, true},
		{"AAA=BBB", true, false},
		{"*", true, true},
		{"\x00bob\x00x\xff", false, false},
	} {
		f.Add([]byte(seed.msg), seed.raw, seed.onLine)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	f.Fuzz(func(t *testing.T, msg []byte, raw, onLine bool) {
		resp := base64.StdEncoding.EncodeToString(msg)
		if len(msg) == 0 {
			resp = "="
		}
		if raw {
			resp = string(msg)
		}
		if strings.ContainsAny(resp, "\r\n") || len(resp) > 40000 || (!onLine && resp == "") {
			return // one line; the empty initial response is "="
		}
		per := *ts
		per.t = t
		rc := per.raw()
		defer rc.conn.Close()
		if onLine {
			rc.write("F1 AUTHENTICATE PLAIN\r\n")
			if l := rc.readLine(); !strings.HasPrefix(l, "+") {
				t.Fatalf("want a continuation request, got %q", l)
			}
			rc.write(resp + "\r\n")
		} else {
			rc.write("F1 AUTHENTICATE PLAIN " + resp + "\r\n")
		}
		deadline := time.Now().Add(10 * time.Second)
		var st string
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", resp, err)
			}
			if s, ok := strings.CutPrefix(l, "F1 "); ok {
				st = s
				break
			}
		}
		ownCreds := !raw && bytes.Count(msg, []byte{0}) == 2 && strings.HasSuffix(string(msg), "\x00"+testPassword)
		switch {
		case strings.Contains(st, "SERVERBUG"):
			t.Fatalf("%q: answered %q (a server fault for the client's input)", resp, st)
		case strings.HasPrefix(st, "OK") && !ownCreds:
			t.Fatalf("%q: answered %q", resp, st)
		case !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD"):
			t.Fatalf("%q: answered %q", resp, st)
		}
		rc.write("F2 NOOP\r\n")
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: connection gone after it: %v", resp, err)
			}
			if strings.HasPrefix(l, "F2 ") {
				if !strings.HasPrefix(l, "F2 OK") {
					t.Fatalf("%q: NOOP after it: %q", resp, l)
				}
				return
			}
		}
	})
}
