package main

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lmtpRaw runs one LMTP transaction for one recipient against a real
// server, writing the message's bytes as they are (a client library would
// turn bare LFs into CRLFs), and returns the reply to the data.
func lmtpRaw(t *testing.T, addr, rcpt, raw string) (code int, text string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() (int, string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: reading a reply: %v", err)
			}
			if len(line) < 4 {
				t.Fatalf("LMTP: short reply %q", line)
			}
			if line[3] == '-' {
				continue
			}
			code, err := strconv.Atoi(line[:3])
			if err != nil {
				t.Fatalf("LMTP: reply %q", line)
			}
			return code, strings.TrimSpace(line[4:])
		}
	}
	step := func(cmd string, want int) {
		if cmd != "" {
			fmt.Fprint(conn, cmd+"\r\n")
		}
		if code, text := reply(); code != want {
			t.Fatalf("LMTP %q: %d %s", cmd, code, text)
		}
	}
	step("", 220)
	step("LHLO test.example", 250)
	step("MAIL FROM:<sender@example.net>", 250)
	step("RCPT TO:<"+rcpt+">", 250)
	step("DATA", 354)
	if strings.HasPrefix(raw, ".") || strings.Contains(raw, "\r\n.") {
		t.Fatalf("lmtpRaw does not dot-stuff: %q", raw)
	}
	end := "\r\n.\r\n"
	if strings.HasSuffix(raw, "\r\n") {
		end = ".\r\n"
	}
	fmt.Fprint(conn, raw+end)
	code, text = reply()
	fmt.Fprint(conn, "QUIT\r\n")
	return code, text
}

// lmtpSend is lmtpRaw for messages that must be accepted: nil for 250.
func lmtpSend(t *testing.T, addr, rcpt, raw string) error {
	t.Helper()
	if code, text := lmtpRaw(t, addr, rcpt, raw); code != 250 {
		return fmt.Errorf("%d %s", code, text)
	}
	return nil
}
