package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

type direction int

const (
	higher direction = iota // more is better (rates)
	lower                   // less is better (times, memory)
)

type metric struct {
	workload, name string
	dir            direction
	vals           map[string][]float64
	// detail metrics carry a second value (p99 beside p50).
	detail bool
	vals2  map[string][]float64
	// unsup: servers that lack what the metric measures (a capability).
	unsup map[string]bool
}

type results struct {
	servers []string
	metrics []*metric
	byKey   map[string]*metric
	use     map[string]map[string][]usage // workload → server → runs
	order   []string                      // workloads in the order first seen
}

func newResults(servers []string) *results {
	return &results{servers: servers, byKey: map[string]*metric{}, use: map[string]map[string][]usage{}}
}

func (r *results) get(workload, name string, dir direction) *metric {
	k := workload + "\x00" + name
	m := r.byKey[k]
	if m == nil {
		m = &metric{workload: workload, name: name, dir: dir, vals: map[string][]float64{}, vals2: map[string][]float64{}}
		r.byKey[k] = m
		r.metrics = append(r.metrics, m)
	}
	return m
}

func (r *results) add(workload, name, server string, v float64, dir direction) {
	m := r.get(workload, name, dir)
	m.vals[server] = append(m.vals[server], v)
}

// unsupported marks a metric "not supported" for a server: no figure,
// and no failure either.
func (r *results) unsupported(workload, name, server string) {
	m := r.get(workload, name, lower)
	if m.unsup == nil {
		m.unsup = map[string]bool{}
	}
	m.unsup[server] = true
}

func (r *results) addDetail(workload, name, server string, v, v2 float64) {
	m := r.get(workload, name, lower)
	m.detail = true
	m.vals[server] = append(m.vals[server], v)
	m.vals2[server] = append(m.vals2[server], v2)
}

func (r *results) usage(workload, server string, u usage) {
	if r.use[workload] == nil {
		r.use[workload] = map[string][]usage{}
		r.order = append(r.order, workload)
	}
	r.use[workload][server] = append(r.use[workload][server], u)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtNum(v float64) string {
	switch {
	case v < 0:
		return "timeout"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// target is the goal for a metric on a server, in terms of the
// ratio (certmail's advantage) or, for memory, certmail's own figure.
// certmail on PostgreSQL has issue 13's: session mix and LMTP ingest at
// least Dovecot's rate, SELECT of the large mailbox no slower.
func target(m *metric, server string) (string, func(ratio, cm float64) bool) {
	atLeast1 := func(r, _ float64) bool { return r >= 1.0 }
	if strings.HasPrefix(server, "certmail-pg") {
		switch m.name {
		case "Session mix (ops/s)", "LMTP ingest (msgs/s)", "Large mailbox SELECT (ms)":
			return "≥ 1.0×", atLeast1
		}
		return "", nil
	}
	switch {
	case m.name == "LMTP ingest (msgs/s)", m.name == imaptestRate:
		return "≥ 1.5×", func(r, _ float64) bool { return r >= 1.5 }
	case m.name == "Session mix (ops/s)", m.name == "Session mix latency p99 (ms)", m.workload == "large",
		m.name == resyncQTime, m.name == resyncQKB:
		return "≥ 1.0×", atLeast1
	case strings.HasPrefix(m.name, "Idle: RSS with"):
		return "certmail < 300 MB", func(_, cm float64) bool { return cm < 300 }
	}
	return "", nil
}

// report prints the tables in Markdown.
func (b *bench) report(w io.Writer) {
	r := b.results
	if r == nil {
		return
	}
	fmt.Fprintln(w)
	for _, line := range b.machine() {
		fmt.Fprintln(w, "    "+line)
	}
	fmt.Fprintln(w)
	// Ratios are each certmail's against the reference: Dovecot, or
	// without it Badger-certmail for certmail on PostgreSQL.
	ref := ""
	var cms []string
	for _, s := range r.servers {
		if s == "dovecot" {
			ref = s
		} else {
			cms = append(cms, s)
		}
	}
	if ref == "" && len(cms) > 1 {
		ref, cms = cms[0], cms[1:]
	}
	dv := ref // the Dovecot-like column of the resources table
	refName := "Dovecot"
	if ref != "dovecot" {
		refName = ref + " (Badger)"
		dv = ""
	}
	if ref != "" {
		fmt.Fprintf(w, "Median of %d round(s). Ratio: certmail's advantage (its rate ÷ %s's, or %s's time or memory ÷ certmail's); above 1 certmail is better.\n\n", b.o.rounds, refName, refName)
	} else {
		fmt.Fprintf(w, "Median of %d round(s).\n\n", b.o.rounds)
	}
	fmt.Fprintf(w, "| metric |")
	for _, s := range cms {
		fmt.Fprintf(w, " %s |", s)
	}
	cols := len(cms)
	if ref != "" {
		fmt.Fprintf(w, " %s |", ref)
		cols++
		if len(cms) == 1 {
			fmt.Fprintf(w, " ratio | target |")
		} else {
			for _, s := range cms {
				fmt.Fprintf(w, " %s ratio |", s)
			}
			fmt.Fprintf(w, " target |")
		}
		cols += len(cms) + 1
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| --- |%s", strings.Repeat(" ---: |", cols-b2i(ref != "")))
	if ref != "" {
		fmt.Fprintf(w, " --- |")
	}
	fmt.Fprintln(w)
	for _, m := range r.metrics {
		if m.detail {
			continue
		}
		fmt.Fprintf(w, "| %s |", m.name)
		for _, s := range cms {
			fmt.Fprintf(w, " %s |", cell(m, s))
		}
		if ref == "" {
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, " %s |", cell(m, ref))
		d := median(m.vals[ref])
		var verdicts []string
		for _, cm := range cms {
			c := median(m.vals[cm])
			ratio := "—"
			var rv float64
			if len(m.vals[cm]) > 0 && len(m.vals[ref]) > 0 && c > 0 && d > 0 {
				if m.dir == higher {
					rv = c / d
				} else {
					rv = d / c
				}
				ratio = fmt.Sprintf("%.2f", rv)
			}
			fmt.Fprintf(w, " %s |", ratio)
			t, ok := target(m, cm)
			if t == "" || ref != "dovecot" { // the issues' targets are against Dovecot
				continue
			}
			verdict := "missed"
			if ratio != "—" && ok(rv, c) || strings.HasPrefix(m.name, "Idle: RSS with") && len(m.vals[cm]) > 0 && ok(0, c) {
				verdict = "met"
			}
			if len(m.vals[cm]) == 0 && m.unsup[cm] {
				verdict = "not supported"
			}
			verdict = t + ": " + verdict
			if len(cms) > 1 {
				verdict = cm + " " + verdict
			}
			verdicts = append(verdicts, verdict)
		}
		tgt := strings.Join(verdicts, ", ")
		fmt.Fprintf(w, " %s |\n", tgt)
	}

	// Per-operation latencies of the session mix.
	var details []*metric
	for _, m := range r.metrics {
		if m.detail {
			details = append(details, m)
		}
	}
	if len(details) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Session mix, per operation (median over rounds of each round's p50 / p99, ms):")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "| operation |")
		for _, s := range r.servers {
			fmt.Fprintf(w, " %s |", s)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "| --- |%s\n", strings.Repeat(" ---: |", len(r.servers)))
		for _, m := range details {
			fmt.Fprintf(w, "| %s |", strings.TrimSpace(strings.TrimSuffix(m.name, " p50 / p99 (ms)")))
			for _, s := range r.servers {
				if len(m.vals[s]) == 0 {
					fmt.Fprintf(w, " — |")
					continue
				}
				fmt.Fprintf(w, " %s / %s |", fmtNum(median(m.vals[s])), fmtNum(median(m.vals2[s])))
			}
			fmt.Fprintln(w)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Resources per workload run (CPU seconds: median per run, user+system, Dovecot's child processes included; peak RSS: highest over the runs, Dovecot summed over its processes):")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| workload |")
	for _, s := range r.servers {
		fmt.Fprintf(w, " %s CPU s | %s peak RSS MB |", s, s)
	}
	if dv != "" {
		fmt.Fprintf(w, " dovecot processes (max) |")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| --- |%s", strings.Repeat(" ---: | ---: |", len(r.servers)))
	if dv != "" {
		fmt.Fprintf(w, " ---: |")
	}
	fmt.Fprintln(w)
	for _, wl := range r.order {
		fmt.Fprintf(w, "| %s |", wl)
		for _, s := range r.servers {
			runs := r.use[wl][s]
			if len(runs) == 0 {
				fmt.Fprintf(w, " — | — |")
				continue
			}
			var cpu []float64
			var peak int64
			for _, u := range runs {
				cpu = append(cpu, u.CPU)
				peak = max(peak, u.PeakRSS)
			}
			fmt.Fprintf(w, " %s | %s |", fmtNum(median(cpu)), fmtNum(float64(peak)/1024))
		}
		if dv != "" {
			n := 0
			for _, u := range r.use[wl][dv] {
				n = max(n, u.Procs)
			}
			fmt.Fprintf(w, " %d |", n)
		}
		fmt.Fprintln(w)
	}
	b.reportPG(w)
	if len(b.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range b.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func cell(m *metric, server string) string {
	vs := m.vals[server]
	if len(vs) == 0 && m.unsup[server] {
		return "not supported"
	}
	if len(vs) == 0 {
		return "—"
	}
	return fmtNum(median(vs))
}

// reportPG prints, per workload run, what certmail on PostgreSQL cost
// the database: transactions (each at least one round trip) and CPU,
// beside its nodes' CPU.
func (b *bench) reportPG(w io.Writer) {
	r := b.results
	var pgs []string
	for _, s := range b.servers {
		if s.pg != nil {
			pgs = append(pgs, s.name)
		}
	}
	if len(pgs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "PostgreSQL per workload run (median per run: the database's transactions, xact_commit + xact_rollback; CPU seconds of the certmail nodes and of PostgreSQL's postmaster and backends):")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| workload |")
	for _, s := range pgs {
		fmt.Fprintf(w, " %s transactions | %s nodes CPU s | %s PostgreSQL CPU s |", s, s, s)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| --- |%s\n", strings.Repeat(" ---: | ---: | ---: |", len(pgs)))
	for _, wl := range r.order {
		fmt.Fprintf(w, "| %s |", wl)
		for _, s := range pgs {
			var x, nc, dc []float64
			for _, u := range r.use[wl][s] {
				if u.PG != nil {
					x = append(x, float64(u.PG.Xacts))
					nc = append(nc, u.PG.NodeCPU)
					dc = append(dc, u.PG.DBCPU)
				}
			}
			if len(x) == 0 {
				fmt.Fprintf(w, " — | — | — |")
				continue
			}
			fmt.Fprintf(w, " %s | %s | %s |", fmtNum(median(x)), fmtNum(median(nc)), fmtNum(median(dc)))
		}
		fmt.Fprintln(w)
	}
}
