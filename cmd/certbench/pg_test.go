package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// TestPostgresSmoke runs a tiny LMTP ingest against Badger-certmail and
// two certmail nodes on a private PostgreSQL cluster (the real binaries,
// Debian's PostgreSQL; missing, the test fails naming the package), and
// checks that the report gives both their figures, the ratio, and the
// database's transactions and CPU.
func TestPostgresSmoke(t *testing.T) {
	var out bytes.Buffer
	code := run([]string{"--smoke", "--store", "postgres", "--nodes", "2", "--only", "ingest", "--servers", "certmail"}, &out)
	if code != 0 {
		t.Fatalf("certbench exited %d:\n%s", code, out.String())
	}
	report := out.String()
	t.Logf("report:\n%s", report)
	// row is the cells after the first of the last table row named name.
	row := func(name string) []string {
		t.Helper()
		var out []string
		for _, line := range strings.Split(report, "\n") {
			cells := strings.Split(line, "|")
			if len(cells) > 2 && strings.TrimSpace(cells[1]) == name {
				out = nil
				for _, c := range cells[2 : len(cells)-1] {
					out = append(out, strings.TrimSpace(c))
				}
			}
		}
		if out == nil {
			t.Fatalf("no row %q in the report", name)
		}
		return out
	}
	num := func(name, cell string) float64 {
		t.Helper()
		v, err := strconv.ParseFloat(cell, 64)
		if err != nil || v <= 0 {
			t.Fatalf("%s: %q is not a positive number", name, cell)
		}
		return v
	}
	// Columns: the PostgreSQL nodes, then Badger-certmail as the
	// reference, then the ratio and the (Dovecot) target.
	if h := row("metric"); len(h) != 4 || h[0] != "certmail-pg×2" || h[1] != "certmail" || h[2] != "ratio" {
		t.Fatalf("header %q", h)
	}
	r := row("LMTP ingest (msgs/s)")
	num("pg msgs/s", r[0])
	num("badger msgs/s", r[1])
	num("ratio", r[2])
	// At least one transaction per message: each is stored durably.
	if x := num("transactions per message", row("LMTP ingest PostgreSQL transactions per message")[0]); x < 1 {
		t.Fatalf("%.2f PostgreSQL transactions per message", x)
	}
	num("PostgreSQL CPU per message", row("LMTP ingest PostgreSQL CPU per message (ms)")[0])
	num("nodes' CPU per message", row("LMTP ingest certmail nodes' CPU per message (ms)")[0])
	pg := row("ingest") // the last table, PostgreSQL's: transactions, nodes' CPU, PostgreSQL's CPU
	if len(pg) != 3 {
		t.Fatalf("PostgreSQL table row %q", pg)
	}
	for i, name := range []string{"transactions", "nodes CPU", "PostgreSQL CPU"} {
		num(name, pg[i])
	}
}

// TestRoundRobin: client i of a workload goes to node i mod n.
func TestRoundRobin(t *testing.T) {
	s := &server{imap: "a:1", lmtp: "a:2", more: []*server{{imap: "b:1", lmtp: "b:2"}, {imap: "c:1", lmtp: "c:2"}}}
	var got []string
	for i := range 7 {
		got = append(got, s.imapAt(i)+" "+s.lmtpAt(i))
	}
	want := "a:1 a:2,b:1 b:2,c:1 c:2,a:1 a:2,b:1 b:2,c:1 c:2,a:1 a:2"
	if strings.Join(got, ",") != want {
		t.Fatalf("got %s\nwant %s", strings.Join(got, ","), want)
	}
	one := &server{imap: "a:1", lmtp: "a:2"}
	if one.imapAt(5) != "a:1" || one.lmtpAt(3) != "a:2" {
		t.Fatal("one node: not its own address")
	}
}

// TestReportTargets: with Dovecot, Badger-certmail and certmail on
// PostgreSQL each get a ratio and their own issue's target (LMTP ingest:
// 1.5× for Badger, issue 13's 1.0× for PostgreSQL).
func TestReportTargets(t *testing.T) {
	b := &bench{o: options{rounds: 1}, results: newResults([]string{"certmail", "certmail-pg×2", "dovecot"})}
	b.results.add("ingest", "LMTP ingest (msgs/s)", "certmail", 300, higher)
	b.results.add("ingest", "LMTP ingest (msgs/s)", "certmail-pg×2", 120, higher)
	b.results.add("ingest", "LMTP ingest (msgs/s)", "dovecot", 100, higher)
	var out bytes.Buffer
	b.report(&out)
	want := "| LMTP ingest (msgs/s) | 300 | 120 | 100 | 3.00 | 1.20 | certmail ≥ 1.5×: met, certmail-pg×2 ≥ 1.0×: met |"
	if !strings.Contains(out.String(), want) {
		t.Fatalf("want the row\n%s\nin\n%s", want, out.String())
	}
	if !strings.Contains(out.String(), "| metric | certmail | certmail-pg×2 | dovecot | certmail ratio | certmail-pg×2 ratio | target |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |\n") {
		t.Fatalf("header:\n%s", out.String())
	}
}
