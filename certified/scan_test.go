package certified

import (
	"bufio"
	"bytes"
	"errors"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// requestCase is one header block and what FindRequest must make of it.
type requestCase struct {
	name  string
	raw   string
	value string // found, with this value
	err   string // refused, the error containing this
	// neither: no request
}

const req = "Certified-Delivery: deadline=72h"

// requestCases are the variants of issue 11 and their relatives. The
// fuzz corpus (testdata/fuzz/FuzzFindRequest) holds each of them, the
// LMTP test in cmd/certmail sends each to the real server, and
// TestFindRequestAgainstPython runs Python's email package on each.
var requestCases = []requestCase{
	{name: "plain", raw: "From: a@example.net\r\n" + req + "\r\nSubject: x\r\n\r\nbody\r\n", value: "deadline=72h"},
	{name: "LF only", raw: "From: a@example.net\n" + req + "\nSubject: x\n\nbody\n", value: "deadline=72h"},
	{name: "lower case", raw: "certified-delivery: deadline=72h\r\n\r\nbody\r\n", value: "deadline=72h"},
	{name: "upper case", raw: "CERTIFIED-DELIVERY: deadline=72h\r\n\r\nbody\r\n", value: "deadline=72h"},
	{name: "mixed case", raw: "Subject: x\r\ncErTiFiEd-dElIvErY: deadline=72h\r\n\r\nbody\r\n", value: "deadline=72h"},
	{name: "no space after colon", raw: "Certified-Delivery:deadline=72h\r\n\r\nb\r\n", value: "deadline=72h"},
	{name: "folded value", raw: "Certified-Delivery: deadline=72h;\r\n reveal=none\r\n\r\nb\r\n", value: "deadline=72h; reveal=none"},
	{name: "header only, no blank line", raw: req, value: "deadline=72h"},
	{name: "CRLF block ended by LF CRLF", raw: "Subject: x\r\n" + req + "\n\r\nb\r\n", value: "deadline=72h"},

	{name: "later line without colon", raw: "From: a@example.net\r\n" + req + "\r\nthis line has no colon\r\nSubject: x\r\n\r\nbody\r\n", err: "no colon"},
	{name: "earlier line without colon", raw: "From: a@example.net\r\nthis line has no colon\r\n" + req + "\r\n\r\nbody\r\n", err: "no colon"},
	{name: "space before colon", raw: "From: a@example.net\r\nCertified-Delivery : deadline=72h\r\n\r\nbody\r\n", err: "whitespace between the field name"},
	{name: "tab before colon", raw: "Certified-Delivery\t: deadline=72h\r\n\r\nbody\r\n", err: "whitespace between the field name"},
	{name: "name folded", raw: "Subject: x\r\nCertified-\r\n Delivery: deadline=72h\r\n\r\nbody\r\n", err: "no colon"},
	{name: "colon folded", raw: "Subject: x\r\nCertified-Delivery\r\n : deadline=72h\r\n\r\nbody\r\n", err: "no colon"},
	{name: "continuation line", raw: "Subject: hello\r\n " + req + "\r\n\r\nbody\r\n", err: "looks like a Certified-Delivery field"},
	{name: "first line indented", raw: " " + req + "\r\nSubject: x\r\n\r\nbody\r\n", err: "first line begins with whitespace"},
	{name: "bare CR before", raw: "Subject: x\r" + req + "\r\n\r\nbody\r\n", err: "bare CR"},
	{name: "bare CR line ends", raw: "Subject: x\r" + req + "\r\rbody\r", err: "bare CR"},
	{name: "CR CR ends the block for some", raw: "Subject: x\r\n" + req + "\r\r\nX: y\r\n\r\nbody\r\n", err: "bare CR"},
	{name: "after a NUL", raw: "Subject: x\x00" + req + "\r\n\r\nbody\r\n", err: "NUL"},
	{name: "NUL in the name", raw: "Certified\x00-Delivery: deadline=72h\r\n\r\nbody\r\n", err: "NUL"},
	{name: "NUL elsewhere", raw: "X-A: a\x00b\r\n" + req + "\r\n\r\nbody\r\n", err: "NUL"},
	{name: "NBSP before colon", raw: "Certified-Delivery\xc2\xa0: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "8-bit hyphen", raw: "Certified\xe2\x80\x91Delivery: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "dotted capital I", raw: "CERT\u0130FIED-DELIVERY: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "dotless i", raw: "Cert\u0131fied-Delivery: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "fi ligature", raw: "Certi\ufb01ed-Delivery: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "byte order mark", raw: "\ufeffCertified-Delivery: deadline=72h\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "underscore", raw: "Certified_Delivery: deadline=72h\r\n\r\nbody\r\n", err: "looks like a Certified-Delivery field"},
	{name: "duplicate", raw: req + "\r\n" + req + "\r\n\r\nbody\r\n", err: "given twice"},
	{name: "duplicate in another case", raw: req + "\r\nSubject: x\r\ncertified-delivery: deadline=1h\r\n\r\nbody\r\n", err: "given twice"},
	{name: "over-long line", raw: "X-Pad: " + strings.Repeat("a", 1000) + req + "\r\n\r\nbody\r\n", err: "looks like a Certified-Delivery field"},
	{name: "mbox From_ line", raw: "From a@example.net Sat Dec  5 10:00:00 2026\r\n" + req + "\r\n\r\nbody\r\n", err: "no field name may hold"},
	{name: "blank line first", raw: "\r\n" + req + "\r\nSubject: x\r\n\r\nbody\r\n", err: "after the end of the header block"},
	{name: "whitespace-only line", raw: "Subject: x\r\n \r\n" + req + "\r\n\r\nbody\r\n", err: "only whitespace"},
	{name: "CRLF block ended by LF LF", raw: "Subject: x\r\n\n" + req + "\r\n\r\nbody\r\n", err: "after the end of the header block"},
	{name: "empty field name", raw: ": x\r\n" + req + "\r\n\r\nbody\r\n", err: "without a name"},
	{name: "bad value", raw: "Certified-Delivery: deadline=soon\r\n\r\nbody\r\n", value: "deadline=soon"},

	{name: "no header", raw: "Subject: x\r\n\r\nbody\r\n"},
	{name: "empty", raw: ""},
	{name: "in the body", raw: "Subject: x\r\n\r\n" + req + "\r\n"},
	{name: "in the body, LF", raw: "Subject: x\n\n" + req + "\n"},
	{name: "encoded word as name", raw: "=?utf-8?q?Certified-Delivery?=: deadline=72h\r\n\r\nbody\r\n"},
	{name: "another field", raw: "X-Certified-Delivery: deadline=72h\r\nCertified-Delivery-Note: x\r\n\r\nbody\r\n"},
	{name: "in a subject", raw: "Subject: about " + req + "\r\n\r\nbody\r\n"},
	{name: "broken header without a request", raw: "Subject: x\r\nno colon here\r\n\r\nbody\r\n"},
}

func TestFindRequest(t *testing.T) {
	for _, c := range requestCases {
		v, found, err := FindRequest([]byte(c.raw))
		switch {
		case c.err != "":
			if err == nil || !errors.Is(err, ErrUnclearRequest) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: FindRequest = %q, %v, %v; want an error containing %q", c.name, v, found, err, c.err)
			}
		case c.value != "":
			if err != nil || !found || v != c.value {
				t.Errorf("%s: FindRequest = %q, %v, %v; want %q", c.name, v, found, err, c.value)
			}
		default:
			if err != nil || found {
				t.Errorf("%s: FindRequest = %q, %v, %v; want no request", c.name, v, found, err)
			}
		}
	}
}

// The readers below are models of how mail programs find header fields,
// each from its source: what the user of each would see. If any of them
// shows a Certified-Delivery field, FindRequest must find the request or
// refuse the message.

// goNetMail: Go's net/mail (what certmail used before).
func goNetMail(raw []byte) bool {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	return err == nil && len(msg.Header["Certified-Delivery"]) > 0
}

// goMessage: emersion/go-message, the real library; it trims whitespace
// before the colon and returns the fields read before an error, which
// its users (aerc, for one) show.
func goMessage(raw []byte) bool {
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	return h.Has("Certified-Delivery")
}

// python models Python's email.feedparser (compat32 and default
// policies): lines split at CRLF, CR or LF; the block ends at an empty
// line or at the first line that does not match
// ^(From |[\041-\071\073-\176]*:|[\t ]); a leading "From " line is the
// envelope; names compare lower-cased.
func python(raw []byte) bool {
	for i, l := range splitKeep(raw) {
		if len(l) == 0 {
			return false
		}
		switch {
		case bytes.HasPrefix(l, []byte("From ")):
			if i > 0 {
				continue // MisplacedEnvelopeHeaderDefect
			}
			continue
		case isWSP(l[0]):
			continue
		}
		name, _, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return false
		}
		for _, c := range name {
			if c < 0x21 || c > 0x7e {
				return false
			}
		}
		if strings.EqualFold(string(name), "certified-delivery") {
			return true
		}
	}
	return false
}

// thunderbird models mailnews' MimeHeaders_build_heads_list and
// MimeHeaders_get: lines split at CR, LF or CRLF, the block ends at an
// empty line, a field runs to the next line not starting with whitespace,
// a field without a colon is skipped, whitespace before the colon is
// dropped, names compare without regard to ASCII case.
func thunderbird(raw []byte) bool {
	for _, f := range unfoldedFields(raw, false) {
		name, _, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			continue
		}
		if strings.EqualFold(string(bytes.Trim(name, " \t\r\n")), "certified-delivery") {
			return true
		}
	}
	return false
}

// naiveUnfold models a reader that unfolds by deleting CRLF and the
// indentation after it (RFC 5322 §2.2.3 read loosely) and trims the name.
func naiveUnfold(raw []byte) bool {
	for _, f := range unfoldedFields(raw, true) {
		name, _, ok := bytes.Cut(f, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "certified-delivery") {
			return true
		}
	}
	return false
}

// mutt models mutt_rfc822_read_header: LF lines, CR stripped; the block
// ends at an empty line or a line whose first ':', ' ' or '\t' is not a
// colon, except ">From " and "From " lines, which are skipped.
func mutt(raw []byte) bool {
	for _, l := range bytes.Split(raw, []byte("\n")) {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			return false
		}
		if isWSP(l[0]) {
			continue
		}
		i := bytes.IndexAny(l, ": \t")
		if i < 0 || l[i] != ':' {
			if bytes.HasPrefix(l, []byte(">From ")) || bytes.HasPrefix(l, []byte("From ")) {
				continue
			}
			return false
		}
		// C string functions stop at NUL.
		name := l[:i]
		if j := bytes.IndexByte(name, 0); j >= 0 {
			name = name[:j]
		}
		if strings.EqualFold(string(name), "certified-delivery") {
			return true
		}
	}
	return false
}

// splitKeep splits at CRLF, CR or LF, keeping empty lines; it stops at
// the first empty line.
func splitKeep(raw []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\r' && raw[i] != '\n' {
			continue
		}
		out = append(out, raw[start:i])
		if raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
			i++
		}
		start = i + 1
	}
	if start < len(raw) {
		out = append(out, raw[start:])
	}
	return out
}

// unfoldedFields joins each field with its continuation lines, up to the
// first empty line; join drops the indentation too.
func unfoldedFields(raw []byte, dropIndent bool) [][]byte {
	var out [][]byte
	for _, l := range splitKeep(raw) {
		if len(l) == 0 {
			break
		}
		if isWSP(l[0]) && len(out) > 0 {
			if dropIndent {
				l = bytes.TrimLeft(l, " \t")
			}
			out[len(out)-1] = append(out[len(out)-1], l...)
			continue
		}
		out = append(out, append([]byte(nil), bytes.TrimLeft(l, " \t")...))
	}
	return out
}

// unicodeCase models a reader that compares names after a Unicode
// ToLower or ToUpper of the whole name (Go's strings, or JavaScript's
// toUpperCase, which also expands ligatures).
func unicodeCase(raw []byte) bool {
	lig := strings.NewReplacer("ﬀ", "FF", "ﬁ", "FI", "ﬂ", "FL", "ﬃ", "FFI", "ﬄ", "FFL", "ﬅ", "ST", "ﬆ", "ST")
	for _, f := range unfoldedFields(raw, false) {
		name, _, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			continue
		}
		n := strings.TrimSpace(string(name))
		if strings.ToLower(n) == "certified-delivery" || lig.Replace(strings.ToUpper(n)) == "CERTIFIED-DELIVERY" {
			return true
		}
	}
	return false
}

var readers = []struct {
	name string
	show func([]byte) bool
}{
	{"net/mail", goNetMail}, {"go-message", goMessage}, {"python", python},
	{"thunderbird", thunderbird}, {"naive unfold", naiveUnfold}, {"mutt", mutt},
	{"unicode case", unicodeCase},
}

func TestFindRequestReaders(t *testing.T) {
	for _, c := range requestCases {
		checkAgainstReaders(t, []byte(c.raw))
	}
}

func checkAgainstReaders(t *testing.T, raw []byte) {
	t.Helper()
	v, found, err := FindRequest(raw)
	if err != nil && !errors.Is(err, ErrUnclearRequest) {
		t.Fatalf("%q: error does not wrap ErrUnclearRequest: %v", raw, err)
	}
	if found {
		if err != nil {
			t.Fatalf("%q: found and refused", raw)
		}
		msg, perr := mail.ReadMessage(bytes.NewReader(raw))
		if perr != nil || msg.Header.Get("Certified-Delivery") != v {
			t.Fatalf("%q: found %q, but net/mail reads %v", raw, v, perr)
		}
	}
	if !found && err == nil {
		for _, r := range readers {
			if r.show(raw) {
				t.Fatalf("%q: %s shows a Certified-Delivery field, but FindRequest found no request", raw, r.name)
			}
		}
	}
	if !bytes.Contains(squeeze(raw), []byte(squeezedName)) && (found || err != nil) {
		t.Fatalf("%q: nothing like the field in it, yet FindRequest = %v, %v", raw, found, err)
	}
}

// FuzzFindRequest: no input that a mail reader would show with a
// Certified-Delivery field may pass as ordinary mail; a found request is
// the one Go's parser reads; nothing without the name is refused.
func FuzzFindRequest(f *testing.F) {
	// The seed corpus is testdata/fuzz/FuzzFindRequest (one file per
	// requestCase; TestFuzzCorpusCoversCases keeps them in step).
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstReaders(t, raw)
	})
}

// TestFuzzCorpusCoversCases: every requestCase is in the seed corpus.
func TestFuzzCorpusCoversCases(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzFindRequest")
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		have[string(b)] = true
	}
	for _, c := range requestCases {
		if !have[corpusFile(c.raw)] {
			t.Errorf("case %q is not in %s (write it there: %s)", c.name, dir, corpusName(c.name))
		}
	}
}

func corpusFile(raw string) string {
	return "go test fuzz v1\n[]byte(" + strconv.Quote(raw) + ")\n"
}

func corpusName(name string) string {
	return strings.NewReplacer(" ", "-", ",", "", "'", "").Replace(name)
}

// variants combines what comes before the field, the field's spelling,
// line ends and what ends the block: the requestCases and a few hundred
// more for the reader models and Python.
func variants() [][]byte {
	var out [][]byte
	for _, c := range requestCases {
		out = append(out, []byte(c.raw))
	}
	prefixes := []string{"", "From: a@example.net{E}", "no colon here{E}", " indented{E}", "From a@example.net Sat Dec  5 10:00:00 2026{E}",
		"{E}", "X-A: a\rY: b{E}", "X-A: a\x00{E}", "X-A: a{E} {E}", "Subject: s{E}\t"}
	fields := []string{"Certified-Delivery: deadline=72h", "certified-delivery :deadline=72h", "Certified-Delivery\t:deadline=72h",
		"Certified-{E} Delivery: deadline=72h", "Certified-Delivery{E} : deadline=72h", "CERTIFIED-DELIVERY:deadline=72h",
		"Certified-Delivery:{E} deadline=72h", "Certified_Delivery: deadline=72h", "X-Certified-Delivery: deadline=72h"}
	suffixes := []string{"{E}{E}body{E}", "{E}Subject: x{E}{E}body", "", "{E}no colon{E}Subject: x{E}{E}b", "{E}" + "Certified-Delivery: deadline=1h{E}{E}"}
	for _, e := range []string{"\r\n", "\n", "\r"} {
		for _, p := range prefixes {
			for _, f := range fields {
				for _, s := range suffixes {
					out = append(out, []byte(strings.ReplaceAll(p+f+s, "{E}", e)))
				}
			}
		}
	}
	return out
}

func TestFindRequestVariants(t *testing.T) {
	for _, raw := range variants() {
		checkAgainstReaders(t, raw)
	}
}

// pythonShows is Python's email package itself (Debian's python3, the
// parser of many mail tools and of Mailman): for each message, whether
// it shows a Certified-Delivery field under the compat32 and the default
// policies.
const pythonShows = `
import email, email.policy, sys
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    shown = False
    for pol in (email.policy.compat32, email.policy.default):
        try:
            m = email.message_from_bytes(raw, policy=pol)
            shown = shown or m.get("Certified-Delivery") is not None
        except Exception:
            pass
    print("1" if shown else "0")
`

// TestFindRequestAgainstPython: whatever Python's email package shows with
// a Certified-Delivery field, FindRequest finds or refuses.
func TestFindRequestAgainstPython(t *testing.T) {
	const py = "/usr/bin/python3" // Debian's, which make test-deps installs
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("%s is not installed (make test-deps, or apt-get install python3): %v", py, err)
	}
	dir := t.TempDir()
	vs := variants()
	args := []string{"-c", pythonShows}
	for i, raw := range vs {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(vs) {
		t.Fatalf("python3 answered %d lines for %d messages", len(lines), len(vs))
	}
	shown := 0
	for i, raw := range vs {
		if lines[i] != "1" {
			continue
		}
		shown++
		if _, found, err := FindRequest(raw); !found && err == nil {
			t.Errorf("%q: Python shows a Certified-Delivery field, FindRequest found no request", raw)
		}
	}
	if shown < len(vs)/4 {
		t.Fatalf("Python showed the field in only %d of %d messages: is the test still testing?", shown, len(vs))
	}
}

// BenchmarkFindRequest: the scan runs for every delivered message (once
// outside the store's lock, once inside): a certified message with a
// typical header and a 1 MB body, and an ordinary one.
func BenchmarkFindRequest(b *testing.B) {
	hdr := "Received: from mx.example.net by mail.example.org; Sat, 5 Dec 2026 10:00:00 +0000\r\n" +
		"From: Court Clerk <clerk@court.example>\r\nTo: alice@example.org\r\nSubject: Summons\r\n" +
		"Message-ID: <summons@court.example>\r\nDate: Sat, 5 Dec 2026 10:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
	body := "\r\n" + strings.Repeat("a line of the body, as long as most lines are\r\n", 1<<20/48)
	for _, c := range []struct{ name, raw string }{
		{"certified", hdr + req + "\r\n" + body},
		{"ordinary", hdr + body},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw := []byte(c.raw)
			for b.Loop() {
				FindRequest(raw)
			}
		})
	}
}
