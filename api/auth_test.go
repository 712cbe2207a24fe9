package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"certmail/api"
	"certmail/authguard"
	"certmail/mailbox"
)

// countingStore checks passwords with the real store and counts them.
type countingStore struct {
	*mailbox.Store
	checks atomic.Int64
}

func (c *countingStore) Authenticate(name, password string) (string, error) {
	c.checks.Add(1)
	return c.Store.Authenticate(name, password)
}

// clientFrom is an HTTP client whose connections come from the loopback
// address src (all of 127.0.0.0/8 is loopback on Linux), so that
// per-address limits can be tested with real sockets.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// TestBasicAuthGuarded: HTTP Basic auth on the COD endpoint goes through
// the guard. 200 guesses sent at once check no more passwords than the
// budget; the account is then locked, so its right password gets the
// same 401 as a wrong one (it used to get past to the item: a 404 or
// 200 told the guesser they had it); an address that sprays guesses is
// locked for every account, other addresses are not.
func TestBasicAuthGuarded(t *testing.T) {
	const budget = 5
	var cs *countingStore
	e := newEnv(t, 0, func(o *api.Options) {
		cs = &countingStore{Store: o.Store}
		o.Auth = authguard.New(cs, authguard.Policy{MaxFailures: budget, Lockout: time.Minute}, o.Logger)
	})
	it := e.submit(e.acme, map[string]any{"message": message, "recipients": []string{"alice"}})[0]
	post := func(c *http.Client, user, pass string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/items/"+it.Label+"/cod", strings.NewReader("x"))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Guesses from many addresses at once.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, _ := post(clientFrom(fmt.Sprintf("127.0.1.%d", i%250+1)), " Alice", fmt.Sprintf("guess%d", i)); st != http.StatusUnauthorized {
				t.Errorf("guess %d: %d", i, st)
			}
		}()
	}
	wg.Wait()
	if n := cs.checks.Load(); n > budget {
		t.Fatalf("%d passwords checked, want at most %d", n, budget)
	}
	// Guesses refused while others were in flight were not checked (nor
	// counted): the budget may not be spent yet. Spend the rest.
	for i := 0; cs.checks.Load() < budget && i < budget; i++ {
		post(clientFrom("127.0.1.251"), "alice", fmt.Sprintf("more%d", i))
	}
	if n := cs.checks.Load(); n != budget {
		t.Fatalf("%d passwords checked, want %d", n, budget)
	}
	// Locked: the right password, any spelling, from a fresh address.
	c := clientFrom("127.0.2.1")
	for _, name := range []string{"alice", "ALICE", "alice\t"} {
		if st, body := post(c, name, "alice-pw"); st != http.StatusUnauthorized || !strings.Contains(body, "too many failed logins") {
			t.Fatalf("%q with the right password while locked: %d %s", name, st, body)
		}
	}
	// bob is not locked from there.
	if st, _ := post(c, "bob", "bob-pw"); st != http.StatusNotFound {
		t.Fatalf("bob: %d (want 404: authenticated, not his item)", st)
	}
	// Spraying from one address: locked for bob too; malformed
	// Authorization headers count like wrong passwords.
	sprayer := clientFrom("127.0.3.1")
	for i := range budget - 1 {
		post(sprayer, fmt.Sprintf("user%d", i), "x")
	}
	if st, _ := post(sprayer, "", "", "Authorization", "Basic !!!"); st != http.StatusUnauthorized {
		t.Fatalf("malformed header: %d", st)
	}
	if st, body := post(sprayer, "bob", "bob-pw"); st != http.StatusUnauthorized || !strings.Contains(body, "too many failed logins") {
		t.Fatalf("bob from the sprayer's address: %d %s", st, body)
	}
	if st, _ := post(clientFrom("127.0.3.2"), "bob", "bob-pw"); st != http.StatusNotFound {
		t.Fatalf("bob from another address: %d", st)
	}
}
