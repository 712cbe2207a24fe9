package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Process accounting from /proc: CPU seconds (utime+stime, with the
// children a process has waited for) and resident memory (VmRSS, VmHWM).

const clockTicks = 100 // USER_HZ; 100 on every Linux this runs on

type procStat struct {
	pid, ppid, pgrp int
	// CPU time in clock ticks: own, and of waited-for children.
	utime, stime, cutime, cstime uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	num := func(j int) uint64 { n, _ := strconv.ParseUint(f[j], 10, 64); return n }
	return procStat{
		pid:    pid,
		ppid:   int(num(1)),
		pgrp:   int(num(2)),
		utime:  num(11),
		stime:  num(12),
		cutime: num(13),
		cstime: num(14),
	}, nil
}

// tree returns the roots and every live descendant of them.
func tree(roots []int) []procStat {
	ents, _ := os.ReadDir("/proc")
	children := make(map[int][]procStat)
	own := make(map[int]procStat)
	isRoot := make(map[int]bool)
	for _, r := range roots {
		isRoot[r] = true
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		if isRoot[pid] {
			own[pid] = st
		}
		children[st.ppid] = append(children[st.ppid], st)
	}
	var out []procStat
	for _, r := range roots {
		if st, ok := own[r]; ok {
			out = append(out, st)
		}
	}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// cpuSeconds is the CPU time of root and all its descendants, live or
// reaped (a reaped child's time is in its parent's cutime/cstime).
func cpuSeconds(roots []int) float64 {
	var ticks uint64
	for _, p := range tree(roots) {
		ticks += p.utime + p.stime + p.cutime + p.cstime
	}
	return float64(ticks) / clockTicks
}

// memKB returns the summed VmRSS and VmHWM (kB) of the given processes.
func memKB(procs []procStat) (rss, hwm int64) {
	m := memDetail(procs)
	return m.rss, m.hwm
}

// mem is a memory breakdown in kB, summed over processes: RSS is
// anonymous (heap, stacks) plus file-backed (mapped files: for certmail,
// Badger's memory-mapped tables and value log) plus shared memory.
type mem struct {
	rss, hwm, anon, file, shmem int64
}

func memDetail(procs []procStat) mem {
	var m mem
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				m.rss += n
			case "VmHWM":
				m.hwm += n
			case "RssAnon":
				m.anon += n
			case "RssFile":
				m.file += n
			case "RssShmem":
				m.shmem += n
			}
		}
	}
	return m
}

// resetPeak resets VmHWM of the processes (clear_refs 5), so that a
// workload's peak is its own. Best effort.
func resetPeak(procs []procStat) {
	for _, p := range procs {
		os.WriteFile(filepath.Join("/proc", strconv.Itoa(p.pid), "clear_refs"), []byte("5"), 0)
	}
}

// meter follows one server's CPU and memory over a workload: the
// process trees of its roots (several certmail nodes, or Dovecot's
// master).
type meter struct {
	roots    []int
	cpu0     float64
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	peakRSS  int64 // kB, sampled sum over the process tree
	procsMax int
}

func startMeter(roots []int) *meter {
	procs := tree(roots)
	resetPeak(procs)
	m := &meter{roots: roots, cpu0: cpuSeconds(roots), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			m.sample()
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *meter) sample() {
	procs := tree(m.roots)
	rss, hwm := memKB(procs)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(procs) == 1 && hwm > rss {
		// A single process: VmHWM is the exact peak since resetPeak.
		rss = hwm
	}
	m.peakRSS = max(m.peakRSS, rss)
	m.procsMax = max(m.procsMax, len(procs))
}

// usage is what a server spent on one workload run.
type usage struct {
	CPU     float64 // seconds; certmail on PostgreSQL: its nodes' and the database's
	PeakRSS int64   // kB
	Procs   int     // most processes seen at once
	// PG is certmail on PostgreSQL's share: the database's transactions
	// and CPU, the nodes' CPU.
	PG *pgUsage
}

func (m *meter) finish() usage {
	close(m.stop)
	<-m.done
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return usage{CPU: cpuSeconds(m.roots) - m.cpu0, PeakRSS: m.peakRSS, Procs: m.procsMax}
}

// currentMem is the memory of root's process tree now, and how many
// processes that is.
func currentMem(roots []int) (mem, int) {
	procs := tree(roots)
	return memDetail(procs), len(procs)
}
