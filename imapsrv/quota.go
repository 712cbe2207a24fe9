package imapsrv

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"certmail/mailbox"
)

// QUOTA (RFC 9208): one quota root per account, named "" (the RFC's own
// examples use it), over every mailbox; STORAGE in units of 1024 octets
// and MESSAGE, from the store's per-account counter (mailbox/quota.go),
// which a certified item's M held for the account counts in too. Limits
// are the administrator's (`certmail user quota`, config limits.quota_*):
// SETQUOTA is refused and QUOTASET not offered.

var _ imapserver.SessionQuota = (*session)(nil)

// quotaRoot is the name of an account's one quota root.
const quotaRoot = ""

func (sess *session) quotaRoot() (*imap.QuotaRoot, error) {
	q, err := sess.srv.store.Quota(sess.acct)
	if err != nil {
		return nil, storeError(err)
	}
	return quotaResources(q), nil
}

// quotaResources lists the resources that have a limit (RFC 9208 section
// 4.2.1 lists only those), STORAGE rounded up to whole KiB.
func quotaResources(q mailbox.Quota) *imap.QuotaRoot {
	r := &imap.QuotaRoot{Name: quotaRoot}
	if q.StorageLimit > 0 {
		r.Resources = append(r.Resources, imap.QuotaResource{Type: imap.QuotaResourceStorage,
			Usage: (q.StorageUsed + 1023) / 1024, Limit: q.StorageLimit / 1024})
	}
	if q.MessagesLimit > 0 {
		r.Resources = append(r.Resources, imap.QuotaResource{Type: imap.QuotaResourceMessage,
			Usage: q.MessagesUsed, Limit: q.MessagesLimit})
	}
	return r
}

// An account without limits has no quota root: RFC 9208's QUOTA response
// lists at least one resource (section 9, quota-list), and Thunderbird's
// parser reports `* QUOTA "" ()` as a syntax error. GETQUOTAROOT then
// names no root (zero or more, section 4.3.1) and GETQUOTA "" is NO
// [NONEXISTENT] (section 4.2.1).

func (sess *session) QuotaRoots(name string) ([]imap.QuotaRoot, error) {
	if _, err := sess.srv.store.Mailbox(sess.acct, name); err != nil {
		return nil, storeError(err)
	}
	r, err := sess.quotaRoot()
	if err != nil || len(r.Resources) == 0 {
		return nil, err
	}
	return []imap.QuotaRoot{*r}, nil
}

func (sess *session) Quota(root string) (*imap.QuotaRoot, error) {
	if root != quotaRoot {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
			Text: "no such quota root: the account's is \"\""}
	}
	r, err := sess.quotaRoot()
	if err == nil && len(r.Resources) == 0 {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
			Text: "no quota: the account has no limits"}
	}
	return r, err
}

func (sess *session) SetQuota(string, []imap.QuotaResource) (*imap.QuotaRoot, error) {
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
		Text: "quotas are set by the server's administrator (certmail user quota)"}
}
