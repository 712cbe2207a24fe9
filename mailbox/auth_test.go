package mailbox

import (
	"errors"
	"sync"
	"testing"
)

// Concurrent logins share password checks (one argon2 per distinct
// credentials at a time) and still get each their own right answer.
func TestAuthenticateConcurrent(t *testing.T) {
	s := openTestStore(t)
	for _, u := range []string{"ann", "ben"} {
		if err := s.CreateAccount(u, u+"-pw", nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []string{"ann", "ben"}[i%2]
			pw := user + "-pw"
			wrong := i%4 >= 2
			if wrong {
				pw = "not-" + pw
			}
			acct, err := s.Authenticate(user, pw)
			switch {
			case wrong && !errors.Is(err, ErrAuthFailed):
				errs <- errors.New(user + ": wrong password accepted")
			case !wrong && (err != nil || acct != user):
				errs <- errors.New(user + ": right password refused")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(s.auth.checking) != 0 {
		t.Errorf("%d checks left behind", len(s.auth.checking))
	}
}
