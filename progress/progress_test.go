package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clock is a fake time.Now that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestPlainLines: away from a terminal, one plain line per interval with
// bytes, total, percentage, rate and ETA, no \r or escape codes, and
// nothing more at Done (the caller prints its summary).
func TestPlainLines(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	var out bytes.Buffer
	m := New(&out, "backup", Options{Total: 100 << 20, Estimated: true, Now: c.now, Interval: 10 * time.Second})
	for range 10 {
		c.t = c.t.Add(time.Second)
		m.Add(2 << 20)
	}
	c.t = c.t.Add(time.Second)
	m.Add(2 << 20) // 22 MiB in 11 s, the first line due at 10 s
	for range 10 {
		c.t = c.t.Add(time.Second)
		m.Add(2 << 20)
	}
	n, took := m.Done()
	want := "backup: 20.0 MiB of ~100 MiB (20%), 2.0 MiB/s, ETA 40s\n" +
		"backup: 40.0 MiB of ~100 MiB (40%), 2.0 MiB/s, ETA 30s\n"
	if out.String() != want {
		t.Errorf("output:\n%q\nwant\n%q", out.String(), want)
	}
	if n != 42<<20 || took != 21*time.Second {
		t.Errorf("Done = %d, %v", n, took)
	}
	// Past an estimate, not 100% until done.
	m.Add(100 << 20)
	if l := m.line(c.t.Add(20*time.Second), false); !strings.Contains(l, "(99%)") || !strings.Contains(l, "ETA 0s") {
		t.Errorf("past the estimate: %q", l)
	}
}

// TestTerminalBar: on a terminal the bar is redrawn in place, at most
// every 200 ms, and Done draws it full and ends the line.
func TestTerminalBar(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	var out bytes.Buffer
	m := New(&out, "restore", Options{Total: 4 << 20, Terminal: true, Now: c.now, Width: 10})
	m.Add(1 << 20) // at once: not drawn
	c.t = c.t.Add(time.Second)
	m.Add(1 << 20)
	c.t = c.t.Add(100 * time.Millisecond)
	m.Add(1 << 20) // too soon
	c.t = c.t.Add(time.Second)
	m.Add(1 << 20)
	m.Done()
	lines := strings.Split(out.String(), "\r")
	if len(lines) != 4 || lines[0] != "" {
		t.Fatalf("draws: %q", out.String())
	}
	if lines[1] != "restore 2.0 MiB of 4.0 MiB [=====     ]  50%  2.0 MiB/s, ETA 1s\x1b[K" {
		t.Errorf("first draw: %q", lines[1])
	}
	if lines[3] != "restore 4.0 MiB of 4.0 MiB [==========] 100%  1.9 MiB/s\x1b[K\n" {
		t.Errorf("final draw: %q", lines[3])
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 12_900_000: "12.3 MiB",
		150 << 20: "150 MiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Elapsed(1234 * time.Millisecond); got != "1.2s" {
		t.Errorf("Elapsed = %q", got)
	}
}

// TestAbort: a failed operation's bar is not drawn full; its line ends.
func TestAbort(t *testing.T) {
	c := &clock{time.Unix(1000, 0)}
	var out bytes.Buffer
	m := New(&out, "restore", Options{Total: 4 << 20, Terminal: true, Now: c.now, Width: 10})
	c.t = c.t.Add(time.Second)
	m.Add(1 << 20)
	m.Abort()
	if out.String() != "\rrestore 1.0 MiB of 4.0 MiB [==        ]  25%  1.0 MiB/s, ETA 3s\x1b[K\n" {
		t.Errorf("aborted: %q", out.String())
	}
	out.Reset()
	New(&out, "x", Options{Terminal: true, Now: c.now}).Abort()
	if out.Len() != 0 {
		t.Errorf("abort before any draw wrote %q", out.String())
	}
}
