package codclient

import (
	"strings"
	"testing"
	"time"

	"certmail/receipts"
)

// TestSignRefusesAfterTheDeadline: a COD signed past the item's deadline
// (beyond the clock tolerance) would be refused by the gateway, so the
// client does not make one; before it, or within the tolerance, it does.
func TestSignRefusesAfterTheDeadline(t *testing.T) {
	key, err := receipts.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	label, _ := receipts.NewLabel()
	deadline := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := Stub{Request: receipts.NewCODRequest("mail.example.org", label, [32]byte{1}, "alice", deadline)}
	for _, c := range []struct {
		now time.Time
		ok  bool
	}{
		{deadline.Add(-time.Hour), true},
		{deadline.Add(receipts.CODClockTolerance), true},
		{deadline.Add(receipts.CODClockTolerance + time.Second), false},
		{deadline.AddDate(0, 1, 0), false},
	} {
		cod, err := Sign(key, st, receipts.DecisionCOD, c.now)
		if c.ok && (err != nil || cod == "") {
			t.Errorf("signing at %s: %v", c.now, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "after the deadline")) {
			t.Errorf("signing at %s, after the deadline: %v", c.now, err)
		}
	}
	st.Request.Deadline = ""
	if _, err := Sign(key, st, receipts.DecisionCOD, deadline.AddDate(1, 0, 0)); err != nil {
		t.Errorf("an item without a deadline: %v", err)
	}
}
