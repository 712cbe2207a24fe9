package imapsrv

import (
	"fmt"
	"strconv"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// FETCH of index items only (UID, FLAGS, INTERNALDATE, RFC822.SIZE) is
// what a client sends on every resync: `UID FETCH 1:* (FLAGS)` over a
// whole mailbox. Through imapserver's FetchWriter each message costs two
// mutexes, two write deadlines, three allocations and a flush, about a
// microsecond: at 100,000 messages the server took longer than Dovecot,
// which answers from its memory-mapped index. These responses carry no
// literal and are formatted here, as imapserver would format them, into
// one buffer written to the connection in large pieces.
//
// imapserver flushes its own buffer at the end of every response, so
// between the FETCH command being read and its tagged reply nothing of
// its own is pending, and nothing else writes to the connection meanwhile
// (unilateral updates are sent after the command, from this goroutine).

// fastFetchable reports whether every item o asks for comes from the
// index.
func fastFetchable(o *imap.FetchOptions) bool {
	return o.BodyStructure == nil && !o.Envelope && len(o.BodySection) == 0 &&
		len(o.BinarySection) == 0 && len(o.BinarySectionSize) == 0 &&
		!o.EmailID && !o.ThreadID && !o.SaveDate && !o.Preview
}

// fastFetchFlush is how much is gathered before it is written.
const fastFetchFlush = 32 << 10

// internalDateLayout is imapserver's (RFC 9051 date-time).
const internalDateLayout = "_2-Jan-2006 15:04:05 -0700"

// fetchFast writes the FETCH responses for targets; options must be
// fastFetchable. It reports false, having written nothing, if a message
// has a flag imapserver would refuse to write (the caller then takes the
// general path, which fails as imapserver does).
func (sess *session) fetchFast(targets []target, options *imap.FetchOptions) (bool, error) {
	for _, t := range targets {
		for _, f := range t.msg.Flags {
			if !validFlag(f) {
				return false, nil
			}
		}
	}
	var recent func(uid uint32) bool
	if options.Flags {
		recent = sess.recentTest()
	}
	conn := sess.conn.NetConn()
	// imapserver gives each response 30 s to be written; these get as
	// much per piece.
	defer conn.SetWriteDeadline(time.Time{})
	buf := make([]byte, 0, min(fastFetchFlush+512, 64*len(targets)+64))
	write := func() error {
		conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := conn.Write(buf)
		buf = buf[:0]
		if err != nil {
			return fmt.Errorf("writing FETCH responses: %w", err)
		}
		return nil
	}
	for _, t := range targets {
		buf = appendFetchLine(buf, t.seq, t.msg, options, recent != nil && recent(t.msg.UID))
		if len(buf) >= fastFetchFlush {
			if err := write(); err != nil {
				return true, err
			}
		}
	}
	if len(buf) > 0 {
		if err := write(); err != nil {
			return true, err
		}
	}
	return true, nil
}

// appendFetchLine appends one FETCH response, items in the order fetchOne
// writes them.
func appendFetchLine(buf []byte, seq uint32, m *mailbox.Message, o *imap.FetchOptions, recent bool) []byte {
	buf = append(buf, "* "...)
	buf = strconv.AppendUint(buf, uint64(seq), 10)
	buf = append(buf, " FETCH (UID "...)
	buf = strconv.AppendUint(buf, uint64(m.UID), 10)
	if o.Flags {
		buf = append(buf, " FLAGS ("...)
		if recent {
			buf = append(buf, `\Recent`...)
			if len(m.Flags) > 0 {
				buf = append(buf, ' ')
			}
		}
		for i, f := range m.Flags {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = append(buf, f...)
		}
		buf = append(buf, ')')
	}
	if o.InternalDate {
		buf = append(buf, ` INTERNALDATE "`...)
		buf = m.InternalDate.AppendFormat(buf, internalDateLayout)
		buf = append(buf, '"')
	}
	if o.RFC822Size {
		buf = append(buf, " RFC822.SIZE "...)
		buf = strconv.AppendInt(buf, m.Size, 10)
	}
	if o.ModSeq {
		buf = append(buf, " MODSEQ ("...)
		buf = strconv.AppendUint(buf, m.ModSeq, 10)
		buf = append(buf, ')')
	}
	return append(buf, ")\r\n"...)
}

// validFlag is imapserver's test of a flag it will write: an atom,
// optionally after one backslash.
func validFlag(f string) bool {
	if f == "" {
		return false
	}
	for i := 0; i < len(f); i++ {
		switch c := f[i]; c {
		case '\\':
			if i != 0 {
				return false
			}
		case '(', ')', '{', ' ', '%', '*', '"', ']':
			return false
		default:
			if unicode.IsControl(rune(c)) {
				return false
			}
		}
	}
	return true
}
