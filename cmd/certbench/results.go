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

// target is the goal for a metric, in terms of the ratio
// (certmail's advantage) or, for memory, certmail's own figure.
func target(m *metric) (string, func(ratio, cm float64) bool) {
	switch {
	case m.name == "LMTP ingest (msgs/s)", m.name == imaptestRate:
		return "≥ 1.5×", func(r, _ float64) bool { return r >= 1.5 }
	case m.name == "Session mix (ops/s)", m.name == "Session mix latency p99 (ms)", m.workload == "large",
		m.name == resyncQTime, m.name == resyncQKB:
		return "≥ 1.0×", func(r, _ float64) bool { return r >= 1.0 }
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
	cm, dv := "certmail", ""
	if len(r.servers) > 1 {
		dv = r.servers[1]
	}
	fmt.Fprintf(w, "Median of %d round(s). Ratio: certmail's advantage (its rate ÷ Dovecot's, or Dovecot's time or memory ÷ certmail's); above 1 certmail is better.\n\n", b.o.rounds)
	if dv != "" {
		fmt.Fprintln(w, "| metric | certmail | dovecot | ratio | target |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- |")
	} else {
		fmt.Fprintln(w, "| metric | certmail |")
		fmt.Fprintln(w, "| --- | ---: |")
	}
	for _, m := range r.metrics {
		if m.detail {
			continue
		}
		c := median(m.vals[cm])
		if dv == "" {
			fmt.Fprintf(w, "| %s | %s |\n", m.name, cell(m, cm))
			continue
		}
		d := median(m.vals[dv])
		ratio := "—"
		var rv float64
		if len(m.vals[cm]) > 0 && len(m.vals[dv]) > 0 && c > 0 && d > 0 {
			if m.dir == higher {
				rv = c / d
			} else {
				rv = d / c
			}
			ratio = fmt.Sprintf("%.2f", rv)
		}
		tgt := ""
		if t, ok := target(m); t != "" {
			verdict := "missed"
			if ratio != "—" && ok(rv, c) || strings.HasPrefix(m.name, "Idle: RSS with") && len(m.vals[cm]) > 0 && ok(0, c) {
				verdict = "met"
			}
			if len(m.vals[cm]) == 0 && m.unsup[cm] {
				verdict = "not supported"
			}
			tgt = t + ": " + verdict
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", m.name, cell(m, cm), cell(m, dv), ratio, tgt)
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
	if len(b.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range b.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
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
