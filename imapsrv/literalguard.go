package imapsrv

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// literalGuard sits between a client connection and go-imap's imapserver
// and keeps the data of a literal that imapserver refused from being read
// as commands.
//
// When imapserver refuses a non-synchronizing literal ("{n+}") — an APPEND
// over APPENDLIMIT, anything over 4096 bytes in another command — it
// answers NO [TOOBIG] and goes on reading commands from what follows,
// which is the literal's data: the client has already sent it. An APPEND
// of a message whose lines look like "a1 DELETE Archive" ran those
// commands. RFC 7888 leaves the server two choices, reading and discarding
// the data or closing the connection; this closes it. It also closes the
// connection when imapserver, after a synchronizing literal ("{n}"),
// neither asks for the data nor answers (what it does for a literal over
// 4096 bytes outside APPEND), instead of leaving client and server both
// waiting until the read timeout.
//
// It follows the framing of both directions: client lines, and literals
// announced at their end; server lines (untagged, tagged, continuation
// requests) and the literals in FETCH responses. Client lines are handed
// to imapserver one at a time, so that when it asks for the next one it
// has answered the commands before. After a line that announces a
// literal, imapserver asks for more only once it has decided, and by then
// it has written a tagged response (refused), a continuation request
// (accepted, synchronizing) or nothing (accepted, non-synchronizing, or
// refused silently: imapserver drops its own TOOBIG error for a literal
// over 4096 bytes in any argument but APPEND's message, and reads on).
//
// Once STARTTLS succeeds, the bytes are TLS records and the guard steps
// aside: imapserver wraps the connection in TLS itself, so a session that
// began with STARTTLS is not covered. Plain connections and implicit TLS
// (where the guard wraps the TLS connection) are. Once COMPRESS succeeds
// the guard beneath steps aside the same way, and a new one covers the
// decompressed protocol from there on, after STARTTLS too.
type literalGuard struct {
	net.Conn

	mu sync.Mutex

	// What imapserver wrote: continuation requests and tagged responses
	// so far, whether the last tagged one was OK, and the framing.
	conts, tagged int
	lastTaggedOK  bool
	out           lineState

	// What imapserver was given.
	in       lineState
	inLen    int    // length of the current client line so far
	cmdStart bool   // the next client line starts a command
	cmd      string // the current command's name, upper case
	pending  []byte // read from the client, not yet handed over
	buf      []byte
	// held is set when what was handed over ends with a literal
	// announcement: the next Read decides what follows.
	held *heldLiteral
	// starttls is set when what was handed over ends with a STARTTLS or
	// COMPRESS command, with the tagged count then: after its tagged OK
	// the guard steps aside.
	starttls *int
	// done is where, in what scanIn hands over, a line "done" in any
	// case starts (-1 if none).
	done int
	// fix says what to do with a command line imapserver would drop the
	// connection for, since it cannot find a command name in it: an empty
	// line is skipped; "tag" or "tag UID" get a name that is not one, so
	// that imapserver answers BAD. fixAt is where the line starts.
	fix, fixAt int
	// contsAtLine is conts when the last client line was handed over: a
	// line after a new continuation request answers it (SASL, DONE).
	contsAtLine int
	off         bool // TLS or compression started: pass everything through
	cut         bool // refused literal data follows: EOF from now on

	// Command line length (ops, limits.go): a client line longer than
	// maxCommandLine (literal data not counted) gets a BYE and the
	// connection is closed. log, if set, gets the line about it.
	tooLong bool
	log     *slog.Logger
}

// maxCommandLine bounds a client line, literals excluded. It is below
// imapserver's own bound (50 KiB), which answers with a syntax error or
// SERVERBUG and drops the connection without a word; this one says why.
const maxCommandLine = 48 << 10

// longLineBye is what a client whose line is too long gets.
const longLineBye = "* BYE command line too long (limit 49152 bytes)\r\n"

type heldLiteral struct {
	size    int64
	nonSync bool
	// buffered: imapserver reads it into memory, and refuses it, without
	// a word, over maxBufferedLiteral bytes (all but APPEND's message).
	buffered      bool
	conts, tagged int
}

// maxBufferedLiteral is imapserver's limit on literals it buffers.
const maxBufferedLiteral = 4096

// lineState follows lines and literals in one direction.
type lineState struct {
	literal int64 // literal bytes still to come
	head    []byte
	tail    []byte
}

const (
	guardHeadLen = 64
	guardTailLen = 32
)

// What to do with a command line without a command name (see fix).
const (
	fixNone = iota
	fixSkip
	fixName
)

// badCommandName is added to a command line without a command name.
const badCommandName = " MISSING-COMMAND-NAME"

func (ls *lineState) add(c byte) {
	if len(ls.head) < guardHeadLen {
		ls.head = append(ls.head, c)
	}
	if len(ls.tail) == guardTailLen {
		copy(ls.tail, ls.tail[1:])
		ls.tail = ls.tail[:guardTailLen-1]
	}
	ls.tail = append(ls.tail, c)
}

// addBytes is add for each byte of p, in bulk: the server's replies go
// through here, and a byte at a time was a fifth of UID FETCH 1:* (FLAGS).
func (ls *lineState) addBytes(p []byte) {
	if n := guardHeadLen - len(ls.head); n > 0 {
		ls.head = append(ls.head, p[:min(n, len(p))]...)
	}
	if len(p) >= guardTailLen {
		ls.tail = append(ls.tail[:0], p[len(p)-guardTailLen:]...)
		return
	}
	if keep := guardTailLen - len(p); len(ls.tail) > keep {
		ls.tail = ls.tail[:copy(ls.tail, ls.tail[len(ls.tail)-keep:])]
	}
	ls.tail = append(ls.tail, p...)
}

func (ls *lineState) reset() {
	ls.head = ls.head[:0]
	ls.tail = ls.tail[:0]
}

// literalAtEnd parses "{n}", "{n+}" (or "~{...}") at the end of a line
// whose last bytes are tail.
func literalAtEnd(tail []byte) (size int64, nonSync, ok bool) {
	t := bytes.TrimSuffix(bytes.TrimSuffix(tail, []byte("\n")), []byte("\r"))
	if len(t) < 3 || t[len(t)-1] != '}' {
		return 0, false, false
	}
	t = t[:len(t)-1]
	if t[len(t)-1] == '+' {
		nonSync = true
		t = t[:len(t)-1]
	}
	i := bytes.LastIndexByte(t, '{')
	if i < 0 || i == len(t)-1 {
		return 0, false, false
	}
	n, err := strconv.ParseInt(string(t[i+1:]), 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	return n, nonSync, true
}

func newLiteralGuard(c net.Conn) *literalGuard {
	return &literalGuard{Conn: c, cmdStart: true, done: -1}
}

func (g *literalGuard) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut {
		return 0, io.EOF
	}
	if g.tooLong {
		return 0, g.refuseLongLine()
	}
	if g.held != nil {
		h := g.held
		g.held = nil
		switch {
		case h.nonSync && (g.tagged > h.tagged || h.buffered && h.size > maxBufferedLiteral):
			// Refused; its data is on the way.
			g.cut = true
			return 0, io.EOF
		case h.nonSync:
			g.in.literal = h.size
		case g.conts > h.conts:
			g.in.literal = h.size
		case g.tagged > h.tagged:
			// Refused before the client sent anything.
			g.cmdStart = true
		default:
			// imapserver wants the data without having asked for it.
			g.cut = true
			return 0, io.EOF
		}
	}
	if g.starttls != nil {
		if g.tagged > *g.starttls && g.lastTaggedOK {
			g.off = true
		}
		g.starttls = nil
	}
again:
	if len(g.pending) == 0 {
		if g.off {
			g.mu.Unlock()
			n, err := g.Conn.Read(p)
			g.mu.Lock()
			return n, err
		}
		if cap(g.buf) == 0 {
			g.buf = make([]byte, 4096)
		}
		g.mu.Unlock()
		n, err := g.Conn.Read(g.buf[:cap(g.buf)])
		g.mu.Lock()
		if n == 0 {
			return 0, err
		}
		g.pending = g.buf[:n]
	}
	if g.off {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	n := g.scanIn(g.pending[:min(len(p), len(g.pending))])
	if g.tooLong && n == 0 {
		return 0, g.refuseLongLine()
	}
	fix := g.fix
	g.fix = fixNone
	switch fix {
	case fixSkip:
		g.pending = g.pending[n:]
		goto again
	case fixName:
		line := bytes.TrimRight(g.pending[g.fixAt:n], " \r\n")
		if g.fixAt+len(line)+len(badCommandName)+2 <= len(p) {
			copy(p, g.pending[:g.fixAt])
			m := g.fixAt + copy(p[g.fixAt:], line)
			m += copy(p[m:], badCommandName)
			m += copy(p[m:], "\r\n")
			g.pending = g.pending[n:]
			return m, nil
		}
	}
	copy(p, g.pending[:n])
	if g.done >= 0 {
		// imapserver ends IDLE only on an exact "DONE"; ABNF strings,
		// this one included, are case-insensitive (RFC 5234 2.3).
		copy(p[g.done:], "DONE")
		g.done = -1
	}
	g.pending = g.pending[n:]
	return n, nil
}

// scanIn follows b and returns how much of it may be handed over: up to
// the end of the first line in it (with any literal data before).
func (g *literalGuard) scanIn(b []byte) int {
	for i := 0; i < len(b); i++ {
		if g.in.literal > 0 {
			k := min(g.in.literal, int64(len(b)-i))
			g.in.literal -= k
			i += int(k) - 1
			if g.in.literal == 0 {
				g.in.reset()
				g.inLen = 0
			}
			continue
		}
		c := b[i]
		if g.inLen >= maxCommandLine && c != '\n' {
			// Hand over what came before; the next Read refuses.
			g.tooLong = true
			return i
		}
		g.in.add(c)
		g.inLen++
		if c != '\n' {
			continue
		}
		start := g.cmdStart
		var fields [][]byte
		if start {
			fields = bytes.Fields(g.in.head)
			g.cmd = ""
			if len(fields) >= 2 {
				g.cmd = string(bytes.ToUpper(fields[1]))
			}
		}
		whole := g.inLen <= guardHeadLen // head holds the whole line
		lineLen := g.inLen
		size, nonSync, lit := literalAtEnd(g.in.tail)
		g.in.reset()
		g.inLen = 0
		if lit {
			g.contsAtLine = g.conts
			// APPEND's message is its one literal that is not buffered;
			// its mailbox, when a literal, comes right after the name.
			appendMailbox := start && whole && len(fields) == 3
			buffered := g.cmd != "APPEND" || appendMailbox
			g.held = &heldLiteral{size: size, nonSync: nonSync, buffered: buffered, conts: g.conts, tagged: g.tagged}
			g.cmdStart = false
			return i + 1
		}
		g.cmdStart = true
		answer := g.conts > g.contsAtLine
		g.contsAtLine = g.conts
		// Rewrites need the whole line in b: one that began in an earlier
		// Read (the client's bytes came in pieces) is left as it is.
		lineStart := i + 1 - lineLen
		if !start || !whole || lineStart < 0 {
			// nothing to rewrite
		} else if len(fields) == 1 && bytes.EqualFold(fields[0], []byte("DONE")) {
			g.done = lineStart
		} else if !answer {
			switch {
			case len(fields) == 0:
				g.fix, g.fixAt = fixSkip, lineStart
			case len(fields) == 1, len(fields) == 2 && g.cmd == "UID":
				g.fix, g.fixAt = fixName, lineStart
			}
		}
		// After STARTTLS the bytes are TLS records; after COMPRESS
		// DEFLATE (RFC 4978) they are compressed, and a guard of its own
		// sits above the decompression (Server.serverOptions).
		if start && whole && (len(fields) == 2 && g.cmd == "STARTTLS" || len(fields) == 3 && g.cmd == "COMPRESS") {
			n := g.tagged
			g.starttls = &n
		}
		return i + 1
	}
	return len(b)
}

func (g *literalGuard) Write(p []byte) (int, error) {
	g.mu.Lock()
	if g.tooLong && g.cut {
		// After the BYE for a too-long line, nothing: imapserver may
		// still answer the part of the line it had.
		g.mu.Unlock()
		return len(p), nil
	}
	if !g.off {
		g.scanOut(p)
	}
	g.mu.Unlock()
	return g.Conn.Write(p)
}

// scanOut counts the continuation requests and tagged responses in p.
func (g *literalGuard) scanOut(b []byte) {
	for len(b) > 0 {
		if g.out.literal > 0 {
			k := min(g.out.literal, int64(len(b)))
			g.out.literal -= k
			b = b[k:]
			if g.out.literal == 0 {
				// The rest of the line follows; do not classify it as a
				// new one.
				g.out.head = append(g.out.head[:0], '*')
				g.out.tail = g.out.tail[:0]
			}
			continue
		}
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			g.out.addBytes(b)
			return
		}
		g.out.addBytes(b[:nl+1])
		b = b[nl+1:]
		if size, _, ok := literalAtEnd(g.out.tail); ok {
			g.out.literal = size
			if size == 0 {
				g.out.head = append(g.out.head[:0], '*')
				g.out.tail = g.out.tail[:0]
			}
			continue
		}
		switch {
		case len(g.out.head) == 0:
		case g.out.head[0] == '+':
			g.conts++
		case g.out.head[0] == '*':
		default:
			g.tagged++
			f := bytes.Fields(g.out.head)
			g.lastTaggedOK = len(f) >= 2 && bytes.Equal(f[1], []byte("OK"))
		}
		g.out.reset()
	}
}

// refuseLongLine tells the client why the connection ends and ends it
// (EOF to imapserver, which closes it). It runs in Read, where imapserver
// is waiting for the rest of the line and writes nothing.
func (g *literalGuard) refuseLongLine() error {
	if !g.cut {
		g.cut = true
		g.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(g.Conn, longLineBye)
		if f, ok := g.Conn.(interface{ Flush() error }); ok {
			f.Flush() // beneath, a coalescingConn may hold it back
		}
		if g.log != nil {
			g.log.Warn("connection closed: command line too long", "remote", g.Conn.RemoteAddr().String(), "limit", maxCommandLine)
		}
	}
	return io.EOF
}
