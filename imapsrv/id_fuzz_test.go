package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// FuzzID sends ID with arbitrary parameters before login (where an
// unknown or failed command must not end the connection): the answer is
// a tagged OK or BAD, never NO [SERVERBUG], and the connection still
// answers NOOP. Seeds: testdata/fuzz/FuzzID and those below.
func FuzzID(f *testing.F) {
	for _, seed := range []string{
		"NIL", "()", `("name" "x")`, `("name" NIL)`, `("name" "x" "version")`, `(NIL "x")`,
		`("name" {3}` + "\r\nabc)", `("a" "b" ("c"))`, `("name" "\xff\xfe")`, `"name"`,
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, params string) {
		if strings.ContainsAny(params, "\r\n{") || len(params) > 4000 {
			return // one line, no literal (the server would wait for its data)
		}
		per := *ts
		per.t = t
		rc := per.raw()
		defer rc.conn.Close()
		rc.write("F1 ID " + params + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for _, tag := range []string{"F1 ", "F2 "} {
			for {
				l, err := rc.tryReadLine(time.Until(deadline))
				if err != nil {
					t.Fatalf("%q: no %sanswer: %v", params, tag, err)
				}
				if !strings.HasPrefix(l, tag) {
					continue
				}
				st := strings.TrimPrefix(l, tag)
				if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
					t.Fatalf("%q: answered %q", params, l)
				}
				break
			}
			if tag == "F1 " {
				rc.write("F2 NOOP\r\n")
			}
		}
	})
}
