package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// QUOTA (RFC 9208), server side. (certmail patch)

// SessionQuota is an IMAP session which supports QUOTA: GETQUOTAROOT,
// GETQUOTA, and SETQUOTA, which it may refuse (RFC 9208 section 4.1.3:
// a server that lets no client set limits does not list QUOTASET).
type SessionQuota interface {
	Session

	// QuotaRoots returns the quota roots of a mailbox, with their
	// resources (RFC 9208 section 4.1.2).
	QuotaRoots(mailbox string) ([]imap.QuotaRoot, error)
	// Quota returns one quota root (section 4.1.1).
	Quota(root string) (*imap.QuotaRoot, error)
	// SetQuota sets a root's limits (section 4.1.3).
	SetQuota(root string, limits []imap.QuotaResource) (*imap.QuotaRoot, error)
}

func (c *Conn) quotaSession() (SessionQuota, error) {
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return nil, err
	}
	session, ok := c.session.(SessionQuota)
	if !ok || !c.server.options.caps().Has(imap.CapQuota) {
		return nil, newClientBugError("QUOTA is not supported")
	}
	return session, nil
}

func (c *Conn) handleGetQuotaRoot(dec *imapwire.Decoder) error {
	var mailbox string
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	session, err := c.quotaSession()
	if err != nil {
		return err
	}
	roots, err := session.QuotaRoots(mailbox)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("QUOTAROOT").SP().Mailbox(mailbox)
	for _, r := range roots {
		enc.SP().String(r.Name)
	}
	if err := enc.CRLF(); err != nil {
		return err
	}
	for i := range roots {
		if err := writeQuota(enc.Encoder, &roots[i]); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) handleGetQuota(dec *imapwire.Decoder) error {
	var root string
	if !dec.ExpectSP() || !dec.ExpectAString(&root) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	session, err := c.quotaSession()
	if err != nil {
		return err
	}
	data, err := session.Quota(root)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	return writeQuota(enc.Encoder, data)
}

// handleSetQuota reads SETQUOTA root (resource limit ...) (RFC 9208
// section 4.1.3).
func (c *Conn) handleSetQuota(dec *imapwire.Decoder) error {
	var root string
	if !dec.ExpectSP() || !dec.ExpectAString(&root) || !dec.ExpectSP() {
		return dec.Err()
	}
	var limits []imap.QuotaResource
	err := dec.ExpectList(func() error {
		var r imap.QuotaResource
		var name string
		if !dec.ExpectAtom(&name) || !dec.ExpectSP() || !dec.ExpectNumber64(&r.Limit) {
			return dec.Err()
		}
		r.Type = imap.QuotaResourceType(name)
		limits = append(limits, r)
		return nil
	})
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	session, err := c.quotaSession()
	if err != nil {
		return err
	}
	data, err := session.SetQuota(root, limits)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	return writeQuota(enc.Encoder, data)
}

// writeQuota writes "* QUOTA root (resource usage limit ...)".
func writeQuota(enc *imapwire.Encoder, r *imap.QuotaRoot) error {
	enc.Atom("*").SP().Atom("QUOTA").SP().String(r.Name).SP()
	enc.List(len(r.Resources), func(i int) {
		res := r.Resources[i]
		enc.Atom(string(res.Type)).SP().Number64(res.Usage).SP().Number64(res.Limit)
	})
	return enc.CRLF()
}
