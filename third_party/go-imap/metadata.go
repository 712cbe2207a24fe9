package imap

import (
	"fmt"
	"strings"
)

// METADATA and METADATA-SERVER (RFC 5464), server side (certmail patch).

// MetadataDepth is GETMETADATA's DEPTH option (RFC 5464 section 4.2.2):
// the entry only, its children too, or every entry below it.
type MetadataDepth int

const (
	MetadataDepthZero     MetadataDepth = 0
	MetadataDepthOne      MetadataDepth = 1
	MetadataDepthInfinity MetadataDepth = -1
)

// MetadataEntry is an entry name with its value. A nil Value is NIL: in
// SETMETADATA it removes the entry, in a METADATA response the entry has
// no value; an empty value is a non-nil empty slice.
type MetadataEntry struct {
	Name  string
	Value []byte
}

// Metadata entry namespaces (RFC 5464 section 3.2).
const (
	MetadataPrivate = "/private"
	MetadataShared  = "/shared"
)

// CheckMetadataEntry checks an entry name against RFC 5464 section 3.2:
// it starts with /private/ or /shared/ (or is /private or /shared itself,
// which only GETMETADATA may name, when root is true), and has no "*",
// "%", character below 0x20 or above 0x7e, empty level ("//") or trailing
// "/". Entry names are case-insensitive (section 3.2): callers compare
// them folded with strings.ToLower.
func CheckMetadataEntry(name string, root bool) error {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("entry name %q: character %#x not allowed", name, c)
		case c == '*' || c == '%':
			return fmt.Errorf("entry name %q: wildcard %q not allowed", name, c)
		}
	}
	switch lower := strings.ToLower(name); {
	case strings.Contains(name, "//"), strings.HasSuffix(name, "/"):
		return fmt.Errorf("entry name %q: empty hierarchy level", name)
	case lower == MetadataPrivate || lower == MetadataShared:
		if !root {
			return fmt.Errorf("entry name %q: a namespace, not an entry", name)
		}
	case !strings.HasPrefix(lower, MetadataPrivate+"/") && !strings.HasPrefix(lower, MetadataShared+"/"):
		return fmt.Errorf("entry name %q: must start with /private/ or /shared/", name)
	}
	return nil
}
