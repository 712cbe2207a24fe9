package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleFileIsValidAndDefault(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "certmail.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if len(cfg.Listen.ProxyProtocolFrom) != 0 {
		t.Fatalf("the example trusts proxies: %v", cfg.Listen.ProxyProtocolFrom)
	}
	cfg.Listen.ProxyProtocolFrom = nil // [] in the file, nil by default
	if !reflect.DeepEqual(cfg.Listen, def.Listen) || cfg.Limits != def.Limits || cfg.Data != def.Data ||
		cfg.ShutdownTimeout != def.ShutdownTimeout || cfg.LogLevel != def.LogLevel || cfg.Store != def.Store {
		t.Fatalf("example differs from defaults:\n%+v\n%+v", cfg, def)
	}
}

func TestParseValues(t *testing.T) {
	cfg, err := Parse("x.toml", []byte(`
data = "/var/lib/certmail"
domains = ["Example.ORG."]
shutdown_timeout = "2m"
[listen]
imap = ""
lmtp = "[::1]:24"
[limits]
max_message_size = 1048576
max_recipients = 5
disk_reserve = "1GiB"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != "/var/lib/certmail" || cfg.Listen.IMAP != "" || cfg.Listen.LMTP != "[::1]:24" ||
		cfg.Listen.HTTP != DefaultHTTP || cfg.Limits.MaxMessageSize != 1<<20 ||
		cfg.Limits.MaxRecipients != 5 || cfg.Domains[0] != "example.org" ||
		time.Duration(cfg.ShutdownTimeout) != 2*time.Minute || cfg.Limits.DiskReserve != 1<<30 {
		t.Fatalf("got %+v", cfg)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown key", "data = \"d\"\n[listen]\nimapp = \"x:1\"\n", "x.toml:3: listen.imapp: unknown key"},
		{"unknown table", "\n[limitz]\nfoo = 1\n", "x.toml:3: limitz.foo: unknown key"},
		{"syntax", "data = \n", "x.toml:1"},
		{"bad type", "domains = \"example.org\"\n", "x.toml"},
		{"bad addr", "[listen]\nlmtp = \"localhost\"\n", "x.toml:2: listen.lmtp: not host:port"},
		{"bad port", "[listen]\nlmtp = \"localhost:99999\"\n", "bad port"},
		{"bad size", "[limits]\nmax_message_size = \"50 parsecs\"\n", "unknown unit"},
		{"size too big", "[limits]\nmax_message_size = \"1GiB\"\n", "x.toml:2: limits.max_message_size: must be between"},
		{"negative disk reserve", "[limits]\ndisk_reserve = -1\n", "x.toml:2: limits.disk_reserve: must not be negative"},
		{"index idle too short", "[limits]\nindex_idle = \"0s\"\n", "limits.index_idle: must be at least 1s"},
		{"bad trusted client", "[certified]\ntrusted_lmtp_clients = [\"127.0.0.1\", \"mta.example\"]\n", "certified.trusted_lmtp_clients: entry 2 (\"mta.example\"): not an IP address or CIDR prefix"},
		{"bad trusted prefix", "[certified]\ntrusted_lmtp_clients = [\"10.0.0.0/33\"]\n", "not an IP address or CIDR prefix"},
		{"negative search keys", "[limits]\nmax_search_keys = -1\n", "limits.max_search_keys: must not be negative"},
		{"negative search timeout", "[limits]\nsearch_timeout = \"-1s\"\n", "limits.search_timeout: must not be negative"},
		{"metadata entry size", "[limits]\nmetadata_max_entry_size = 0\n", "limits.metadata_max_entry_size: must be at least 1 byte"},
		{"metadata entries", "[limits]\nmetadata_max_entries = 0\n", "limits.metadata_max_entries: must be at least 1"},
		{"metadata bytes", "[limits]\nmetadata_max_bytes = \"1KiB\"\n", "limits.metadata_max_bytes: must be at least metadata_max_entry_size"},
		{"metadata admin", "[metadata]\nadmin = \"postmaster\"\n", "metadata.admin: must be a URI"},
		{"tls half", "[tls]\ncert = \"c.pem\"\n", "cert and key must be given together"},
		{"imaps without tls", "[listen]\nimaps = \"127.0.0.1:993\"\n", "implicit TLS needs"},
		{"bad domain", "domains = [\"a b\"]\n", "x.toml:1: domains: entry 1"},
		{"alternate domain served", "domains = [\"example.org\"]\n[certified]\nalternate_domains = [\"Example.ORG.\"]\n", "certified.alternate_domains: entry 1 (\"Example.ORG.\") is a domain served here"},
		{"bad level", "log_level = \"loud\"\n", "unknown level"},
		{"bad duration", "shutdown_timeout = \"soon\"\n", "duration"},
		{"store not a URL", "[store]\nurl = \"/var/lib/certmail\"\n", "x.toml:2: store.url: want a postgres:// or postgresql:// URL"},
		{"store URL with password", "[store]\nurl = \"postgres://certmail:s3cret@db1/certmail\"\n", "store.url: the URL holds a password"},
		{"store URL with password parameter", "[store]\nurl = \"postgres://certmail@db1/certmail?password=s3cret\"\n", "store.url: the URL holds a password"},
		{"store URL without host", "[store]\nurl = \"postgres:///certmail\"\n", "store.url: the URL names no host"},
		{"password file without URL", "[store]\npassword_file = \"/etc/certmail/db.password\"\n", "store.password_file: is for a PostgreSQL store"},
		{"missing password file", "[store]\nurl = \"postgres://certmail@db1/certmail\"\npassword_file = \"/nonexistent/db.password\"\n", "store.password_file: reading the database password"},
		{"bad proxy address", "[listen]\nproxy_protocol_from = [\"10.0.0.10\", \"10.0.0.300\"]\n", "x.toml:2: listen.proxy_protocol_from: entry 2 (\"10.0.0.300\"): not an IP address or CIDR prefix"},
		{"bad node name", "node = \"a b\"\n", "x.toml:1: node: \"a b\": letters, digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.toml", []byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %q", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Fatalf("got %v", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"10": 10, "2k": 2048, "50MiB": 50 << 20, "1 GB": 1 << 30} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if ByteSize(50<<20).String() != "50MiB" {
		t.Error(ByteSize(50 << 20).String())
	}
}

// FuzzParse checks that parsing and validating any input returns a
// configuration or an error, never panics, and that what it accepts
// validates again.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "certmail.example.toml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[listen]\nimap = \"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
	})
}

func TestTrustedLMTPPrefixes(t *testing.T) {
	cfg, err := Parse("x.toml", []byte("[certified]\ntrusted_lmtp_clients = [\"127.0.0.2\", \"10.1.2.3/8\", \"::1\", \"::ffff:192.0.2.1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Certified.TrustedLMTPPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.2/32", "10.0.0.0/8", "::1/128", "192.0.2.1/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: %v, want %s", i, got[i], want[i])
		}
	}
	if p, _ := Default().Certified.TrustedLMTPPrefixes(); len(p) != 0 {
		t.Errorf("default trusts %v, want nobody", p)
	}
}

// TestStoreSettings: a PostgreSQL store URL and a password file are
// accepted; the password never comes from the URL, and an error about a
// URL never repeats it (it may hold the password); a password file others
// may read is refused.
func TestStoreSettings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "db.password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("x.toml", []byte("node = \"a\"\n[store]\nurl = \"postgres://certmail@db1:5432/certmail?sslmode=verify-full\"\npassword_file = \""+pw+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.URL != "postgres://certmail@db1:5432/certmail?sslmode=verify-full" || cfg.Node != "a" {
		t.Fatalf("store %+v node %q", cfg.Store, cfg.Node)
	}
	if got, err := ReadPasswordFile(pw); err != nil || got != "s3cret" {
		t.Fatalf("ReadPasswordFile = %q, %v", got, err)
	}
	if err := os.Chmod(pw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPasswordFile(pw); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable password file: %v", err)
	}
	err = CheckStoreURL("postgres://certmail:hunter2@db1/certmail")
	if !errors.Is(err, ErrPasswordInURL) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("CheckStoreURL with a password: %v", err)
	}
	if ResolveStore("", "postgres://a@b/c") != "postgres://a@b/c" || ResolveStore("postgres://x@y/z", "postgres://a@b/c") != "postgres://x@y/z" {
		t.Fatal("ResolveStore: the flag wins over the file")
	}
}

func TestProxyProtocolFrom(t *testing.T) {
	cfg, err := Parse("x.toml", []byte("[listen]\nproxy_protocol_from = [\"10.0.0.10\", \"2001:db8::/32\", \"::ffff:10.0.0.11\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.Listen.ProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[10.0.0.10/32 2001:db8::/32 10.0.0.11/32]" {
		t.Fatalf("ProxyPrefixes = %v", got)
	}
}

// TestSoleLeaseSwitch: the sole-writer lease is on by default and
// [store] sole_lease = false turns it off (a rolling upgrade).
func TestSoleLeaseSwitch(t *testing.T) {
	if !Default().Store.SoleLease {
		t.Error("the lease is off by default")
	}
	cfg, err := Parse("x.toml", []byte("[store]\nsole_lease = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.SoleLease {
		t.Error("sole_lease = false left the lease on")
	}
}
