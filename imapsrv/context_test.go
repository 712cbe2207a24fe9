package imapsrv_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tagged sends line under tag and returns the untagged responses and the
// status.
func (rc *rawClient) tagged(tag, line string) ([]string, string) {
	rc.t.Helper()
	rc.write(tag + " " + line + "\r\n")
	return rc.readUntilTagged(tag)
}

// TestContextSearchUpdate: SEARCH RETURN (UPDATE) (RFC 5267 section 4.3)
// in message sequence numbers: ADDTO and REMOVEFROM at position 0 as the
// session's own STORE, another session's STORE, a delivery and an
// EXPUNGE change the result; the REMOVEFROM of an expunged message comes
// just before its EXPUNGE, with the number the EXPUNGE gives; the ADDTO of
// a new message after its EXISTS; updates during IDLE; tag reuse is BAD;
// CANCELUPDATE ends the updates, and so does closing the mailbox.
func TestContextSearchUpdate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 5)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")

	u, st := rc.tagged("S1", "SEARCH RETURN (UPDATE) SEEN")
	if !strings.HasPrefix(st, "OK") || !slices.Equal(u, []string{`* ESEARCH (TAG "S1")`}) {
		t.Fatalf("SEARCH RETURN (UPDATE): %q %q", u, st)
	}
	// The session's own STORE: one ADDTO for all three, in mailbox order.
	mustContain(t, rc.ok("STORE 1,2,4 +FLAGS (\\Seen)"), `* ESEARCH (TAG "S1") ADDTO (0 1:2,4)`)
	// Another session's STORE, seen at the next NOOP.
	other.ok("STORE 2 -FLAGS (\\Seen)")
	mustContain(t, rc.ok("NOOP"), `* ESEARCH (TAG "S1") REMOVEFROM (0 2)`)
	// An expunge: REMOVEFROM names message 4 as the client numbers it just
	// before its EXPUNGE (3 and 4 go; 4 is 3 once 3 has gone).
	other.ok("STORE 3:4 +FLAGS (\\Deleted)")
	other.ok("EXPUNGE")
	u = rc.ok("NOOP")
	i := slices.Index(u, `* ESEARCH (TAG "S1") REMOVEFROM (0 3)`)
	if i < 0 || i+1 >= len(u) || u[i+1] != "* 3 EXPUNGE" || len(grep(u, "EXPUNGE")) != 2 {
		t.Fatalf("expunge of a message in the result: %q", u)
	}
	// A delivery: ADDTO after the EXISTS that numbers it.
	ts.deliver("alice", "INBOX", simpleMessage("seen on arrival", "x"), `\Seen`)
	u = rc.ok("NOOP")
	ex, add := slices.Index(u, "* 4 EXISTS"), slices.Index(u, `* ESEARCH (TAG "S1") ADDTO (0 4)`)
	if ex < 0 || add < ex {
		t.Fatalf("delivery: %q", u)
	}
	// During IDLE.
	rc.write("I1 IDLE\r\n")
	if l := rc.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	other.ok("STORE 3 +FLAGS (\\Seen)")
	var idle []string
	for !slices.Contains(idle, `* ESEARCH (TAG "S1") ADDTO (0 3)`) {
		l, err := rc.tryReadLine(5 * time.Second)
		if err != nil {
			t.Fatalf("IDLE: no ADDTO after %q: %v", idle, err)
		}
		idle = append(idle, l)
	}
	rc.write("DONE\r\n")
	if _, st := rc.readUntilTagged("I1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE: %q", st)
	}

	// A tag that already names a context cannot start another (RFC 5267
	// section 4.3); without UPDATE it can.
	if _, st := rc.tagged("S1", "UID SEARCH RETURN (UPDATE) ALL"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("tag reuse: %q, want BAD", st)
	}
	if _, st := rc.tagged("S1", "SEARCH RETURN (COUNT) ALL"); !strings.HasPrefix(st, "OK") {
		t.Errorf("tag reuse without UPDATE: %q", st)
	}
	rejects(t, rc, `CANCELUPDATE "nope"`)
	rejects(t, rc, `CANCELUPDATE`)
	rc.ok(`CANCELUPDATE "S1"`)
	mustNotContain(t, rc.ok("STORE 1:* +FLAGS (\\Seen)"), "ESEARCH")
	rc.ok("STORE 1:* -FLAGS (\\Seen)")

	// Updates end with the selection.
	rc.tagged("S2", "SEARCH RETURN (UPDATE) SEEN")
	rc.ok("UNSELECT")
	rc.ok("SELECT INBOX")
	mustNotContain(t, rc.ok("STORE 1 +FLAGS (\\Seen)"), "ESEARCH")
	rc.fail("BAD", `CANCELUPDATE "S2"`)
}

// TestContextNoUpdate: past the session's limit of updating contexts the
// search still answers, and an untagged NO [NOUPDATE "tag"] says it will
// not be updated (RFC 5267 section 4.3.1).
func TestContextNoUpdate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 2)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	for i := 1; ; i++ {
		tag := fmt.Sprintf("U%d", i)
		u, st := rc.tagged(tag, "SEARCH RETURN (UPDATE COUNT) ALL")
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("%s: %q", tag, st)
		}
		mustContain(t, u, "COUNT 2")
		if len(grep(u, "NOUPDATE")) > 0 {
			mustContain(t, u, `* NO [NOUPDATE "`+tag+`"]`)
			if i < 2 {
				t.Fatalf("NOUPDATE at the first context")
			}
			// The refused one gets no updates; the others do.
			u := rc.ok("STORE 1 +FLAGS (\\Seen)")
			mustNotContain(t, u, `(TAG "`+tag+`")`)
			return
		}
		if i > 100 {
			t.Fatal("no limit on updating contexts")
		}
	}
}

// TestContextQResyncVanished: in a session that enabled QRESYNC,
// expunges are VANISHED; a UID context's REMOVEFROM of each comes before
// it.
func TestContextQResyncVanished(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 4)
	rc := ts.rawLogin("alice")
	rc.ok("ENABLE QRESYNC")
	rc.ok("SELECT INBOX")
	rc.tagged("V1", "UID SEARCH RETURN (UPDATE) 2:4")
	rc.tagged("V2", "SEARCH RETURN (UPDATE) 2:4")
	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")
	other.ok("STORE 2:3 +FLAGS (\\Deleted)")
	other.ok("EXPUNGE")
	u := rc.ok("NOOP")
	v := slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* VANISHED") })
	if v < 0 {
		t.Fatalf("no VANISHED: %q", u)
	}
	for _, want := range []string{`* ESEARCH (TAG "V1") UID REMOVEFROM (0 2)`, `* ESEARCH (TAG "V1") UID REMOVEFROM (0 3)`,
		`* ESEARCH (TAG "V2") REMOVEFROM (0 2)`, `* ESEARCH (TAG "V2") REMOVEFROM (0 3)`} {
		if i := slices.Index(u, want); i < 0 || i > v {
			t.Errorf("%q missing or after the VANISHED: %q", want, u)
		}
	}
}

var updateRE = regexp.MustCompile(`^\* ESEARCH \(TAG "([^"]+)"\)( UID)? (ADDTO|REMOVEFROM) \((.*)\)$`)

// sortedContext is a client's copy of a CONTEXT=SORT result, kept by
// applying ADDTO and REMOVEFROM as RFC 5267 sections 4.3.3 and 4.3.4 say.
type sortedContext struct {
	t    *testing.T
	tag  string
	list []uint32
}

// apply applies the updates for the context among lines, in order.
func (c *sortedContext) apply(lines []string) {
	c.t.Helper()
	for _, l := range lines {
		m := updateRE.FindStringSubmatch(l)
		if m == nil || m[1] != c.tag {
			continue
		}
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			pos, _ := strconv.Atoi(f[i])
			nums := expandOrdered(c.t, f[i+1])
			if pos == 0 {
				c.t.Fatalf("position 0 in a SORT context: %q", l)
			}
			if m[3] == "ADDTO" {
				if pos > len(c.list)+1 {
					c.t.Fatalf("ADDTO at %d past the end of %v: %q", pos, c.list, l)
				}
				c.list = slices.Insert(c.list, pos-1, nums...)
				continue
			}
			if pos-1+len(nums) > len(c.list) || !slices.Equal(c.list[pos-1:pos-1+len(nums)], nums) {
				c.t.Fatalf("REMOVEFROM %d %v does not match %v: %q", pos, nums, c.list, l)
			}
			c.list = slices.Delete(c.list, pos-1, pos-1+len(nums))
		}
	}
}

// expandOrdered expands a sequence-set in its order, each range ascending
// (RFC 5267 section 3.2).
func expandOrdered(t *testing.T, set string) []uint32 {
	t.Helper()
	var out []uint32
	for _, part := range strings.Split(set, ",") {
		a, b, isRange := strings.Cut(part, ":")
		x, err1 := strconv.ParseUint(a, 10, 32)
		y := x
		var err2 error
		if isRange {
			y, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil {
			t.Fatalf("bad set %q", set)
		}
		for n := min(x, y); n <= max(x, y); n++ {
			out = append(out, uint32(n))
		}
	}
	return out
}

// allOf returns the ALL of an ESEARCH answer among lines, in its order.
func allOf(t *testing.T, lines []string) []uint32 {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, "* ESEARCH") || updateRE.MatchString(l) {
			continue
		}
		_, set, ok := strings.Cut(l, " ALL ")
		if !ok {
			return nil
		}
		return expandOrdered(t, strings.Fields(set)[0])
	}
	t.Fatalf("no ESEARCH in %q", lines)
	return nil
}

// TestContextSortUpdate: SORT RETURN (UPDATE) (RFC 5267 section 4, CONTEXT=
// SORT): a client that applies every ADDTO and REMOVEFROM at the positions
// they give holds, after each change (deliveries sorting in between,
// flags taking messages out and in, expunges, from this session and
// another), exactly what a new SORT returns; two contexts at once, one
// with ties (same-second arrivals keep mailbox order under REVERSE).
func TestContextSortUpdate(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	for _, s := range []string{"d", "b", "f", "a", "c"} {
		ts.deliver("alice", "INBOX", simpleMessage(s, "body "+s))
	}
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")

	type tracked struct {
		ctx   *sortedContext
		fresh string
	}
	var all []tracked
	for i, q := range []struct{ update, fresh string }{
		{"UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 UNSEEN"},
		{"UID SORT RETURN (UPDATE ALL) (REVERSE ARRIVAL) UTF-8 UNDELETED", "UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 UNDELETED"},
	} {
		tag := fmt.Sprintf("C%d", i+1)
		u, st := rc.tagged(tag, q.update)
		if !strings.HasPrefix(st, "OK") {
			t.Fatalf("%s: %q", q.update, st)
		}
		all = append(all, tracked{&sortedContext{t: t, tag: tag, list: allOf(t, u)}, q.fresh})
	}
	check := func(step string, lines []string) {
		t.Helper()
		for _, tr := range all {
			tr.ctx.apply(lines)
		}
		for _, tr := range all {
			u := rc.ok(tr.fresh)
			for _, o := range all {
				o.ctx.apply(u)
			}
			if want := allOf(t, u); !slices.Equal(tr.ctx.list, want) {
				t.Fatalf("%s: context %s holds %v, a new SORT says %v", step, tr.ctx.tag, tr.ctx.list, want)
			}
		}
	}
	check("start", nil)
	ts.deliver("alice", "INBOX", simpleMessage("bb", "x"))
	ts.deliver("alice", "INBOX", simpleMessage("0", "x"))
	ts.deliver("alice", "INBOX", simpleMessage("e", "x"))
	check("deliveries", rc.ok("NOOP"))
	check("own STORE", rc.ok("STORE 2,4,7 +FLAGS (\\Seen)"))
	other.ok("STORE 1,2 -FLAGS (\\Seen)")
	other.ok("STORE 3,5 +FLAGS (\\Seen)")
	check("other STORE", rc.ok("NOOP"))
	other.ok("STORE 1,6,8 +FLAGS (\\Deleted)")
	check("deleted", rc.ok("NOOP"))
	other.ok("EXPUNGE")
	ts.deliver("alice", "INBOX", simpleMessage("aa", "x"))
	check("expunge and delivery", rc.ok("NOOP"))
	if len(all[0].ctx.list) == 0 || len(all[1].ctx.list) == 0 {
		t.Fatalf("empty results: %v %v", all[0].ctx.list, all[1].ctx.list)
	}
}

// TestContextRFC5267Examples replays the exchanges of RFC 5267 sections
// 4.2 to 4.4 (numbers are this mailbox's; the RFC's sort criteria without
// parentheses are its erratum, written here as the ABNF has them, and
// REVERSE SUBJECT stands for REVERSE DATE, which ties here).
func TestContextRFC5267Examples(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 6)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	caps := strings.Join(rc.ok("CAPABILITY"), " ")
	for _, c := range []string{"CONTEXT=SEARCH", "CONTEXT=SORT", "ESORT"} {
		if !strings.Contains(caps, " "+c) {
			t.Errorf("CAPABILITY lacks %s: %s", c, caps)
		}
	}
	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")

	// 4.2: the CONTEXT hint changes nothing of the answer.
	u, _ := rc.tagged("A01", "SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk")
	mustContain(t, u, `* ESEARCH (TAG "A01") COUNT 6`)

	// 4.3: UPDATE with COUNT; the count is not updated, the set is.
	u, _ = rc.tagged("B01", "UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk")
	mustContain(t, u, `* ESEARCH (TAG "B01") UID COUNT 0`)
	other.ok("STORE 2,3 +FLAGS (\\Deleted $Junk)")
	mustContain(t, rc.ok("NOOP"), `* ESEARCH (TAG "B01") UID ADDTO (0 2:3)`)
	// 4.3.4: the REMOVEFROM before the EXPUNGE.
	other.ok("UID EXPUNGE 2")
	u = rc.ok("NOOP")
	if i := slices.Index(u, `* ESEARCH (TAG "B01") UID REMOVEFROM (0 2)`); i < 0 || i+1 >= len(u) || u[i+1] != "* 2 EXPUNGE" {
		t.Errorf("4.3.4: %q", u)
	}
	// 4.3.5.
	rc.tagged("B04", `CANCELUPDATE "B01"`)
	other.ok("STORE 1 +FLAGS (\\Deleted $Junk)")
	mustNotContain(t, rc.ok("NOOP"), `"B01"`)

	// 4.4: PARTIAL past the results answers NIL, with the range asked.
	u, _ = rc.tagged("A04", "UID SEARCH RETURN (PARTIAL 24000:24500) UNDELETED UNKEYWORD $Junk")
	mustContain(t, u, `* ESEARCH (TAG "A04") UID PARTIAL (24000:24500 NIL)`)
	u, _ = rc.tagged("A02", "SEARCH RETURN (PARTIAL 2:3) UNDELETED UNKEYWORD $Junk")
	mustContain(t, u, `* ESEARCH (TAG "A02") PARTIAL (2:3 4:5)`)
	// 4.4 with UPDATE and a SORT: the window is of the sorted result, the
	// updates are of all of it.
	u, _ = rc.tagged("B02", "UID SORT RETURN (UPDATE PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 UNDELETED UNKEYWORD $Junk")
	mustContain(t, u, `* ESEARCH (TAG "B02") UID PARTIAL (1:2 6,5)`)
	other.ok("STORE 3 +FLAGS (\\Deleted)") // UID 4 leaves, at position 3 of 6,5,4
	mustContain(t, rc.ok("NOOP"), `* ESEARCH (TAG "B02") UID REMOVEFROM (3 4)`)
}

// TestContextSeqNumbersFixed: message numbers in a context's search
// program name the messages they named when it ran; an expunge that
// renumbers the mailbox does not move the context to other messages.
func TestContextSeqNumbersFixed(t *testing.T) {
	ts := newTestServer(t)
	ts.addUser("alice")
	ts.deliverN("alice", "INBOX", 4)
	rc := ts.rawLogin("alice")
	rc.ok("SELECT INBOX")
	rc.tagged("N1", "SEARCH RETURN (UPDATE) 3 SEEN")
	rc.tagged("N2", "SEARCH RETURN (UPDATE) NOT 1:2 SEEN")
	other := ts.rawLogin("alice")
	other.ok("SELECT INBOX")
	other.ok("UID STORE 1 +FLAGS (\\Deleted)")
	other.ok("EXPUNGE")
	rc.ok("NOOP")
	other.ok("UID STORE 4 +FLAGS (\\Seen)") // now message 3: not the context's 3
	u := rc.ok("NOOP")
	mustNotContain(t, u, `"N1"`)
	mustContain(t, u, `* ESEARCH (TAG "N2") ADDTO (0 3)`)
	other.ok("UID STORE 3 +FLAGS (\\Seen)") // the context's 3, now 2
	u = rc.ok("NOOP")
	mustContain(t, u, `* ESEARCH (TAG "N1") ADDTO (0 2)`)
	mustContain(t, u, `* ESEARCH (TAG "N2") ADDTO (0 2)`)
}
