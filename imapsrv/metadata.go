package imapsrv

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"certmail/mailbox"
)

// METADATA and METADATA-SERVER (RFC 5464): the wire protocol is
// imapserver's (metadata.go there), the entries the store's
// (mailbox/metadata.go). Here: the account's limits, and the two server
// entries an administrator sets in the configuration, /shared/admin and
// /shared/comment (section 3.2.1), which clients read (Delta Chat shows
// them) and nobody may write. Server /shared entries are read-only for
// users: shared means every account sees them, and an account's writes
// are its own. /private server entries (Delta Chat's
// /private/devicetoken) and every mailbox entry are the account's.
//
// A certified stub is an ordinary message: no entry is derived from a
// message, so none can tell anything of a held M.

// MetadataOptions bound what each account keeps and give the read-only
// server entries. Zero limits take the defaults below.
type MetadataOptions struct {
	// MaxEntrySize bounds one value (NO [METADATA MAXSIZE n] above it).
	MaxEntrySize int64
	// MaxEntries bounds an account's entries, server and mailbox ones
	// together, and MaxBytes the bytes of their names and values (NO
	// [METADATA TOOMANY] above either).
	MaxEntries int
	MaxBytes   int64
	// Admin is the server's /shared/admin (section 3.2.1.2: a URI to
	// reach its administrator, such as mailto:postmaster@example.org);
	// Comment its /shared/comment. Empty: no such entry.
	Admin, Comment string
}

// Default metadata limits: Delta Chat keeps one token of a few hundred
// bytes; a client's per-mailbox settings take a few entries each.
const (
	DefaultMetadataMaxEntrySize = 64 << 10
	DefaultMetadataMaxEntries   = 100
	DefaultMetadataMaxBytes     = 1 << 20
)

const (
	metadataAdmin   = imap.MetadataShared + "/admin"
	metadataComment = imap.MetadataShared + "/comment"
)

func (o MetadataOptions) limits() mailbox.MetadataLimits {
	l := mailbox.MetadataLimits{MaxEntrySize: o.MaxEntrySize, MaxEntries: o.MaxEntries, MaxBytes: o.MaxBytes}
	if l.MaxEntrySize <= 0 {
		l.MaxEntrySize = DefaultMetadataMaxEntrySize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMetadataMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMetadataMaxBytes
	}
	return l
}

// serverEntries are the configured read-only server entries.
func (o MetadataOptions) serverEntries() []imap.MetadataEntry {
	var out []imap.MetadataEntry
	if o.Admin != "" {
		out = append(out, imap.MetadataEntry{Name: metadataAdmin, Value: []byte(o.Admin)})
	}
	if o.Comment != "" {
		out = append(out, imap.MetadataEntry{Name: metadataComment, Value: []byte(o.Comment)})
	}
	return out
}

// metadataSelects reports whether a GETMETADATA entry name with depth
// selects entry (both folded to lower case; RFC 5464 4.2.2).
func metadataSelects(name, entry string, depth imap.MetadataDepth) bool {
	if entry == name {
		return true
	}
	rest, ok := strings.CutPrefix(entry, name+"/")
	switch {
	case !ok || depth == imap.MetadataDepthZero:
		return false
	case depth == imap.MetadataDepthOne:
		return !strings.Contains(rest, "/")
	default:
		return true
	}
}

func (sess *session) GetMetadata(mbox string, names []string, depth imap.MetadataDepth) ([]imap.MetadataEntry, error) {
	folded := make([]string, 0, len(names))
	for _, n := range names {
		folded = append(folded, strings.ToLower(n))
	}
	var stored []mailbox.MetadataEntry
	if err := sess.srv.store.View(func(tx *mailbox.Tx) error {
		var err error
		stored, err = tx.Metadata(sess.acct, mbox, folded, mailbox.MetadataDepth(depth))
		return err
	}); err != nil {
		return nil, storeError(err)
	}
	out := make([]imap.MetadataEntry, 0, len(stored)+len(names))
	for _, e := range stored {
		out = append(out, imap.MetadataEntry{Name: e.Name, Value: e.Value})
	}
	if mbox == "" {
		for _, e := range sess.srv.opts.Metadata.serverEntries() {
			for _, n := range folded {
				if metadataSelects(n, e.Name, depth) {
					out = append(out, e)
					break
				}
			}
		}
	}
	// A name that selects nothing is answered NIL (section 4.2: the
	// entry has no value), so the client learns it was looked at.
	for i, n := range folded {
		found := false
		for _, e := range out {
			if metadataSelects(n, e.Name, depth) {
				found = true
				break
			}
		}
		if !found && !slices.Contains(folded[:i], n) {
			out = append(out, imap.MetadataEntry{Name: names[i]})
		}
	}
	return out, nil
}

func (sess *session) SetMetadata(mbox string, entries []imap.MetadataEntry) error {
	set := make([]mailbox.MetadataEntry, 0, len(entries))
	for _, e := range entries {
		if mbox == "" && strings.HasPrefix(strings.ToLower(e.Name), imap.MetadataShared+"/") {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
				Text: "server /shared entries are the administrator's (/shared/admin and /shared/comment come from the configuration)"}
		}
		set = append(set, mailbox.MetadataEntry{Name: e.Name, Value: e.Value})
	}
	lim := sess.srv.opts.Metadata.limits()
	err := sess.srv.store.UpdateFrom(sess, func(tx *mailbox.Tx) error {
		return tx.SetMetadata(sess.acct, mbox, set, lim)
	})
	switch {
	case errors.Is(err, mailbox.ErrMetadataTooLarge):
		return &imap.Error{Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCode(fmt.Sprintf("METADATA MAXSIZE %d", lim.MaxEntrySize)),
			Text: fmt.Sprintf("metadata values are limited to %d bytes", lim.MaxEntrySize)}
	case errors.Is(err, mailbox.ErrMetadataTooMany):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "METADATA TOOMANY",
			Text: fmt.Sprintf("an account keeps at most %d metadata entries of %d bytes in all", lim.MaxEntries, lim.MaxBytes)}
	}
	return storeError(err)
}

// MetadataLimits: one value at most MaxEntrySize, one command's values at
// most what the account may keep in all.
func (sess *session) MetadataLimits() (value, command int64) {
	lim := sess.srv.opts.Metadata.limits()
	return lim.MaxEntrySize, lim.MaxBytes
}
