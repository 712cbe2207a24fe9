package main

import (
	"strings"
	"testing"
)

// TestDeliverExitCodes: a pipe transport retries on 75 and bounces on 65,
// 67 and 69 (sysexits.h), so a message refused as it is (a malformed
// Certified-Delivery field) must not get 75, whether deliver writes to
// the store itself or goes through a running server's admin socket.
func TestDeliverExitCodes(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "pw\n", "user", "add", "alice", "--password-stdin", "--data", dir).must(t, 0)
	bad := "Subject: s\r\nCertified-Delivery : deadline=72h\r\n\r\nbody\r\n"
	badValue := "Subject: s\r\nCertified-Delivery: deadline=soon\r\n\r\nbody\r\n"
	check := func(how string) {
		t.Helper()
		for _, m := range []string{bad, badValue} {
			r := certmail(t, m, "deliver", "--to", "alice", "--data", dir)
			if r.code != exitDataErr {
				t.Errorf("%s: malformed field: exit %d, want %d (EX_DATAERR)\n%s", how, r.code, exitDataErr, r.stderr)
			}
		}
		certmail(t, "Subject: s\r\n\r\nb\r\n", "deliver", "--to", "nobody", "--data", dir).must(t, exitNoUser)
		certmail(t, "Subject: s\r\n\r\nb\r\n", "deliver", "--to", "alice", "--data", dir).must(t, 0)
	}
	check("local store")
	srv := startServer(t, dir)
	check("through the server")
	srv.stop(t)

	r := certmail(t, "", "deliver", "--help").must(t, 0)
	for _, want := range []string{"65", "EX_DATAERR", "67", "75", "EX_TEMPFAIL", "retries"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deliver --help does not say %q:\n%s", want, r.stdout)
		}
	}
}
