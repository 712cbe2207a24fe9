package imapsrv

// APPEND (RFC 9051 section 6.3.12) with its extensions: several messages
// in one command (MULTIAPPEND, RFC 3502), messages made of parts of
// stored ones (CATENATE, RFC 4469, catenate.go) and literal8 messages
// (BINARY, RFC 3516 section 4.4, binary.go). imapserver reads the whole
// command and hands every message over at once (its AppendMulti).

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// Append is APPEND of a single message; imapserver calls AppendMulti
// instead, and this is its one-message form.
func (sess *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if r.Size() > int64(sess.srv.opts.AppendLimit) {
		return nil, sess.tooBig()
	}
	raw := make([]byte, r.Size())
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("reading APPEND literal: %w", err)
	}
	return sess.AppendMulti(name, []imapserver.AppendMessage{{Options: *options, Literal: raw}})
}

// AppendCheck answers an APPEND to a mailbox that does not exist before
// the client sends any message (RFC 3502 section 6.3.11's example: NO
// [TRYCREATE] instead of the continuation request).
func (sess *session) AppendCheck(name string) error {
	if sess.hooked(name) {
		return nil
	}
	if _, err := sess.srv.store.Mailbox(sess.acct, name); err != nil {
		return destError(err)
	}
	return nil
}

func (sess *session) tooBig() error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
		Text: fmt.Sprintf("message larger than the APPENDLIMIT of %d bytes", sess.srv.opts.AppendLimit)}
}

// AppendMulti appends msgs to the mailbox name, all or none (RFC 3502
// section 6.3.11): every message is built and checked first, then all
// are stored in one transaction, which counts them against the quota
// together and which no other session sees until it commits.
func (sess *session) AppendMulti(name string, msgs []imapserver.AppendMessage) (*imap.AppendData, error) {
	hooked := sess.hooked(name)
	if hooked && len(msgs) > 1 {
		// A hook's mailbox (Acknowledge, Refuse) takes one message at a
		// time: each is an act with its own evidence.
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: fmt.Sprintf("%s takes one message per APPEND", responseText(name))}
	}
	if !hooked {
		// The destination first: TRYCREATE before anything about the
		// messages (as Dovecot answers CATENATE with a bad URL).
		if _, err := sess.srv.store.Mailbox(sess.acct, name); err != nil {
			return nil, destError(err)
		}
	}
	raws := make([][]byte, len(msgs))
	for i, m := range msgs {
		// The limit is on what the client sends (imapserver counts the
		// literals, catenate the URL data): the base64 of a literal8's
		// binary parts may take the stored message past it.
		raw, err := sess.appendData(m)
		if err != nil {
			return nil, err
		}
		raws[i] = raw
	}
	optsOf := func(i int) mailbox.AppendOptions {
		flags := make([]string, 0, len(msgs[i].Options.Flags))
		for _, f := range msgs[i].Options.Flags {
			flags = append(flags, string(f))
		}
		return mailbox.AppendOptions{Flags: flags, InternalDate: msgs[i].Options.Time}
	}
	if hooked {
		res, err := sess.srv.opts.Hooks.AppendTo(sess.acct, sess.password, sess.tracker, name, raws[0], optsOf(0))
		if err != nil {
			return nil, hookError(err)
		}
		return &imap.AppendData{UIDValidity: res.UIDValidity, UID: imap.UID(res.UID)}, nil
	}
	if h := sess.srv.opts.Hooks; h != nil {
		for _, raw := range raws {
			if err := h.CheckAppend(sess.acct, name, raw); err != nil {
				return nil, hookError(err)
			}
		}
	}
	sums := make([][]byte, len(raws))
	for i, raw := range raws {
		sums[i] = sess.srv.store.Summarize(raw) // outside the store's write lock
	}
	results := make([]*mailbox.AppendResult, len(raws))
	err := sess.srv.store.UpdateFrom(sess.tracker, func(tx *mailbox.Tx) error {
		for i, raw := range raws {
			opts := optsOf(i)
			opts.Summary = sums[i]
			res, err := tx.Append(sess.acct, name, raw, opts)
			if err != nil {
				return err
			}
			results[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, destError(err)
	}
	// The client is told OK only once the messages are on disk.
	if err := sess.srv.store.Sync(); err != nil {
		return nil, fmt.Errorf("syncing store: %w", err)
	}
	last := results[len(results)-1]
	data := &imap.AppendData{UIDValidity: last.UIDValidity, UID: imap.UID(last.UID)}
	if len(results) > 1 {
		// RFC 3502 section 6.3.11, RFC 4315 section 3: APPENDUID with
		// every UID, in the order of the messages.
		for _, r := range results {
			data.UIDs.AddNum(imap.UID(r.UID))
		}
	}
	return data, nil
}

// appendData is the message m's bytes as they are to be stored.
func (sess *session) appendData(m imapserver.AppendMessage) ([]byte, error) {
	raw, binary := m.Literal, m.Options.Binary
	if m.Catenate != nil {
		var err error
		if raw, binary, err = sess.catenate(m.Catenate); err != nil {
			return nil, err
		}
	}
	if bytes.IndexByte(raw, 0) < 0 {
		return raw, nil
	}
	if !binary {
		return nil, errNUL
	}
	return storableBinary(raw)
}
