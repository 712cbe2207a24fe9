// Command certbench compares certmail with Dovecot on the same machine:
// LMTP ingest, an IMAP session mix, a large mailbox, idle sessions, and a
// client resynchronising a large mailbox with and without QRESYNC (a
// server that does not offer QRESYNC gets "not supported" in that row).
//
//	go run ./cmd/certbench            # the full benchmark (minutes)
//	go run ./cmd/certbench --smoke    # everything tiny (seconds), for CI
//	go run ./cmd/certbench --only resync --require-dovecot
//	go run ./cmd/certbench --only imaptest --imaptest PATH  # Dovecot's imaptest, logout=0
//	go run ./cmd/certbench --store postgres --nodes 2  # and certmail on PostgreSQL, two nodes
//
// With --store postgres it also runs certmail on a private PostgreSQL
// cluster it starts and removes (Debian's server binaries, as the tests
// do), --nodes processes on one database with the clients round robin
// over them, and reports the database's transactions and CPU per
// operation beside the nodes' CPU.
//
// It installs nothing. It builds certmail and runs it on a temporary data
// directory with loopback ports; when Dovecot is installed (Debian's
// dovecot-imapd and dovecot-lmtpd) it runs a private Dovecot too, with its
// own configuration, ports and Maildir under the same temporary directory
// and the same users and passwords. Each workload runs against each server
// in turn, alternating which goes first, for several rounds; the tables
// give the median, the ratio, and each server's CPU time and peak memory.
// See BENCHMARKS.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	rounds         int
	smoke          bool
	requireDovecot bool
	dovecotBin     string
	certmailBin    string
	scheme         string
	only           string
	servers        string
	keep           bool
	cpuprofile     string
	seed           uint64
	store          string // badger, or postgres: certmail on PostgreSQL too
	nodes          int    // certmail processes on the PostgreSQL store

	ingestN, ingestC, ingestUsers int
	mixC, mixSeed                 int
	mixDur                        time.Duration
	largeM, largeC                int
	idleK                         int
	idleCompress                  int
	idleWake, idleSettle          time.Duration
	resyncM, resyncFlags          int
	resyncExpunges                int
	// serve: start the servers, print their addresses and wait (for
	// runs of other tools, imaptest's stress, against the same setup).
	serve      bool
	serveUsers int

	imaptestBin, imaptestMbox string
	imaptestClients           int
	imaptestDur               time.Duration
}

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

// run runs certbench with the command-line arguments args, writing the
// tables to stdout (the progress goes to stderr); it returns the exit
// status.
func run(args []string, stdout io.Writer) int {
	var o options
	fs := flag.NewFlagSet("certbench", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per workload and server (the median is reported)")
	fs.BoolVar(&o.smoke, "smoke", false, "run everything tiny, in seconds (for CI); size flags given explicitly still apply")
	fs.BoolVar(&o.requireDovecot, "require-dovecot", false, "fail if Dovecot is not installed instead of benchmarking certmail alone")
	fs.StringVar(&o.dovecotBin, "dovecot", "/usr/sbin/dovecot", "Dovecot `binary`")
	fs.StringVar(&o.certmailBin, "certmail", "", "certmail `binary` to test (default: build ./cmd/certmail)")
	fs.StringVar(&o.scheme, "dovecot-scheme", "PLAIN", "Dovecot passdb password scheme: PLAIN or SHA512-CRYPT")
	fs.StringVar(&o.only, "only", "ingest,mix,large,idle,resync", "comma-separated `workloads` to run")
	fs.StringVar(&o.servers, "servers", "certmail,dovecot", "comma-separated `servers` to run (dovecot only if installed)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data, configs, logs)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "developers: write a CPU profile of certmail per workload run into `dir`")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated mail")
	fs.IntVar(&o.ingestN, "ingest-n", 2000, "LMTP ingest: messages per round")
	fs.IntVar(&o.ingestC, "ingest-c", 8, "LMTP ingest: concurrent connections")
	fs.IntVar(&o.ingestUsers, "ingest-users", 4, "LMTP ingest: recipients (round robin)")
	fs.IntVar(&o.mixC, "mix-c", 8, "session mix: concurrent clients (one user each)")
	fs.DurationVar(&o.mixDur, "mix-duration", 20*time.Second, "session mix: duration per round")
	fs.IntVar(&o.mixSeed, "mix-seed", 300, "session mix: messages in each client's INBOX")
	fs.IntVar(&o.largeM, "large-m", 100_000, "large mailbox: messages")
	fs.IntVar(&o.largeC, "large-c", 8, "large mailbox: LMTP connections to fill it")
	fs.IntVar(&o.idleK, "idle-k", 1000, "idle: concurrent IDLE sessions (spread over the session-mix users)")
	fs.IntVar(&o.idleCompress, "idle-compress", 4, "idle: every `n`th session turns on COMPRESS=DEFLATE after its login (0: none)")
	fs.DurationVar(&o.idleWake, "idle-wake-timeout", 10*time.Second, "idle: how long to wait for every session to see new mail")
	fs.DurationVar(&o.idleSettle, "idle-settle", 30*time.Second, "idle: how long the sessions idle before the RSS is read")
	fs.IntVar(&o.resyncM, "resync-m", 100_000, "resync: messages in the mailbox the client knows")
	fs.IntVar(&o.resyncFlags, "resync-flags", 100, "resync: flag changes by another session per round")
	fs.IntVar(&o.resyncExpunges, "resync-expunges", 10, "resync: expunges by another session per round")
	fs.BoolVar(&o.serve, "serve", false, "start the servers with users u1..u`N` (--serve-users), print their addresses, run no workload and wait for SIGINT (e.g. for imaptest; see BENCHMARKS.md)")
	fs.IntVar(&o.serveUsers, "serve-users", 20, "--serve: users u1..uN, password "+password)
	fs.StringVar(&o.imaptestBin, "imaptest", "imaptest", "imaptest workload (--only imaptest): Dovecot's imaptest `binary`")
	fs.StringVar(&o.imaptestMbox, "imaptest-mbox", "", "imaptest workload: mbox of messages to APPEND (unique Message-IDs; default: 300 generated, 1–8 KB)")
	fs.IntVar(&o.imaptestClients, "imaptest-clients", 20, "imaptest workload: clients, one user each (u1..uN)")
	fs.DurationVar(&o.imaptestDur, "imaptest-duration", 30*time.Second, "imaptest workload: duration per run")
	fs.StringVar(&o.store, "store", "badger", "`badger` (certmail on its data directory, as always), or postgres: certmail on a private PostgreSQL cluster too (Debian's server binaries), beside the others")
	fs.IntVar(&o.nodes, "nodes", 1, "--store postgres: certmail `nodes` on the one database; the clients are spread over them round robin")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.smoke {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, p *int, v int) {
			if !set[name] {
				*p = v
			}
		}
		def("rounds", &o.rounds, 1)
		def("ingest-n", &o.ingestN, 60)
		def("ingest-c", &o.ingestC, 4)
		def("ingest-users", &o.ingestUsers, 2)
		def("mix-c", &o.mixC, 2)
		def("mix-seed", &o.mixSeed, 20)
		def("large-m", &o.largeM, 300)
		def("large-c", &o.largeC, 4)
		def("idle-k", &o.idleK, 20)
		def("resync-m", &o.resyncM, 300)
		if !set["mix-duration"] {
			o.mixDur = 2 * time.Second
		}
		if !set["idle-settle"] {
			o.idleSettle = time.Second
		}
	}
	if o.store != "badger" && o.store != "postgres" {
		fmt.Fprintf(os.Stderr, "certbench: --store %q: want badger or postgres\n", o.store)
		return 2
	}
	if o.nodes < 1 || o.nodes > 1 && o.store != "postgres" {
		fmt.Fprintln(os.Stderr, "certbench: --nodes: at least 1, and more only with --store postgres")
		return 2
	}
	if o.rounds < 1 || o.mixC < 1 || o.ingestUsers < 1 || o.ingestC < 1 || o.largeC < 1 {
		fmt.Fprintln(os.Stderr, "certbench: rounds, clients, users and connections must be at least 1")
		return 2
	}
	b := &bench{o: o, workloads: map[string]bool{}, loadStart: loadAvg()}
	for _, w := range strings.Split(o.only, ",") {
		w = strings.TrimSpace(w)
		switch w {
		case "ingest", "mix", "large", "idle", "resync", "imaptest":
			b.workloads[w] = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "certbench: unknown workload %q (want ingest, mix, large, idle, resync, imaptest)\n", w)
			return 2
		}
	}
	raiseFileLimit()

	root, err := os.MkdirTemp("", "certbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "certbench:", err)
		return 1
	}
	b.root = root
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "certbench: interrupted; stopping the servers")
		b.cleanup()
		os.Exit(130)
	}()
	defer b.cleanup()
	if err := b.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "certbench:", err)
		return 1
	}
	if o.serve {
		b.serveForever()
		return 0
	}
	b.runAll()
	b.report(stdout)
	if len(b.failures) > 0 {
		fmt.Fprintf(os.Stderr, "\ncertbench: %d workload run(s) failed:\n", len(b.failures))
		for _, f := range b.failures {
			fmt.Fprintln(os.Stderr, "  -", f)
		}
		return 1
	}
	return 0
}

// raiseFileLimit lifts the soft open-files limit to the hard one, and
// does it explicitly so that the servers started from here inherit it
// (Go restores the original limit for children unless the program set
// one itself).
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

const password = "certbench-Secret-1"

// bench holds the servers and the results.
type bench struct {
	o         options
	workloads map[string]bool
	root      string
	servers   []*server
	notes     []string
	failures  []string
	results   *results
	users     struct{ mix, ingest []string }
	bigUser   string
	rsUser    string
	dovecot   string // version, if running
	loadStart string
}

func (b *bench) cleanup() {
	for _, s := range b.servers {
		s.stop()
	}
	b.servers = nil
	if b.root != "" && !b.o.keep {
		os.RemoveAll(b.root)
	} else if b.root != "" {
		fmt.Fprintln(os.Stderr, "certbench: kept", b.root)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) setup() error {
	o := b.o
	b.logf("load average %s on %d CPUs", b.loadStart, runtime.NumCPU())
	var l1 float64
	fmt.Sscan(b.loadStart, &l1)
	if l1 > float64(runtime.NumCPU()) {
		b.logf("warning: the machine is busy (load %.1f > %d CPUs): wall-clock figures will be noisy; CPU seconds per unit of work less so", l1, runtime.NumCPU())
	}
	for i := 1; i <= o.mixC; i++ {
		b.users.mix = append(b.users.mix, fmt.Sprintf("mix%02d", i))
	}
	for i := 1; i <= o.ingestUsers; i++ {
		b.users.ingest = append(b.users.ingest, fmt.Sprintf("in%02d", i))
	}
	b.bigUser = "big"
	b.rsUser = "resync"
	all := append(append(append([]string(nil), b.users.mix...), b.users.ingest...), b.bigUser, b.rsUser)
	if o.serve {
		all = append(all, imaptestUsers(o.serveUsers)...)
	} else if b.workloads["imaptest"] {
		all = append(all, imaptestUsers(o.imaptestClients)...)
	}

	// --servers names the servers to run (Dovecot only if installed);
	// certmail on PostgreSQL runs with --store postgres.
	want := map[string]bool{}
	for _, name := range strings.Split(o.servers, ",") {
		want[strings.TrimSpace(name)] = true
	}
	withCertmail := want["certmail"]
	withPG := o.store == "postgres"
	bin := o.certmailBin
	if bin == "" && (withCertmail || withPG) {
		b.logf("building certmail")
		var err error
		if bin, err = buildCertmail(filepath.Join(b.root, "bin")); err != nil {
			return err
		}
	}
	dvBin, dvErr := findDovecot(o.dovecotBin)
	wantDovecot := want["dovecot"]
	if !wantDovecot {
		dvErr = nil
	}
	if dvErr != nil {
		if o.requireDovecot {
			return fmt.Errorf("dovecot is not installed (--require-dovecot); install dovecot-imapd and dovecot-lmtpd")
		}
		b.notes = append(b.notes, "Dovecot is not installed (Debian: dovecot-imapd dovecot-lmtpd): certmail alone.")
		fmt.Fprintln(os.Stderr, "certbench: Dovecot is not installed; benchmarking certmail alone")
	}

	// Profiling addresses: the Badger server's and the first
	// PostgreSQL node's.
	var pprofAddr, pgPprofAddr string
	if o.cpuprofile != "" {
		if err := os.MkdirAll(o.cpuprofile, 0o755); err != nil {
			return err
		}
		for _, addr := range []*string{&pprofAddr, &pgPprofAddr} {
			port, err := freePort()
			if err != nil {
				return err
			}
			*addr = fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	if withCertmail {
		b.logf("starting certmail (%d users)", len(all))
		cm, err := startCertmail(bin, filepath.Join(b.root, "certmail"), all, password, pprofAddr)
		if err != nil {
			return err
		}
		b.servers = append(b.servers, cm)
	}
	if withPG {
		b.logf("starting PostgreSQL and %d certmail node(s) on it (%d users)", o.nodes, len(all))
		pg, err := startCertmailPG(bin, filepath.Join(b.root, "certmail-pg"), o.nodes, all, password, pgPprofAddr)
		if err != nil {
			return err
		}
		b.servers = append(b.servers, pg)
		b.notes = append(b.notes, fmt.Sprintf("%s: certmail on PostgreSQL %s (a private cluster: fsync and synchronous_commit on, shared_buffers 32MB), %d node(s) on one database; "+
			"the clients of each workload go to the nodes round robin (resync and imaptest: the first node). Its CPU is the nodes' and the database's (postmaster and backends); "+
			"its memory the nodes' only. PostgreSQL transactions: xact_commit + xact_rollback of the database in pg_stat_database, read %s before and after each run (each transaction is at least one round trip), "+
			"less the nodes' background while the count settles after the run (%.1f transactions/s with no client, measured after they started).",
			pg.name, pg.pg.cluster.Version(), o.nodes, pgStatsSettle, pg.pg.idleRate))
		b.logf("  %.1f PostgreSQL transactions/s with no client", pg.pg.idleRate)
	}
	if dvErr == nil && wantDovecot {
		b.logf("starting dovecot")
		dv, note, err := startDovecot(dvBin, filepath.Join(b.root, "dovecot"), all, password, o.scheme, o.idleK+o.mixC)
		if err != nil {
			return err
		}
		if note != "" {
			b.notes = append(b.notes, note+".")
		}
		b.servers = append(b.servers, dv)
		b.dovecot = dovecotVersion(dvBin)
	}
	names := make([]string, len(b.servers))
	for i, s := range b.servers {
		names[i] = s.name
	}
	b.results = newResults(names)
	return nil
}

// order is the servers in the order of round r: alternating who goes
// first, so neither always runs on a warmer machine.
func (b *bench) order(r int) []*server {
	out := append([]*server(nil), b.servers...)
	if r%2 == 1 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

func (b *bench) fail(workload string, s *server, err error) {
	msg := fmt.Sprintf("%s on %s: %v", workload, s.name, err)
	if s.exited() {
		msg += "\n" + s.logTail()
	}
	b.failures = append(b.failures, msg)
	b.logf("FAILED: %s", msg)
}

// measure runs fn against s with CPU and memory accounting (and a CPU
// profile of certmail if asked).
func (b *bench) measure(workload string, round int, s *server, fn func() error) (usage, bool) {
	if s.exited() {
		b.fail(workload, s, fmt.Errorf("server is not running"))
		return usage{}, false
	}
	if b.o.cpuprofile != "" {
		if err := s.startProfile(filepath.Join(b.o.cpuprofile, fmt.Sprintf("%s-%s-r%d.pprof", workload, s.name, round+1))); err != nil {
			b.logf("profile: %v", err)
		}
	}
	var pm *pgMeter
	if s.pg != nil {
		var err error
		if pm, err = startPGMeter(s.pg); err != nil {
			b.fail(workload, s, err)
			return usage{}, false
		}
	}
	m := startMeter(s.pids())
	err := fn()
	u := m.finish()
	if b.o.cpuprofile != "" {
		s.stopProfile()
	}
	if pm != nil {
		pu, perr := pm.finish()
		if perr != nil {
			b.fail(workload, s, perr)
			return u, false
		}
		pu.NodeCPU = u.CPU
		u.CPU += pu.DBCPU
		u.PG = &pu
	}
	b.results.usage(workload, s.name, u)
	if err != nil {
		b.fail(workload, s, err)
		return u, false
	}
	return u, true
}

func (b *bench) runAll() {
	o := b.o
	if b.workloads["mix"] || b.workloads["idle"] {
		b.logf("seeding %d session-mix mailboxes with %d messages each", len(b.users.mix), o.mixSeed)
		for _, s := range b.servers {
			n := len(b.users.mix) * o.mixSeed
			_, _, err := deliverAll(s.lmtpAt, min(8, len(b.users.mix)), n, func(i int) (string, []byte) {
				rcpt := b.users.mix[i%len(b.users.mix)] + "@example.org"
				return rcpt, message(o.seed+1, i, rcpt, realistic)
			})
			if err != nil {
				b.fail("seed", s, err)
			}
		}
	}
	if b.workloads["ingest"] {
		b.runIngest()
	}
	if b.workloads["mix"] {
		b.runMixWorkload()
	}
	if b.workloads["large"] {
		b.runLargeWorkload()
	}
	if b.workloads["idle"] {
		b.runIdleWorkload()
	}
	if b.workloads["resync"] {
		b.runResyncWorkload()
	}
	if b.workloads["imaptest"] {
		b.runImaptestWorkload()
	}
}

func (b *bench) runIngest() {
	o := b.o
	b.logf("LMTP ingest: generating %d messages", o.ingestN)
	type msg struct {
		rcpt string
		raw  []byte
	}
	msgs := make([]msg, o.ingestN)
	var total int64
	for i := range msgs {
		rcpt := b.users.ingest[i%len(b.users.ingest)] + "@example.org"
		msgs[i] = msg{rcpt, message(o.seed, i, rcpt, realistic)}
		total += int64(len(msgs[i].raw))
	}
	b.notes = append(b.notes, fmt.Sprintf("LMTP ingest: %d messages per round, %.1f MB, mean %.1f KB, from %d connections to %d recipients.",
		o.ingestN, float64(total)/1e6, float64(total)/float64(o.ingestN)/1024, o.ingestC, len(b.users.ingest)))
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			b.logf("LMTP ingest round %d on %s", r+1, s.name)
			var elapsed time.Duration
			var lat []time.Duration
			u, ok := b.measure("ingest", r, s, func() error {
				var err error
				elapsed, lat, err = deliverAll(s.lmtpAt, o.ingestC, o.ingestN, func(i int) (string, []byte) { return msgs[i].rcpt, msgs[i].raw })
				return err
			})
			if ok {
				rate := float64(o.ingestN) / elapsed.Seconds()
				b.logf("  %.0f msgs/s", rate)
				b.results.add("ingest", "LMTP ingest (msgs/s)", s.name, rate, higher)
				b.results.add("ingest", "LMTP ingest p99 per message (ms)", s.name, ms(percentile(lat, 99)), lower)
				b.results.add("ingest", "LMTP ingest CPU per message (ms)", s.name, u.CPU*1000/float64(o.ingestN), lower)
				b.addPG("ingest", "LMTP ingest", "message", s, u, float64(o.ingestN))
			}
		}
	}
}

// addPG adds what certmail on PostgreSQL spent per unit of work (a
// message, an operation) on a run: the database's transactions, the
// nodes' CPU and the database's CPU. Other servers have no such rows.
func (b *bench) addPG(workload, prefix, unit string, s *server, u usage, n float64) {
	if u.PG == nil || n <= 0 {
		return
	}
	b.results.add(workload, prefix+" PostgreSQL transactions per "+unit, s.name, float64(u.PG.Xacts)/n, lower)
	b.results.add(workload, prefix+" certmail nodes' CPU per "+unit+" (ms)", s.name, u.PG.NodeCPU*1000/n, lower)
	b.results.add(workload, prefix+" PostgreSQL CPU per "+unit+" (ms)", s.name, u.PG.DBCPU*1000/n, lower)
}

func (b *bench) runMixWorkload() {
	o := b.o
	b.notes = append(b.notes, fmt.Sprintf("Session mix: %d clients, one user each, %s per round; each session runs %s, against an INBOX of about %d messages; "+
		"then %s more of the same sessions, each with COMPRESS=DEFLATE right after LOGIN (Dovecot with its imap_zlib plugin; the client sends stored DEFLATE blocks), "+
		"counting the bytes from the server on the wire and the server's CPU (user+sys) per operation.",
		o.mixC, o.mixDur, strings.Join(opNames, ", "), o.mixSeed, o.mixDur))
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			b.logf("session mix round %d on %s", r+1, s.name)
			var res *mixResult
			u, ok := b.measure("mix", r, s, func() error {
				var err error
				res, err = runMix(s.imapAt, b.users.mix, password, o.mixDur, o.seed+uint64(r), false)
				return err
			})
			if ok {
				b.logf("  %.0f ops/s, %d sessions, p99 %.1f ms", res.opsPerSec(), res.sessions, ms(percentile(res.lat, 99)))
				b.results.add("mix", "Session mix (ops/s)", s.name, res.opsPerSec(), higher)
				b.results.add("mix", "Session mix latency p50 (ms)", s.name, ms(percentile(res.lat, 50)), lower)
				b.results.add("mix", "Session mix latency p90 (ms)", s.name, ms(percentile(res.lat, 90)), lower)
				b.results.add("mix", "Session mix latency p99 (ms)", s.name, ms(percentile(res.lat, 99)), lower)
				b.results.add("mix", "Session mix CPU per operation (ms)", s.name, u.CPU*1000/float64(res.ops), lower)
				b.addPG("mix", "Session mix", "operation", s, u, float64(res.ops))
				b.results.add("mix", "Session mix from the server per session (KB)", s.name, res.kbPerSession(), lower)
				for _, name := range opNames {
					b.results.addDetail("mix", "  "+name+" p50 / p99 (ms)", s.name,
						ms(percentile(res.perOp[name], 50)), ms(percentile(res.perOp[name], 99)))
				}
			}
			// The same sessions with COMPRESS=DEFLATE after LOGIN (RFC
			// 4978; Dovecot with its imap_zlib plugin): what it saves on
			// the wire and costs the server's CPU.
			b.logf("session mix with COMPRESS=DEFLATE round %d on %s", r+1, s.name)
			u, ok = b.measure("mix-compress", r, s, func() error {
				var err error
				res, err = runMix(s.imapAt, b.users.mix, password, o.mixDur, o.seed+uint64(r), true)
				return err
			})
			if ok {
				b.logf("  %.0f ops/s, %d sessions, %.1f KB from the server per session", res.opsPerSec(), res.sessions, res.kbPerSession())
				b.results.add("mix-compress", "Session mix with COMPRESS (ops/s)", s.name, res.opsPerSec(), higher)
				b.results.add("mix-compress", "Session mix with COMPRESS, CPU per operation (ms)", s.name, u.CPU*1000/float64(res.ops), lower)
				b.addPG("mix-compress", "Session mix with COMPRESS,", "operation", s, u, float64(res.ops))
				b.results.add("mix-compress", "Session mix with COMPRESS, from the server per session (KB)", s.name, res.kbPerSession(), lower)
			}
		}
	}
}

func (b *bench) runLargeWorkload() {
	o := b.o
	b.notes = append(b.notes, fmt.Sprintf("Large mailbox: one INBOX of %d messages (1–8 KB, filled over LMTP from %d connections), the older half \\Seen; "+
		"each round a new session times SELECT and UID SEARCH UNSEEN %d times each, UID FETCH 1:* (FLAGS) and UID SEARCH TEXT %q (in 1%% of the bodies) %d times each, the median counting; "+
		"then UID SORT (REVERSE ARRIVAL), UID SORT (SUBJECT) and UID THREAD REFERENCES (RFC 5256) ALL, each once untimed (the first sort of a mailbox fills a server's sort data) and then %d times.",
		o.largeM, o.largeC, largeQuickReps, searchWord, largeSlowReps, largeSlowReps))
	for _, s := range b.servers {
		b.logf("large mailbox: filling %s with %d messages", s.name, o.largeM)
		var elapsed time.Duration
		_, ok := b.measure("large-fill", 0, s, func() error {
			var err error
			elapsed, err = populateLarge(s, b.bigUser, password, o.largeM, o.largeC, o.seed+7)
			return err
		})
		if !ok {
			continue
		}
		rate := float64(o.largeM) / elapsed.Seconds()
		b.logf("  %.0f msgs/s", rate)
		b.results.add("large-fill", "Large mailbox fill over LMTP (msgs/s)", s.name, rate, higher)
		// A process's first SELECT of the mailbox (certmail loads its
		// index from the store, Badger's or PostgreSQL's): certmail is
		// restarted first; Dovecot, which reads its index files in each
		// new session anyway, is timed in a new session. Once (it needs
		// a restart), and right after the server's own fill: timed
		// after the next server's 15-minute fill, the first server's
		// files had gone cold (this machine hands idle page cache back
		// to its host) and its load read the disk (344-781 ms where
		// 188 ms right after).
		d, err := firstSelect(s, b.bigUser, password, o.largeM)
		if err != nil {
			b.logf("large mailbox: first SELECT on %s: %v", s.name, err)
			continue
		}
		b.logf("large mailbox: first SELECT on %s after a restart: %.0f ms", s.name, ms(d))
		b.results.add("large", "Large mailbox first SELECT after the server starts (ms)", s.name, ms(d), lower)
	}
	b.notes = append(b.notes, "Large mailbox first SELECT: once, right after the server's own fill, certmail (its first node) restarted first, so that it loads the mailbox's index from the store; Dovecot, which keeps no index in memory between sessions, in a new session.")
	wantText := expectedText(o.largeM)
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			b.logf("large mailbox round %d on %s", r+1, s.name)
			var res *largeResult
			_, ok := b.measure("large", r, s, func() error {
				var err error
				if res, err = runLarge(s, b.bigUser, password); err != nil {
					return err
				}
				if res.exists != o.largeM || res.flags != o.largeM || res.unseen != o.largeM-o.largeM/2 || res.text != wantText {
					return fmt.Errorf("wrong answers: %d messages, FLAGS for %d, %d UNSEEN, %d with TEXT (want %d, %d, %d, %d)",
						res.exists, res.flags, res.unseen, res.text, o.largeM, o.largeM, o.largeM-o.largeM/2, wantText)
				}
				if res.sortArrival != o.largeM || res.sortSubject != o.largeM || res.threaded != o.largeM {
					return fmt.Errorf("wrong answers: SORT (REVERSE ARRIVAL) of %d, SORT (SUBJECT) of %d, THREAD of %d messages (want %d)",
						res.sortArrival, res.sortSubject, res.threaded, o.largeM)
				}
				return nil
			})
			if ok {
				for _, op := range largeOps {
					b.results.add("large", "Large mailbox "+op+" (ms)", s.name, ms(res.times[op]), lower)
				}
				for _, op := range []string{"UID SORT (REVERSE ARRIVAL)", "UID SORT (SUBJECT)", "UID THREAD REFERENCES"} {
					b.results.add("large", "Large mailbox "+op+", server CPU (ms)", s.name, res.cpu[op]*1000, lower)
				}
				b.logf("  SELECT %.2f ms, FETCH %.0f ms, UNSEEN %.0f ms, TEXT %.0f ms, SORT ARRIVAL %.0f ms, SORT SUBJECT %.0f ms, THREAD %.0f ms", ms(res.times["SELECT"]),
					ms(res.times["UID FETCH 1:* (FLAGS)"]), ms(res.times["UID SEARCH UNSEEN"]), ms(res.times["UID SEARCH TEXT"]),
					ms(res.times["UID SORT (REVERSE ARRIVAL)"]), ms(res.times["UID SORT (SUBJECT)"]), ms(res.times["UID THREAD REFERENCES"]))
			}
		}
	}
}

func (b *bench) runIdleWorkload() {
	o := b.o
	compressed := "none compressed"
	if o.idleCompress > 0 {
		compressed = fmt.Sprintf("%d of them (1 in %d) with COMPRESS=DEFLATE after LOGIN (Dovecot with its imap_zlib plugin)", (o.idleK+o.idleCompress-1)/o.idleCompress, o.idleCompress)
	}
	b.notes = append(b.notes, fmt.Sprintf("Idle: %d sessions spread over the %d session-mix users, each LOGIN, SELECT INBOX, IDLE, %s; RSS read from /proc 1 s after the last one started and again after %s "+
		"(Dovecot: summed over all its processes, which counts shared pages once per process); then one message per user, and the time until every session has seen it (up to %s).",
		o.idleK, len(b.users.mix), compressed, o.idleSettle, o.idleWake))
	// Each Dovecot imap process watches its mailbox with inotify; past the
	// per-user instance limit the rest fall back to polling every 30 s and
	// miss the wake-up measurement.
	if b.dovecot != "" {
		if raw, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && n < o.idleK+64 {
				b.notes = append(b.notes, fmt.Sprintf("fs.inotify.max_user_instances is %d, fewer than Dovecot's %d IDLE processes need: "+
					"the others poll instead (raise it with `sysctl -w fs.inotify.max_user_instances=%d` for a fair wake-up figure).", n, o.idleK, 2*o.idleK))
			}
		}
	}
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			b.logf("idle round %d on %s: %d sessions", r+1, s.name, o.idleK)
			var res *idleResult
			_, ok := b.measure("idle", r, s, func() error {
				var err error
				res, err = runIdle(s, b.users.mix, password, o.idleK, o.idleCompress, o.idleSettle, o.idleWake, func() {
					if b.o.cpuprofile != "" {
						s.saveHeap(filepath.Join(b.o.cpuprofile, fmt.Sprintf("idle-heap-r%d.pprof", r+1)))
						s.saveMaps(filepath.Join(b.o.cpuprofile, fmt.Sprintf("idle-maps-%s-r%d.txt", s.name, r+1)))
					}
				})
				return err
			})
			if ok {
				b.logf("  RSS %.1f MB (anon %.1f, file %.1f, shmem %.1f; before the sessions %.1f, 1 s after %.1f) in %d processes, set up in %s, %d/%d woken in %s",
					mb(res.mem.rss), mb(res.mem.anon), mb(res.mem.file), mb(res.mem.shmem), mb(res.base.rss), mb(res.early.rss), res.procs,
					res.setup.Round(time.Millisecond), res.woken, o.idleK, res.wake.Round(time.Millisecond))
				b.results.add("idle", fmt.Sprintf("Idle: RSS with %d IDLE sessions, after %s (MB)", o.idleK, o.idleSettle), s.name, mb(res.mem.rss), lower)
				b.results.add("idle", "Idle: of which anonymous (MB)", s.name, mb(res.mem.anon), lower)
				b.results.add("idle", "Idle: of which file-backed and shared (MB)", s.name, mb(res.mem.file+res.mem.shmem), lower)
				b.results.add("idle", "Idle: RSS 1 s after the last session started (MB)", s.name, mb(res.early.rss), lower)
				b.results.add("idle", "Idle: sessions that saw new mail", s.name, float64(res.woken), higher)
				if res.woken == o.idleK {
					b.results.add("idle", "Idle: new mail seen by every session (ms)", s.name, ms(res.wake), lower)
				} else {
					b.results.add("idle", "Idle: new mail seen by every session (ms)", s.name, -1, lower)
				}
			}
		}
	}
}

func (b *bench) runResyncWorkload() {
	o := b.o
	if o.resyncM < o.rounds*(o.resyncFlags+o.resyncExpunges) {
		b.failures = append(b.failures, fmt.Sprintf("resync: %d messages are too few for %d rounds of %d flag changes and %d expunges",
			o.resyncM, o.rounds, o.resyncFlags, o.resyncExpunges))
		return
	}
	b.notes = append(b.notes, fmt.Sprintf("Resync: a client knows an INBOX of %d messages (1–8 KB, filled over LMTP) as of some MODSEQ; each round another session makes %d flag changes (one UID STORE each) and %d expunges, "+
		"then the client reconnects (connect, LOGIN, CAPABILITY) and becomes exact again: with QRESYNC by ENABLE QRESYNC and one SELECT INBOX (QRESYNC (uidvalidity modseq)) (RFC 7162 section 3.2.5), "+
		"without by SELECT INBOX and UID FETCH 1:* (FLAGS); time and bytes both ways count until the view is exact, which is checked against the changes made.",
		o.resyncM, o.resyncFlags, o.resyncExpunges))
	states := map[*server]*resyncState{}
	for _, s := range b.servers {
		b.logf("resync: filling %s with %d messages", s.name, o.resyncM)
		_, ok := b.measure("resync-fill", 0, s, func() error {
			rcpt := b.rsUser + "@example.org"
			// One node: the resync client and the other session meet on it.
			if _, _, err := deliverAll(func(int) string { return s.lmtp }, o.largeC, o.resyncM, func(i int) (string, []byte) {
				return rcpt, message(o.seed+11, i, rcpt, small)
			}); err != nil {
				return err
			}
			v, qresync, _, err := fullView(s.imap, b.rsUser, password)
			if err != nil {
				return err
			}
			if len(v.flags) != o.resyncM || v.exists != o.resyncM {
				return fmt.Errorf("INBOX has %d messages (EXISTS %d) after delivering %d", len(v.flags), v.exists, o.resyncM)
			}
			states[s] = &resyncState{model: v.clone(), known: v, qresync: qresync}
			return nil
		})
		if !ok {
			continue
		}
		if !states[s].qresync {
			b.results.unsupported("resync", resyncQTime, s.name)
			b.results.unsupported("resync", resyncQKB, s.name)
			b.notes = append(b.notes, fmt.Sprintf("Resync: %s does not offer QRESYNC (not in its CAPABILITY): not supported.", s.name))
			b.logf("  %s does not offer QRESYNC: resync with QRESYNC not supported", s.name)
		}
	}
	for r := 0; r < o.rounds; r++ {
		for _, s := range b.order(r) {
			st := states[s]
			if st == nil {
				continue
			}
			b.logf("resync round %d on %s", r+1, s.name)
			got := map[string]float64{}
			_, ok := b.measure("resync", r, s, func() error {
				return runResyncRound(s, st, b.rsUser, password, o.resyncFlags, o.resyncExpunges, r, o.seed+13,
					func(name string, v float64) { got[name] = v })
			})
			if !ok {
				continue
			}
			for _, name := range []string{resyncQTime, resyncQKB, resyncFTime, resyncFKB} {
				if v, ok := got[name]; ok {
					b.results.add("resync", name, s.name, v, lower)
				}
			}
			if st.qresync {
				b.logf("  QRESYNC %.1f ms, %.1f KB; full %.1f ms, %.1f KB (%.1f× the time, %.1f× the bytes)",
					got[resyncQTime], got[resyncQKB], got[resyncFTime], got[resyncFKB], got[resyncFTime]/got[resyncQTime], got[resyncFKB]/got[resyncQKB])
			} else {
				b.logf("  full %.1f ms, %.1f KB (QRESYNC not supported)", got[resyncFTime], got[resyncFKB])
			}
		}
	}
	// The comparison across rows: certmail without QRESYNC
	// against certmail with it and Dovecot with it.
	cmFull := median(b.results.get("resync", resyncFTime, lower).vals["certmail"])
	cmFullKB := median(b.results.get("resync", resyncFKB, lower).vals["certmail"])
	for _, s := range b.servers {
		q := b.results.get("resync", resyncQTime, lower).vals[s.name]
		qkb := b.results.get("resync", resyncQKB, lower).vals[s.name]
		if len(q) == 0 || cmFull == 0 {
			continue
		}
		b.notes = append(b.notes, fmt.Sprintf("Resync: certmail without QRESYNC takes %.1f× the time and %.1f× the bytes of %s with QRESYNC.",
			cmFull/median(q), cmFullKB/median(qkb), s.name))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mb(kb int64) float64 { return float64(kb) / 1024 }

// machine describes where the benchmark ran.
func (b *bench) machine() []string {
	var out []string
	out = append(out, fmt.Sprintf("date: %s", time.Now().UTC().Format("2006-01-02 15:04 MST")))
	out = append(out, fmt.Sprintf("cpus: %d (%s)", runtime.NumCPU(), cpuModel()))
	out = append(out, fmt.Sprintf("memory: %s", memTotal()))
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(k)))
	}
	out = append(out, "go: "+runtime.Version())
	out = append(out, fmt.Sprintf("load average (1, 5, 15 min): %s at the start, %s at the end", b.loadStart, loadAvg()))
	if b.dovecot != "" {
		out = append(out, "dovecot: "+b.dovecot)
	}
	out = append(out, "command: "+strings.Join(append([]string{"certbench"}, os.Args[1:]...), " "))
	return out
}

// loadAvg is the machine's load average: other work on the machine
// skews every wall-clock figure.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}
