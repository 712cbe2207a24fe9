package imapsrv_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"certmail/imapsrv"
)

var modSeqRE = regexp.MustCompile(`MODSEQ \((\d+)\)`)

// storeModSeq runs a STORE on one message and returns the MODSEQ its
// FETCH response gives.
func storeModSeq(t *testing.T, rc *rawClient, line string) uint64 {
	t.Helper()
	for _, l := range rc.ok(line) {
		if m := modSeqRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("%s: no MODSEQ in the answer", line)
	return 0
}

// searchLine runs a SEARCH that must succeed and returns its one untagged
// SEARCH or ESEARCH line, with the tag in ESEARCH replaced by "T".
func searchLine(t *testing.T, rc *rawClient, line string) string {
	t.Helper()
	var out []string
	for _, l := range rc.ok(line) {
		if strings.HasPrefix(l, "* SEARCH") || strings.HasPrefix(l, "* ESEARCH") {
			out = append(out, regexp.MustCompile(`^\* ESEARCH \(TAG "[^"]*"\)`).ReplaceAllString(l, `* ESEARCH (TAG "T")`))
		}
	}
	if len(out) != 1 {
		t.Fatalf("%s: %q, want one SEARCH or ESEARCH line", line, out)
	}
	return out[0]
}

// SEARCH MODSEQ (RFC 7162 3.1.5) and the MODSEQ of what it found: "(MODSEQ
// n)" at the end of a non-empty SEARCH response, the highest of the
// messages found; in ESEARCH the MODSEQ result item (3.1.10), the highest
// of the messages found, or of the MIN/MAX messages when only they are
// returned. The ESEARCH part replays Dovecot imaptest's esearch-condstore
// script (flags changed on 1, 3, 2, 4 in that order).
func TestSearchModSeq(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for i := 1; i <= 4; i++ {
		ts.deliver("alice", "INBOX", simpleMessage(fmt.Sprint(i), "body"))
	}
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX (CONDSTORE)`)
	m := map[int]uint64{}
	for _, i := range []int{1, 3, 2, 4} {
		m[i] = storeModSeq(t, rc, fmt.Sprintf(`STORE %d +FLAGS (\Seen)`, i))
	}
	if !(m[1] < m[3] && m[3] < m[2] && m[2] < m[4]) {
		t.Fatalf("MODSEQs not in STORE order: %v", m)
	}
	for _, c := range []struct{ cmd, want string }{
		// imaptest esearch-condstore.
		{`SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\seen" all 1`, fmt.Sprintf(`* ESEARCH (TAG "T") MIN 1 MODSEQ %d`, m[1])},
		{`SEARCH RETURN (MAX) 1:3 MODSEQ "/flags/\\seen" all 1`, fmt.Sprintf(`* ESEARCH (TAG "T") MAX 3 MODSEQ %d`, m[3])},
		{`SEARCH RETURN () 1:3 MODSEQ "/flags/\\seen" all 1`, fmt.Sprintf(`* ESEARCH (TAG "T") ALL 1:3 MODSEQ %d`, m[2])},
		{`SEARCH RETURN (MIN MAX) 2:3 MODSEQ "/flags/\\seen" all 1`, fmt.Sprintf(`* ESEARCH (TAG "T") MIN 2 MAX 3 MODSEQ %d`, m[2])},
		{fmt.Sprintf(`SEARCH RETURN (ALL) 2:3 MODSEQ "/flags/\\seen" all %d`, m[3]), fmt.Sprintf(`* ESEARCH (TAG "T") ALL 2:3 MODSEQ %d`, m[2])},
		{fmt.Sprintf(`SEARCH RETURN (ALL) 2:3 MODSEQ "/flags/\\seen" all %d`, m[2]), fmt.Sprintf(`* ESEARCH (TAG "T") ALL 2 MODSEQ %d`, m[2])},
		{fmt.Sprintf(`SEARCH RETURN (ALL) 2:3 MODSEQ "/flags/\\seen" all %d`, m[4]), `* ESEARCH (TAG "T")`},
		// COUNT: the highest of all found; UID SEARCH alike.
		{fmt.Sprintf(`SEARCH RETURN (COUNT) MODSEQ %d`, m[3]), fmt.Sprintf(`* ESEARCH (TAG "T") COUNT 3 MODSEQ %d`, m[4])},
		{fmt.Sprintf(`UID SEARCH RETURN (ALL MIN) MODSEQ %d`, m[3]), fmt.Sprintf(`* ESEARCH (TAG "T") UID ALL 2:4 MIN 2 MODSEQ %d`, m[4])},
		// RFC 7162 3.1.5: the SEARCH response ends with (MODSEQ n), the
		// highest MODSEQ of the messages it names, also under NOT.
		{fmt.Sprintf(`SEARCH MODSEQ "/flags/\\draft" all %d`, m[3]), fmt.Sprintf(`* SEARCH 2 3 4 (MODSEQ %d)`, m[4])},
		{`SEARCH MODSEQ 0`, fmt.Sprintf(`* SEARCH 1 2 3 4 (MODSEQ %d)`, m[4])},
		{fmt.Sprintf(`SEARCH NOT MODSEQ %d`, m[3]), fmt.Sprintf(`* SEARCH 1 (MODSEQ %d)`, m[1])},
		{fmt.Sprintf(`SEARCH OR MODSEQ %d 1`, m[4]), fmt.Sprintf(`* SEARCH 1 4 (MODSEQ %d)`, m[4])},
		{fmt.Sprintf(`SEARCH MODSEQ %d MODSEQ %d`, m[1], m[2]), fmt.Sprintf(`* SEARCH 2 4 (MODSEQ %d)`, m[4])},
		{fmt.Sprintf(`SEARCH MODSEQ %d SEEN`, m[4]), fmt.Sprintf(`* SEARCH 4 (MODSEQ %d)`, m[4])},
		{fmt.Sprintf(`UID SEARCH MODSEQ %d`, m[2]), fmt.Sprintf(`* SEARCH 2 4 (MODSEQ %d)`, m[4])},
		{fmt.Sprintf(`SEARCH MODSEQ %d`, m[4]+1), `* SEARCH`},
		{`SEARCH MODSEQ "/flags/$Junk" priv 1 UNSEEN`, `* SEARCH`},
		// Without a MODSEQ key, no MODSEQ.
		{`SEARCH SEEN`, `* SEARCH 1 2 3 4`},
		{`SEARCH RETURN (MIN) SEEN`, `* ESEARCH (TAG "T") MIN 1`},
	} {
		if got := searchLine(t, rc, c.cmd); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.cmd, got, c.want)
		}
	}
	for _, bad := range []string{
		`SEARCH MODSEQ`, `SEARCH MODSEQ x`, `SEARCH MODSEQ -1`, `SEARCH MODSEQ "/flags/\\seen" 5`,
		`SEARCH MODSEQ "/flags/\\seen" every 5`, `SEARCH MODSEQ "/annotation/x" all 5`, `SEARCH MODSEQ "/flags/" all 5`,
		`SEARCH MODSEQ "/flags/\\seen all 5`, `SEARCH NOT MODSEQ`, `SEARCH MODSEQ 99999999999999999999999`,
	} {
		rejects(t, rc, bad)
	}

	// go-imap's client: SEARCH and ESEARCH results carry the MODSEQ.
	c := ts.client("alice")
	c.selectBox("INBOX")
	data, err := c.Search(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: m[2]}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if nums := data.AllSeqNums(); len(nums) != 2 || nums[0] != 2 || nums[1] != 4 || data.ModSeq != m[4] {
		t.Fatalf("client SEARCH MODSEQ: %v, MODSEQ %d", nums, data.ModSeq)
	}
	data, err = c.UIDSearch(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 1, MetadataName: `/flags/\Seen`, MetadataType: imap.SearchCriteriaMetadataAll}},
		&imap.SearchOptions{ReturnMax: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.Max != 4 || data.ModSeq != m[4] {
		t.Fatalf("client UID SEARCH RETURN (MAX) MODSEQ: max %d, MODSEQ %d", data.Max, data.ModSeq)
	}
}

// SEARCH MODSEQ is a CONDSTORE-enabling command (RFC 7162 3.1): FETCH FLAGS
// carries MODSEQ afterwards; being the first, it reports HIGHESTMODSEQ.
func TestSearchModSeqEnables(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("one", "body"))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	mustNotContain(t, rc.ok(`SEARCH ALL`), "MODSEQ")
	mustNotContain(t, rc.ok(`FETCH 1 (FLAGS)`), "MODSEQ")
	got := rc.ok(`SEARCH MODSEQ 1`)
	mustContain(t, got, "* SEARCH 1 (MODSEQ ")
	mustContain(t, got, "* OK [HIGHESTMODSEQ ")
	mustContain(t, rc.ok(`FETCH 1 (FLAGS)`), "MODSEQ (")
}

// SEARCH MODSEQ is matched from the index, like flags: no message is read,
// and the limits hold for it as for the other keys (max_search_keys counts
// each MODSEQ key under NOT or OR; search_timeout stops it).
func TestSearchModSeqBounded(t *testing.T) {
	ts := newTestServer(t, func(o *imapsrv.Options) {
		o.Limits.MaxSearchKeys = 4
		o.Limits.SearchTimeout = 100 * time.Millisecond
	})
	costs := watchSearches(ts)
	ts.addUser("alice")
	const n = 200
	ts.deliverN("alice", "INBOX", n)
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX (CONDSTORE)`)
	// Several MODSEQ keys are one: the highest holds.
	one, five := searchLine(t, rc, `SEARCH MODSEQ 5`), searchLine(t, rc, `SEARCH MODSEQ 1 MODSEQ 2 MODSEQ 3 MODSEQ 4 MODSEQ 5`)
	if one != five || !strings.HasSuffix(one, ")") {
		t.Errorf("SEARCH MODSEQ 5: %q; with four lower MODSEQ keys: %q", one, five)
	}
	for range 2 {
		if c := <-costs; c.folds != 0 || c.messages != n {
			t.Errorf("SEARCH MODSEQ: %d messages, %d folds", c.messages, c.folds)
		}
	}
	status := rc.fail("NO [LIMIT]", `SEARCH NOT MODSEQ 1 OR MODSEQ 2 MODSEQ 3`) // 5 keys
	if !strings.Contains(status, "too many search keys: 5") {
		t.Errorf("status %q", status)
	}
	imapsrv.OnSearchMessage(ts.srv, func() { time.Sleep(5 * time.Millisecond) }) // 1 s in all
	status = rc.fail("NO [LIMIT]", `SEARCH MODSEQ 1`)
	if !strings.Contains(status, "SEARCH stopped after 100ms") {
		t.Errorf("status %q", status)
	}
	if c := <-costs; c.messages >= n {
		t.Errorf("looked at all %d messages", c.messages)
	}
	imapsrv.OnSearchMessage(ts.srv, nil)
	rc.alive()
}

// SMALLER next to a date key: go-imap's SearchCriteria.And cleared
// SMALLER when the other criteria had none, so SEARCH SMALLER n SINCE d
// matched every size.
func TestSearchSmallerWithDate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliver("alice", "INBOX", simpleMessage("short", "x"))
	ts.deliver("alice", "INBOX", simpleMessage("long", strings.Repeat("long body ", 500)))
	rc := ts.rawLogin("alice")
	rc.ok(`SELECT INBOX`)
	for _, cmd := range []string{`SEARCH SMALLER 1000 SINCE 1-Jan-2000`, `SEARCH SINCE 1-Jan-2000 SMALLER 1000`, `SEARCH SMALLER 1000`} {
		if got := searchLine(t, rc, cmd); got != "* SEARCH 1" {
			t.Errorf("%s: %q", cmd, got)
		}
	}
}

// FuzzSearchModSeq sends SEARCH with an arbitrary program (the MODSEQ key
// and its entry name are the new parse path) to a real server with
// CONDSTORE on: the answer is a tagged OK, NO or BAD, never NO
// [SERVERBUG]; a "(MODSEQ n)" it gives is one the mailbox has (at most its
// HIGHESTMODSEQ, above 0) and comes only with a MODSEQ key and a
// non-empty result; the connection answers NOOP afterwards.
func FuzzSearchModSeq(f *testing.F) {
	for _, seed := range []string{
		`MODSEQ 1`, `MODSEQ 0`, `MODSEQ "/flags/\\seen" all 3`, `MODSEQ "/flags/$Junk" priv 2`, `MODSEQ "/flags/x" shared 18446744073709551615`,
		`NOT MODSEQ 3`, `OR MODSEQ 4 SEEN`, `RETURN (MIN MAX) MODSEQ 2`, `RETURN (COUNT) 1:2 MODSEQ "/flags/\\draft" all 1`,
		`MODSEQ "/flags/\\seen all 5`, `MODSEQ "/flags/" all 5`, `MODSEQ "\\" all`, `MODSEQ 1 MODSEQ 2`, `(MODSEQ 2 UNSEEN)`,
	} {
		f.Add(seed)
	}
	ts := newTestServer(f)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 3)
	f.Fuzz(func(t *testing.T, program string) {
		if strings.ContainsAny(program, "\r\n{") || len(program) > 2000 {
			return // one line, no literal (the server would wait for its data)
		}
		per := *ts
		per.t = t
		rc := per.rawLogin("alice")
		defer rc.conn.Close()
		highest := codeNumber(t, rc.ok("SELECT INBOX (CONDSTORE)"), "HIGHESTMODSEQ")
		rc.write("F1 SEARCH " + program + "\r\n")
		deadline := time.Now().Add(10 * time.Second)
		var untagged []string
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: no tagged answer: %v", program, err)
			}
			st, tagged := strings.CutPrefix(l, "F1 ")
			if !tagged {
				untagged = append(untagged, l)
				continue
			}
			if !strings.HasPrefix(st, "OK") && !strings.HasPrefix(st, "NO") && !strings.HasPrefix(st, "BAD") || strings.Contains(st, "SERVERBUG") {
				t.Fatalf("%q: answered %q", program, l)
			}
			break
		}
		hasKey := strings.Contains(strings.ToUpper(program), "MODSEQ")
		for _, l := range untagged {
			i := strings.Index(l, "MODSEQ")
			if i < 0 || !strings.HasPrefix(l, "* SEARCH") && !strings.HasPrefix(l, "* ESEARCH") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.Fields(l[i:])[1], "()"), 10, 64)
			if !hasKey || err != nil || n == 0 || n > uint64(highest) {
				t.Fatalf("%q: %q (HIGHESTMODSEQ %d)", program, l, highest)
			}
		}
		rc.write("F2 NOOP\r\n")
		for {
			l, err := rc.tryReadLine(time.Until(deadline))
			if err != nil {
				t.Fatalf("%q: connection gone after it: %v", program, err)
			}
			if strings.HasPrefix(l, "F2 ") {
				if !strings.HasPrefix(l, "F2 OK") {
					t.Fatalf("%q: NOOP after it: %q", program, l)
				}
				return
			}
		}
	})
}
