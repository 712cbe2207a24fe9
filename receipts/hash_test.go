package receipts

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestCommitmentVectors pins both versions of the commitment to values
// computed independently (Python's hashlib, as docs/verify.md shows):
// SHA-256(len(L) ‖ L ‖ M) and SHA-256(len(L) ‖ L ‖ len(r) ‖ r ‖ M).
func TestCommitmentVectors(t *testing.T) {
	label := "cm-" + strings.Repeat("a", 26)
	m := []byte("Subject: verdict\r\n\r\nguilty\r\n")
	var salt Salt
	for i := range salt {
		salt[i] = byte(i)
	}
	const (
		unsalted = "sha256:7069f79bfcc0db09c236f7158be57c6c050d398c12827d2c1b07d00ed6d9efba"
		salted   = "sha256:815095c09d327bab3c6ea4a1c8eab3ae4d9d017d9cf4cd656dbc320bebb91690"
	)
	if got := FormatHash(ItemHash(label, m)); got != unsalted {
		t.Errorf("H(L,M) = %s, want %s", got, unsalted)
	}
	if got := FormatHash(SaltedItemHash(label, salt, m)); got != salted {
		t.Errorf("H(L,r,M) = %s, want %s", got, salted)
	}
	for _, c := range []struct {
		version int
		salt    *Salt
		want    string
	}{
		{CommitmentUnsalted, nil, unsalted},
		{CommitmentSalted, &salt, salted},
	} {
		got, err := CommitmentReader(c.version, label, c.salt, bytes.NewReader(m))
		if err != nil || FormatHash(got) != c.want {
			t.Errorf("CommitmentReader(%d) = %s, %v; want %s", c.version, FormatHash(got), err, c.want)
		}
	}
	if _, err := CommitmentReader(CommitmentSalted, label, nil, bytes.NewReader(m)); err == nil {
		t.Error("a salted commitment computed without its salt")
	}
	if _, err := CommitmentReader(CommitmentUnsalted, label, &salt, bytes.NewReader(m)); err == nil {
		t.Error("an unsalted commitment computed with a salt")
	}
	if _, err := CommitmentReader(3, label, &salt, bytes.NewReader(m)); err == nil {
		t.Error("an unknown commitment version computed")
	}
}

func TestSaltSpelling(t *testing.T) {
	s, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewSalt()
	if err != nil || again == s {
		t.Fatalf("two salts drawn alike: %v", err)
	}
	if p, err := ParseSalt(s.String()); err != nil || p != s {
		t.Fatalf("ParseSalt(%s) = %s, %v", s, p, err)
	}
	for _, bad := range []string{"", s.String()[2:], strings.ToUpper(s.String()), s.String() + "00", "zz" + s.String()[2:]} {
		if _, err := ParseSalt(bad); err == nil {
			t.Errorf("ParseSalt(%q) accepted", bad)
		}
	}
}

func TestCheckSignedAt(t *testing.T) {
	posted := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	deadline := posted.Add(72 * time.Hour)
	received := posted.Add(time.Hour)
	tol := CODClockTolerance
	for _, c := range []struct {
		name     string
		signedAt time.Time
		deadline time.Time
		ok       bool
	}{
		{"between posting and receipt", posted.Add(30 * time.Minute), deadline, true},
		{"clock a little behind", posted.Add(-tol), deadline, true},
		{"long before posting", posted.Add(-48 * time.Hour), deadline, false},
		{"just before the tolerance", posted.Add(-tol - time.Second), deadline, false},
		{"clock a little ahead", received.Add(tol), deadline, true},
		{"after receipt", received.Add(tol + time.Second), deadline, false},
		{"after the deadline", deadline.Add(tol + time.Second), deadline, false},
		{"no deadline", received, time.Time{}, true},
	} {
		rcv := received
		if c.name == "after the deadline" {
			rcv = time.Time{}
		}
		err := CheckSignedAt(c.signedAt, posted, c.deadline, rcv)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
