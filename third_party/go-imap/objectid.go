package imap

// ValidObjectID reports whether id is an RFC 8474 objectid (section 7):
// 1 to 255 of ALPHA, DIGIT, "_" and "-" (certmail patch).
func ValidObjectID(id string) bool {
	if len(id) == 0 || len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
