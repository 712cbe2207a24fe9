// Package progress shows how far a long operation (backup, restore) has
// got: on a terminal a bar redrawn in place with bytes, rate and ETA; in a
// log or a pipe a plain line now and then. A dependency would add colour
// and spinners; this needs neither.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Options configure a Meter.
type Options struct {
	// Total is the number of bytes expected; 0 means unknown (no
	// percentage or ETA). Estimated makes it "~" an estimate: the bar
	// stops short of full until Done.
	Total     int64
	Estimated bool
	// Terminal draws a bar redrawn in place (\r); otherwise plain lines.
	Terminal bool
	// Interval between plain lines; default 10 s. A terminal is redrawn
	// at most every 200 ms.
	Interval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Width of the bar in characters; default 24.
	Width int
}

// Meter counts bytes and shows them. Its methods are safe for concurrent
// use.
type Meter struct {
	w    io.Writer
	what string
	o    Options

	mu       sync.Mutex
	start    time.Time
	lastDraw time.Time
	done     int64
	drawn    bool // a terminal line is on screen
}

// New starts a Meter for what (e.g. "backup") writing to w.
func New(w io.Writer, what string, o Options) *Meter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Width <= 0 {
		o.Width = 24
	}
	now := o.Now()
	return &Meter{w: w, what: what, o: o, start: now, lastDraw: now}
}

// Write counts len(p) bytes, so that a Meter can sit in an io.MultiWriter
// or io.TeeReader.
func (m *Meter) Write(p []byte) (int, error) {
	m.Add(int64(len(p)))
	return len(p), nil
}

// Add counts n more bytes and shows them if it is time to.
func (m *Meter) Add(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done += n
	now := m.o.Now()
	every := m.o.Interval
	if m.o.Terminal {
		every = 200 * time.Millisecond
	}
	if now.Sub(m.lastDraw) < every {
		return
	}
	m.lastDraw = now
	if m.o.Terminal {
		fmt.Fprintf(m.w, "\r%s\x1b[K", m.line(now, false))
		m.drawn = true
		return
	}
	fmt.Fprintf(m.w, "%s\n", m.line(now, false))
}

// Done ends the display: a terminal's bar is drawn full and the line
// ended; plain output adds nothing (the caller prints its summary). It
// returns the bytes counted and the time taken.
func (m *Meter) Done() (int64, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.o.Now()
	if m.drawn {
		fmt.Fprintf(m.w, "\r%s\x1b[K\n", m.line(now, true))
		m.drawn = false
	}
	return m.done, now.Sub(m.start)
}

// Abort ends the display of an operation that failed: a terminal's line
// is left as it was drawn last (not full) and ended, so that the error
// printed next starts on a line of its own.
func (m *Meter) Abort() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.drawn {
		fmt.Fprintln(m.w)
		m.drawn = false
	}
}

// line is the progress as one line; final draws a finished bar.
func (m *Meter) line(now time.Time, final bool) string {
	elapsed := now.Sub(m.start)
	rate := float64(0)
	if elapsed > 0 {
		rate = float64(m.done) / elapsed.Seconds()
	}
	total := m.o.Total
	if final {
		total = m.done
	}
	frac := -1.0
	if total > 0 {
		frac = float64(m.done) / float64(total)
		if !final {
			// Not done until Done, even past an estimate.
			frac = min(frac, 0.99)
		}
		frac = min(frac, 1)
	}
	of := ""
	if total > 0 {
		approx := ""
		if m.o.Estimated && !final {
			approx = "~"
		}
		of = " of " + approx + Bytes(total)
	}
	eta := ""
	if frac >= 0 && rate > 0 && !final {
		left := max(float64(total-m.done), 0) / rate
		eta = ", ETA " + (time.Duration(left * float64(time.Second))).Round(time.Second).String()
	}
	if !m.o.Terminal {
		pct := ""
		if frac >= 0 {
			pct = fmt.Sprintf(" (%d%%)", int(frac*100))
		}
		return fmt.Sprintf("%s: %s%s%s, %s%s", m.what, Bytes(m.done), of, pct, Rate(rate), eta)
	}
	bar := ""
	if frac >= 0 {
		full := int(frac * float64(m.o.Width))
		bar = fmt.Sprintf(" [%s%s] %3d%%", strings.Repeat("=", full), strings.Repeat(" ", m.o.Width-full), int(frac*100))
	}
	return fmt.Sprintf("%s %s%s%s  %s%s", m.what, Bytes(m.done), of, bar, Rate(rate), eta)
}

// Bytes is n in binary units as people read them: 512 B, 1.5 KiB,
// 12.3 MiB, 1.02 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	prec := 1
	if v >= 100 {
		prec = 0
	}
	return fmt.Sprintf("%.*f %ciB", prec, v, "KMGTPE"[i])
}

// Rate is bytes per second in the units of Bytes.
func Rate(bytesPerSecond float64) string {
	return Bytes(int64(bytesPerSecond)) + "/s"
}

// Elapsed is a duration as a summary prints it: to the tenth of a second
// under a minute, to the second above.
func Elapsed(d time.Duration) string {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
