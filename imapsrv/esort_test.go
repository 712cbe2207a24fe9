package imapsrv_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestESort: SORT RETURN (RFC 5267 section 3): ESEARCH answers with the
// command's tag, MIN and MAX the first and last in sort order, ALL in sort
// order (ranges only where numbers ascend by one), COUNT; RETURN () is
// ALL; SAVE keeps the matches as $ (RFC 5182) and answers nothing more.
func TestESort(t *testing.T) {
	_, rc := sortFixture(t)
	tagRE := regexp.MustCompile(`^\* ESEARCH \(TAG "[^"]+"\)`)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", " MIN 4 MAX 3 COUNT 4"},
		{"SORT RETURN (ALL) (SUBJECT) UTF-8 ALL", " ALL 2,1,3:4"},
		{"SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL", " ALL 3,1:2,4"},
		{"UID SORT RETURN () (SUBJECT) UTF-8 ALL", " UID ALL 2,1,3:4"},
		{"SORT RETURN (COUNT MIN MAX ALL) (SUBJECT) UTF-8 SUBJECT nothing-like-it", " COUNT 0"},
	} {
		line := sortLine(t, rc, tc.cmd, "* ESEARCH")
		if !tagRE.MatchString(line) {
			t.Errorf("%s: %q lacks the tag", tc.cmd, line)
		}
		if got := tagRE.ReplaceAllString(line, ""); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if u := rc.ok("SORT RETURN (SAVE) (SUBJECT) UTF-8 OR FROM lena FROM adam"); len(grep(u, "ESEARCH"))+len(grep(u, "SORT")) != 0 {
		t.Errorf("RETURN (SAVE) alone answered %q", u)
	}
	fetched := strings.Join(rc.ok("FETCH $ (UID)"), "\n")
	if !strings.Contains(fetched, "* 2 FETCH") || !strings.Contains(fetched, "* 4 FETCH") || strings.Contains(fetched, "* 1 FETCH") {
		t.Errorf("FETCH $ after SORT RETURN (SAVE): %q", fetched)
	}
	for _, bad := range []string{"SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL", "SORT FOO (SUBJECT) UTF-8 ALL", "SORT RETURN (SUBJECT) UTF-8 ALL"} {
		rejects(t, rc, bad)
	}
}
