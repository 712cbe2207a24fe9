package imapsrv_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"certmail/imapsrv"
	"certmail/metrics"
)

// Every answered command is counted by the name the server dispatched it
// under and by status, with its latency; a name the server does not know
// is UNKNOWN (a client cannot make up label values); sessions are a
// gauge.
func TestCommandMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, func(o *imapsrv.Options) { o.Metrics = metrics.New(reg) })
	ts.addUser("alice")
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	rc.ok("UID FETCH 1:* (FLAGS)")
	rc.ok("NOOP")
	for _, line := range []string{"XYZZY-1", "XYZZY-2", "FETCH nonsense"} {
		if _, st := rc.cmd(line); !strings.HasPrefix(st, "BAD") {
			t.Fatalf("%s: %s", line, st)
		}
	}
	if _, st := rc.cmd("SELECT NoSuchBox"); !strings.HasPrefix(st, "NO") {
		t.Fatalf("SELECT NoSuchBox: %s", st)
	}
	second := ts.rawLogin("alice")

	scrape := func() string {
		rec := httptest.NewRecorder()
		metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	text := scrape()
	for _, want := range []string{
		`certmail_imap_commands_total{command="LOGIN",status="ok"} 2`,
		`certmail_imap_commands_total{command="SELECT",status="ok"} 1`,
		`certmail_imap_commands_total{command="SELECT",status="no"} 1`,
		`certmail_imap_commands_total{command="UID FETCH",status="ok"} 1`,
		`certmail_imap_commands_total{command="NOOP",status="ok"} 1`,
		`certmail_imap_commands_total{command="UNKNOWN",status="bad"} 2`,
		`certmail_imap_commands_total{command="FETCH",status="bad"} 1`,
		`certmail_imap_command_duration_seconds_count{command="UID FETCH"} 1`,
		"certmail_imap_sessions 2",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "XYZZY") {
		t.Error("a client's made-up command name became a label")
	}
	second.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(text, "certmail_imap_sessions 1\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		text = scrape()
	}
	if !strings.Contains(text, "certmail_imap_sessions 1\n") {
		t.Errorf("closed session still counted:\n%s", text)
	}
}
