package imapsrv_test

import (
	"strings"
	"testing"
	"time"
)

// FuzzNotifyCommand sends an arbitrary NOTIFY argument line to a real
// server (the event-group parser of third_party/go-imap's
// imapserver/notify.go and the session's checks behind it): the answer is
// a tagged OK, NO or BAD, never a server fault; only an OK may be preceded
// by STATUS responses, and those name existing mailboxes; afterwards a
// delivery and a NOOP work (whatever NOTIFY left on). Seeds: the f.Add
// lines and testdata/fuzz/FuzzNotifyCommand.
func FuzzNotifyCommand(f *testing.F) {
	for _, seed := range []string{
		"NONE", "SET (personal (MessageNew MessageExpunge))",
		"SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge FlagChange))",
		"SET (mailboxes (INBOX Sent) (MessageNew)) (subscribed (MailboxName SubscriptionChange))",
		"SET (selected-delayed NONE) (inboxes (FlagChange))", "SET (personal (AnnotationChange))",
		"SET (selected (MessageNew (RFC822 BINARY.PEEK[1] BODYSTRUCTURE) MessageExpunge FlagChange))",
		"SET (personal ())", "SET STATUS", "SET (subtree () (MessageNew))", "SET (x (MessageNew))",
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "x"))
	f.Fuzz(func(t *testing.T, args string) {
		if strings.ContainsAny(args, "\r\n{") || len(args) > 4000 {
			return // one line, no literal
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		rc.ok("SELECT INBOX")
		rc.write("F1 NOTIFY " + args + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		var untagged []string
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", args, err)
			}
			if !strings.HasPrefix(l, "F1 ") {
				untagged = append(untagged, l)
				continue
			}
			st := strings.TrimPrefix(l, "F1 ")
			if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") {
				t.Fatalf("%q: answered %q", args, l)
			}
			if strings.Contains(st, "SERVERBUG") {
				t.Fatalf("%q: answered %q (a server fault for the client's input)", args, l)
			}
			for _, u := range untagged {
				if strings.HasPrefix(u, "* STATUS") && !strings.HasPrefix(st, "OK") {
					t.Fatalf("%q: %q before %q", args, u, st)
				}
				if strings.HasPrefix(u, "* STATUS INBOX") {
					t.Fatalf("%q: STATUS of the selected mailbox: %q", args, u)
				}
			}
			break
		}
		per.deliver("alice", "Sent", simpleMessage("two", "y"))
		rc.write("F2 NOOP\r\n")
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: connection gone after it: %v", args, err)
			}
			if strings.HasPrefix(l, "F2 ") {
				if !strings.HasPrefix(l, "F2 OK") {
					t.Fatalf("%q: NOOP after it: %q", args, l)
				}
				return
			}
		}
	})
}
