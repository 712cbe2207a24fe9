package imap

// QuotaResourceType is a QUOTA resource type.
//
// See RFC 9208 section 5.
type QuotaResourceType string

const (
	QuotaResourceStorage           QuotaResourceType = "STORAGE"
	QuotaResourceMessage           QuotaResourceType = "MESSAGE"
	QuotaResourceMailbox           QuotaResourceType = "MAILBOX"
	QuotaResourceAnnotationStorage QuotaResourceType = "ANNOTATION-STORAGE"
)

// QuotaResource is one resource of a QUOTA response: its usage and limit
// (RFC 9208 section 5; STORAGE in units of 1024 octets). (certmail patch)
type QuotaResource struct {
	Type         QuotaResourceType
	Usage, Limit int64
}

// QuotaRoot is a quota root and its resources, for the server's QUOTA
// response. (certmail patch)
type QuotaRoot struct {
	Name      string
	Resources []QuotaResource
}
