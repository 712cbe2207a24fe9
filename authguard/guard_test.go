package authguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"certmail/mailbox"
)

// checker accepts "right" for the accounts it has, through the store's
// own normalisation, and counts the passwords it was asked to check.
type checker struct {
	accounts map[string]bool
	checks   atomic.Int64
	wait     time.Duration
}

func (c *checker) Authenticate(name, password string) (string, error) {
	c.checks.Add(1)
	time.Sleep(c.wait)
	acct, err := mailbox.NormalizeAccount(name)
	if err != nil || !c.accounts[acct] || password != "right" {
		return "", mailbox.ErrAuthFailed
	}
	return acct, nil
}

func newChecker(names ...string) *checker {
	c := &checker{accounts: map[string]bool{}}
	for _, n := range names {
		c.accounts[n] = true
	}
	return c
}

// clock is a settable time for the guard.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newGuard(t *testing.T, c Checker, p Policy) (*Guard, *clock) {
	t.Helper()
	g := New(c, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clk := &clock{t: time.Unix(2e9, 0)}
	g.now = clk.now
	return g, clk
}

func try(g *Guard, remote, name, password string) (string, error) {
	return g.Authenticate(context.Background(), Attempt{Proto: "test", Remote: remote, Name: name}, password)
}

func retryIn(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryIn
	}
	return -1
}

// TestVariantsShareBudget: the account is counted under the store's
// canonical name, so spelling variants of one name share one budget, and
// a locked account's right password is refused like a wrong one.
func TestVariantsShareBudget(t *testing.T) {
	c := newChecker("bob", "carol")
	g, _ := newGuard(t, c, Policy{MaxFailures: 4, Lockout: time.Hour})
	variants := []string{" bob", "bob ", "\tbob", "BOB"}
	for i, v := range variants {
		// A different address each time: only the account is shared.
		_, err := try(g, fmt.Sprintf("192.0.2.%d:1000", i+1), v, "wrong")
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("%q: %v", v, err)
		}
	}
	checks := c.checks.Load()
	for _, v := range append(variants, "bob") {
		_, err := try(g, "198.51.100.7:1", v, "right")
		if !errors.Is(err, ErrFailed) || retryIn(err) <= 0 {
			t.Fatalf("right password for %q while bob is locked: %v", v, err)
		}
	}
	if n := c.checks.Load(); n != checks {
		t.Fatalf("%d passwords checked while locked", n-checks)
	}
	// Another account is not affected.
	if acct, err := try(g, "198.51.100.7:1", " Carol ", "right"); err != nil || acct != "carol" {
		t.Fatalf("carol: %q %v", acct, err)
	}
	// An unknown account locks the same way (nothing tells it apart).
	for range 4 {
		try(g, "203.0.113.1:1", "nobody", "x")
	}
	if _, err := try(g, "203.0.113.2:1", "nobody", "x"); retryIn(err) <= 0 {
		t.Fatalf("unknown account not locked: %v", err)
	}
}

// TestParallelGuessesBounded: 200 guesses sent at once check at most
// MaxFailures passwords, and leave the account locked.
func TestParallelGuessesBounded(t *testing.T) {
	c := newChecker("bob")
	c.wait = 5 * time.Millisecond
	g, _ := newGuard(t, c, Policy{MaxFailures: 5, Lockout: time.Hour})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := try(g, fmt.Sprintf("192.0.2.%d:1", i%250), "bob", fmt.Sprintf("guess%d", i)); !errors.Is(err, ErrFailed) {
				t.Errorf("guess %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n := c.checks.Load(); n > 5 {
		t.Fatalf("%d passwords checked, want at most 5", n)
	}
	// Those refused while others were in flight were not counted: spend
	// what is left of the budget, then bob is locked.
	for i := 0; c.checks.Load() < 5 && i < 5; i++ {
		try(g, "198.51.100.1:1", "bob", "more")
	}
	if _, err := try(g, "198.51.100.2:1", "bob", "right"); retryIn(err) <= 0 {
		t.Fatalf("right password after the budget was spent: %v", err)
	}
	if n := c.checks.Load(); n != 5 {
		t.Fatalf("%d passwords checked, want 5", n)
	}
}

// TestParallelRightPasswordsWaitTheirTurn: more clients of one account
// than the failure budget logging in at once with the right password
// (a shared desk, a client's pool of connections) all get in: an
// attempt that finds the budget taken by attempts in flight waits for
// them instead of being refused as if locked out.
func TestParallelRightPasswordsWaitTheirTurn(t *testing.T) {
	c := newChecker("desk")
	c.wait = 5 * time.Millisecond
	g, _ := newGuard(t, c, Policy{MaxFailures: 3, Lockout: time.Hour, Delay: time.Second})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := try(g, "192.0.2.7:1", "desk", "right"); err != nil {
				t.Errorf("login %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

// TestWaitingTurnEndsWithContext: an attempt waiting for its turn is
// refused when its client goes away.
func TestWaitingTurnEndsWithContext(t *testing.T) {
	c := newChecker("bob")
	c.wait = time.Second
	g, _ := newGuard(t, c, Policy{MaxFailures: 1, Lockout: time.Hour})
	go try(g, "192.0.2.8:1", "bob", "right")
	time.Sleep(100 * time.Millisecond) // the first is in flight
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := g.Authenticate(ctx, Attempt{Proto: "test", Remote: "192.0.2.8:2", Name: "bob"}, "right")
	if !errors.Is(err, ErrFailed) || retryIn(err) <= 0 {
		t.Fatalf("waiting attempt after its context ended: %v", err)
	}
}

// TestPerAddress: one address trying many accounts (password spraying)
// is locked; other addresses are not; IPv6 counts per /64; loopback is
// exempt only when the policy says so.
func TestPerAddress(t *testing.T) {
	c := newChecker("alice", "bob")
	g, _ := newGuard(t, c, Policy{MaxFailures: 3, Lockout: time.Hour, LoopbackExempt: true})
	for i := range 3 {
		try(g, "192.0.2.1:5", fmt.Sprintf("user%d", i), "x")
	}
	if _, err := try(g, "192.0.2.1:6", "alice", "right"); retryIn(err) <= 0 {
		t.Fatalf("sprayer's address not locked: %v", err)
	}
	if _, err := try(g, "192.0.2.2:6", "alice", "right"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// IPv6: one /64 is one budget.
	for i := range 3 {
		try(g, fmt.Sprintf("[2001:db8:1:2::%x]:5", i+1), fmt.Sprintf("v6user%d", i), "x")
	}
	if _, err := try(g, "[2001:db8:1:2:ffff::1]:5", "alice", "right"); retryIn(err) <= 0 {
		t.Fatalf("same /64 not locked: %v", err)
	}
	if _, err := try(g, "[2001:db8:1:3::1]:5", "alice", "right"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	// IPv4-mapped IPv6 is the IPv4 address.
	if _, err := try(g, "[::ffff:192.0.2.1]:5", "bob", "right"); retryIn(err) <= 0 {
		t.Fatalf("mapped address not locked: %v", err)
	}
	// Loopback, exempt: never locked by address.
	for i := range 10 {
		try(g, "127.0.0.1:5", fmt.Sprintf("lo%d", i), "x")
	}
	if _, err := try(g, "127.0.0.1:5", "bob", "right"); err != nil {
		t.Fatalf("exempt loopback: %v", err)
	}
	// Not exempt: locked like any other.
	g2, _ := newGuard(t, c, Policy{MaxFailures: 3, Lockout: time.Hour})
	for i := range 3 {
		try(g2, "127.0.0.1:5", fmt.Sprintf("lo%d", i), "x")
	}
	if _, err := try(g2, "127.0.0.1:5", "bob", "right"); retryIn(err) <= 0 {
		t.Fatalf("loopback not exempt: %v", err)
	}
}

// TestSuccessForgivesOwnFailures: a login clears the account's failures
// and as many of the address's, not an address's spraying.
func TestSuccessForgivesOwnFailures(t *testing.T) {
	c := newChecker("alice", "mallory")
	g, _ := newGuard(t, c, Policy{MaxFailures: 4, Lockout: time.Hour})
	const addr = "192.0.2.9:1"
	try(g, addr, "alice", "typo")
	if _, err := try(g, addr, "alice", "right"); err != nil {
		t.Fatal(err)
	}
	// alice's typo is forgiven: three more failures do not lock.
	for i := range 3 {
		try(g, addr, fmt.Sprintf("victim%d", i), "x")
	}
	// mallory logging in to their own account forgives nothing.
	if _, err := try(g, addr, "mallory", "right"); err != nil {
		t.Fatal(err)
	}
	try(g, addr, "victim9", "x")
	if _, err := try(g, addr, "mallory", "right"); retryIn(err) <= 0 {
		t.Fatalf("address not locked after 4 failures of others: %v", err)
	}
}

// TestLockoutEnds: failures are forgotten Lockout after the last one.
func TestLockoutEnds(t *testing.T) {
	c := newChecker("bob")
	g, clk := newGuard(t, c, Policy{MaxFailures: 2, Lockout: time.Minute})
	try(g, "192.0.2.1:1", "bob", "x")
	try(g, "192.0.2.1:1", "bob", "x")
	clk.add(30 * time.Second)
	if _, err := try(g, "192.0.2.2:1", "bob", "right"); retryIn(err) != 30*time.Second {
		t.Fatalf("want locked for 30s more: %v", err)
	}
	clk.add(30 * time.Second)
	if _, err := try(g, "192.0.2.2:1", "bob", "right"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// The success cleared bob; the first address's entry has expired
	// and is dropped when next looked at or evicted.
	if a, _ := g.Entries(); a != 0 {
		t.Fatalf("%d account entries after a success", a)
	}
}

// TestMemoryBounded: a flood of random names from random addresses does
// not grow the tables past MaxEntries, and does not unlock a locked
// account.
func TestMemoryBounded(t *testing.T) {
	c := newChecker("bob")
	g, _ := newGuard(t, c, Policy{MaxFailures: 3, Lockout: time.Hour, MaxEntries: 500})
	for range 3 {
		try(g, "192.0.2.1:1", "bob", "x")
	}
	// Fail counts without a password check, as a malformed attempt
	// does; the tables see the same.
	for i := range 20000 {
		a := Attempt{Proto: "test", Remote: fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>16, i&0xffff), Name: fmt.Sprintf("u%d", i)}
		g.Fail(context.Background(), a, "flood")
	}
	accts, addrs := g.Entries()
	if accts > 500 || addrs > 500 {
		t.Fatalf("tables hold %d accounts, %d addresses; bound 500", accts, addrs)
	}
	if _, err := try(g, "198.51.100.1:1", "bob", "right"); retryIn(err) <= 0 {
		t.Fatalf("the flood unlocked bob: %v", err)
	}
}

// TestMemoryBoundedDefault: at the default bound, ten times as many
// names and addresses as it holds leave both tables at the bound, a few
// megabytes of heap (4.3 MB measured after a million).
func TestMemoryBoundedDefault(t *testing.T) {
	g, _ := newGuard(t, newChecker(), Policy{MaxFailures: 10, Lockout: time.Hour})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 10 * DefaultMaxEntries {
		a := Attempt{Remote: fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>16, i&0xffff),
			Name: fmt.Sprintf("user-%08d-with-a-long-name-xxxxxxxxxxxxxxxxxxxxxxx", i)}
		g.Fail(context.Background(), a, "flood")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	accts, addrs := g.Entries()
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d account and %d address entries; heap grew %d kB", accts, addrs, grown/1024)
	if accts != DefaultMaxEntries || addrs != DefaultMaxEntries {
		t.Fatalf("tables hold %d and %d entries, want %d", accts, addrs, DefaultMaxEntries)
	}
	if grown > 16<<20 {
		t.Fatalf("heap grew by %d kB", grown/1024)
	}
	runtime.KeepAlive(g)
}

func TestDelaySchedule(t *testing.T) {
	g, _ := newGuard(t, newChecker(), Policy{FreeFailures: 2, MaxFailures: 20, Delay: time.Second, Lockout: time.Hour})
	var got []time.Duration
	for n := 1; n <= 10; n++ {
		got = append(got, g.delay(n))
	}
	want := []time.Duration{0, 0, 1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want %v (seconds)", got, want)
		}
	}
}

// TestDelayed: a failure past the free ones is answered after the delay,
// and a cancelled context ends the wait.
func TestDelayed(t *testing.T) {
	const delay = 500 * time.Millisecond
	g, _ := newGuard(t, newChecker("bob"), Policy{FreeFailures: 1, MaxFailures: 10, Delay: delay, Lockout: time.Hour})
	try(g, "192.0.2.1:1", "bob", "x")
	start := time.Now()
	try(g, "192.0.2.1:1", "bob", "x")
	if d := time.Since(start); d < delay {
		t.Fatalf("second failure answered after %v", d)
	}
	// The third would wait 2*delay.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	g.Authenticate(ctx, Attempt{Remote: "192.0.2.1:1", Name: "bob"}, "x")
	if d := time.Since(start); d >= 2*delay {
		t.Fatalf("cancelled wait took %v", d)
	}
}
