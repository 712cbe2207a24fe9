package imapsrv

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzParsePlain: parsePlain accepts exactly the messages of RFC 4616
// section 2 (within maxPlainField) and gives back their fields.
func FuzzParsePlain(f *testing.F) {
	for _, s := range []string{"\x00alice\x00pw", "alice\x00alice\x00pw", "alice\x00pw", "\x00alice\x00pw\x00",
		"\x00\x00pw", "\x00alice\x00", "", "\x00\xff\x00pw", "\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		authzid, authcid, passwd, err := parsePlain(msg)
		parts := bytes.Split(msg, []byte{0})
		valid := len(parts) == 3 && len(parts[1]) > 0 && len(parts[2]) > 0 &&
			len(parts[0]) <= maxPlainField && len(parts[1]) <= maxPlainField && len(parts[2]) <= maxPlainField &&
			utf8.Valid(msg)
		if valid != (err == nil) {
			t.Fatalf("%q: err %v, want valid=%v", msg, err, valid)
		}
		if err == nil && authzid+"\x00"+authcid+"\x00"+passwd != string(msg) {
			t.Fatalf("%q: fields %q %q %q", msg, authzid, authcid, passwd)
		}
		if len(authcid) > maxPlainField {
			t.Fatalf("%q: authcid of %d bytes returned", msg, len(authcid))
		}
	})
}
