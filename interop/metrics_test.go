package interop

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestMetricsAndLogs scrapes the real metrics listener (with curl, as
// Prometheus would) after a delivery over LMTP by swaks and IMAP sessions,
// and reads the server's log: the families an operator expects, the
// delivery and login lines, the trace fields LMTP adds and the single
// line saying no relay is configured.
func TestMetricsAndLogs(t *testing.T) {
	curl := requireTool(t, "curl")
	metricsAddr := freeAddr(t)
	s := startServer(t, "--metrics", metricsAddr)
	s.addUser("alice", "alice-pw")
	s.deliverSwaks("alice@example.org", "metrics", "counted")

	c := imapLogin(t, s.imap, "alice", "alice-pw")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v (%d messages)", err, len(msgs))
	}
	var raw []byte
	for _, b := range msgs[0].BodySection {
		raw = b.Bytes
	}
	// swaks's MAIL FROM and RCPT TO, as Dovecot's LMTP writes them.
	if !strings.HasPrefix(string(raw), "Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.org\r\n") {
		t.Errorf("stored message does not start with the trace fields:\n%.300s", raw)
	}
	bad, err := imapclient.DialInsecure(s.imap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	bad.Close()

	scrape := func() string { return runTool(t, nil, curl, "-sf", "http://"+metricsAddr+"/metrics") }
	var text string
	// The failed session's close is counted when the server sees it.
	waitUntil(t, "one IMAP session open", 5*time.Second, func() bool {
		text = scrape()
		return strings.Contains(text, "\ncertmail_imap_sessions 1\n")
	})
	for _, want := range []string{
		`certmail_lmtp_deliveries_total{result="delivered"} 1`,
		`certmail_lmtp_deliveries_total{result="rejected"} 0`,
		`certmail_logins_total{proto="imap",result="ok"} 1`,
		`certmail_logins_total{proto="imap",result="failed"} 1`,
		`certmail_imap_commands_total{command="LOGIN",status="ok"} 1`,
		`certmail_imap_commands_total{command="LOGIN",status="no"} 1`,
		`certmail_imap_commands_total{command="SELECT",status="ok"} 1`,
		`certmail_imap_command_duration_seconds_count{command="FETCH"} 1`,
		`certmail_imap_command_duration_seconds_bucket{command="SELECT",le="+Inf"} 1`,
		"certmail_outbox_pending 0",
		"certmail_outbox_oldest_age_seconds 0",
		"certmail_outbox_dead_letters 0",
		"certmail_evidence_log_records 0",
		"certmail_state_scrape_error 0",
		"certmail_unread_messages 1", // fetched with BODY.PEEK: still unseen
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`\ncertmail_store_bytes (\S+)\n`).FindStringSubmatch(text); m == nil {
		t.Error("/metrics lacks certmail_store_bytes")
	} else if v, _ := strconv.ParseFloat(m[1], 64); v < 1024 {
		t.Errorf("certmail_store_bytes = %s", m[1])
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}

	logs := s.logText()
	for _, re := range []string{
		// One line per delivery: sender, recipient, Message-ID, size, mailbox, result.
		`msg=delivered rcpt=alice@example.org account=alice from=sender@example.org message_id=<[^ ]+> size=\d+ remote=127\.0\.0\.1:\d+ mailbox=INBOX result=stored`,
		// One per login: account, client address, protocol.
		`msg=login (component=imap )?proto=imap user=alice remote=127\.0\.0\.1:\d+ tls=false`,
		`msg="login failed" (component=auth )?proto=imap user=alice remote=127\.0\.0\.1:\d+`,
	} {
		if !regexp.MustCompile(re).MatchString(logs) {
			t.Errorf("log lacks a line matching %s", re)
		}
	}
	if n := strings.Count(logs, "no relay configured"); n != 1 {
		t.Errorf("%d lines say no relay is configured, want 1", n)
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

// withoutTrace is a message delivered over LMTP as it was sent: without
// the Return-Path and Delivered-To fields LMTP prepends.
func withoutTrace(m []byte) []byte {
	for _, name := range []string{"Return-Path: ", "Delivered-To: "} {
		if bytes.HasPrefix(m, []byte(name)) {
			if i := bytes.IndexByte(m, '\n'); i >= 0 {
				m = m[i+1:]
			}
		}
	}
	return m
}
