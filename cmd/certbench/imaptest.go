package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The imaptest workload (issue 14): Dovecot's imaptest stress against
// each server in turn, with persistent sessions (logout=0): imaptest's
// clients LIST, STATUS, SELECT, FETCH, STORE, EXPUNGE and APPEND (with
// LITERAL+) as fast as the server answers. Opt-in (--only imaptest): it
// needs imaptest, which no distribution packages.

const imaptestRate = "imaptest stress, logout=0 (commands/s)"

// imaptestUsers are the users imaptest's user=u%d with users=N logs in as.
func imaptestUsers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%d", i+1)
	}
	return out
}

// writeStressMbox writes n generated messages (unique Message-IDs: imaptest
// compares the headers it sees with the ones it appended) as an mbox.
func writeStressMbox(path string, n int, seed uint64) error {
	var b bytes.Buffer
	for i := range n {
		msg := message(seed, i, "u1@example.org", small)
		b.WriteString("From certbench@example.org Thu Jan  1 00:00:00 2026\n")
		sc := bufio.NewScanner(bytes.NewReader(msg))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
				line = ">" + line // mboxrd quoting
			}
			b.WriteString(line + "\n")
		}
		if err := sc.Err(); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// runImaptest runs one stress and returns the commands per second (the
// sum of imaptest's Totals row over the duration), the number of
// "Error:" lines it printed and the first of them.
func runImaptest(bin, addr, mbox string, clients int, dur time.Duration) (float64, int, string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, 0, "", err
	}
	secs := int(dur / time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "host="+host, "port="+port, "user=u%d", "pass="+password,
		fmt.Sprintf("users=%d", clients), fmt.Sprintf("clients=%d", clients), fmt.Sprintf("secs=%d", secs),
		"mbox="+mbox, "logout=0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	total, ok := imaptestTotal(out.String())
	if !ok {
		return 0, 0, "", fmt.Errorf("imaptest printed no totals (%v):\n%s\n%s", runErr, tail(out.String(), 10), tail(errOut.String(), 10))
	}
	first := ""
	if i := strings.Index(errOut.String(), "Error:"); i >= 0 {
		first, _, _ = strings.Cut(errOut.String()[i:], "\n")
		if len(first) > 200 {
			first = first[:200] + "…"
		}
	}
	return float64(total) / float64(secs), strings.Count(errOut.String(), "Error:"), first, nil
}

// imaptestTotal sums the numbers of the last line after "Totals:".
func imaptestTotal(out string) (int, bool) {
	i := strings.LastIndex(out, "Totals:")
	if i < 0 {
		return 0, false
	}
	lines := strings.Split(strings.TrimSpace(out[i:]), "\n")
	sum, n := 0, 0
	for _, f := range strings.Fields(lines[len(lines)-1]) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return 0, false
		}
		sum += v
		n++
	}
	return sum, n > 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (b *bench) runImaptestWorkload() {
	o := b.o
	bin, err := exec.LookPath(o.imaptestBin)
	if err != nil {
		b.failures = append(b.failures, fmt.Sprintf("imaptest: %s not found (--imaptest): build Dovecot's imaptest", o.imaptestBin))
		return
	}
	mbox := o.imaptestMbox
	if mbox == "" {
		mbox = filepath.Join(b.root, "stress.mbox")
		if err := writeStressMbox(mbox, 300, o.seed+17); err != nil {
			b.failures = append(b.failures, fmt.Sprintf("imaptest: writing the mbox: %v", err))
			return
		}
	}
	b.notes = append(b.notes, fmt.Sprintf("imaptest: %s with %d clients on as many users, %v per run, logout=0 (persistent sessions), mbox %s; commands/s is the sum of its Totals row over the run.",
		bin, o.imaptestClients, o.imaptestDur, filepath.Base(mbox)))
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			b.logf("imaptest round %d on %s", r+1, s.name)
			var rate float64
			var errs int
			var first string
			u, ok := b.measure("imaptest", r, s, func() error {
				var err error
				rate, errs, first, err = runImaptest(bin, s.imap, mbox, o.imaptestClients, o.imaptestDur)
				return err
			})
			if !ok {
				continue
			}
			b.results.add("imaptest", imaptestRate, s.name, rate, higher)
			cmds := rate * o.imaptestDur.Seconds()
			if cmds > 0 {
				b.results.add("imaptest", "imaptest CPU per command (µs)", s.name, u.CPU*1e6/cmds, lower)
			}
			b.logf("  %.0f commands/s, %d imaptest errors", rate, errs)
			if errs > 0 {
				b.notes = append(b.notes, fmt.Sprintf("imaptest round %d on %s: %d Error: lines (imaptest's consistency checks), the first: %s", r+1, s.name, errs, first))
			}
		}
	}
}
