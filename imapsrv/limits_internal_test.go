package imapsrv

import (
	"fmt"
	"testing"
	"time"
)

// TestFailureTableBounded: an attacker cycling through names or addresses
// cannot grow the table past its bound, and entries expire.
func TestFailureTableBounded(t *testing.T) {
	ft := newFailureTable(100)
	now := time.Unix(1e9, 0)
	for i := 0; i < 10000; i++ {
		ft.fail(fmt.Sprintf("user%d", i), now, time.Minute, 5)
	}
	if n := ft.len(); n != 100 {
		t.Fatalf("table holds %d entries, want 100", n)
	}
	// The most recent survive, the oldest were evicted.
	if ft.get("user9999", now, time.Minute) == nil || ft.get("user0", now, time.Minute) != nil {
		t.Fatal("LRU order")
	}
	// Expiry: forgotten a lockout period after the last failure.
	if ft.get("user9999", now.Add(2*time.Minute), time.Minute) != nil {
		t.Fatal("entry did not expire")
	}
}

func TestLoginDelaySchedule(t *testing.T) {
	l := newLimiter(Limits{LoginFreeFailures: 2, LoginMaxFailures: 20, LoginDelay: time.Second, LoginLockout: time.Hour})
	var got []time.Duration
	for i := 0; i < 10; i++ {
		d, _, _ := l.loginFailed("192.0.2.1", "alice")
		got = append(got, d)
	}
	want := []time.Duration{0, 0, 1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v (seconds)", got, want)
		}
	}
	if l.loginBlocked("192.0.2.1", "alice") != 0 {
		t.Fatal("blocked before the maximum")
	}
	l.loginSucceeded("192.0.2.1", "alice")
	if d, n, _ := l.loginFailed("192.0.2.1", "alice"); d != 0 || n != 1 {
		t.Fatalf("after success: %v %d", d, n)
	}
}
