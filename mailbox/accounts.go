package mailbox

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Password hashing: argon2id, in the PHC string format. The parameters are
// modest because every LOGIN pays them; authCache spares repeated logins.
const (
	argonTime    = 1
	argonMemory  = 16 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	key := argonKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func checkPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, fmt.Errorf("unsupported password hash format")
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("password hash parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password hash salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("password hash: %w", err)
	}
	got := argonKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// argonSlots bounds how many argon2 computations run at once. Each takes
// argonMemory (16 MB): a burst of logins (a thousand IDLE clients
// reconnecting after a restart) ran dozens side by side, and the heap grew
// by hundreds of megabytes that the process kept. More at once would not
// be faster: each one keeps a CPU busy.
var argonSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func argonKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	argonSlots <- struct{}{}
	defer func() { <-argonSlots }()
	return argon2.IDKey(password, salt, time, memory, threads, keyLen)
}

// authCache remembers successful logins (as a keyed MAC of the password,
// never the password) so a client that logs in for every check does not
// pay argon2 each time, as Dovecot's auth cache does. An entry is valid
// only while the account's stored hash is unchanged.
type authCache struct {
	key []byte
	mu  sync.Mutex
	m   map[string]authEntry
	// checking holds the password checks in progress, by account and MAC
	// of the password, so that concurrent logins with the same
	// credentials wait for one check instead of each running argon2.
	checking map[string]*authCheck
}

type authCheck struct {
	done chan struct{}
	ok   bool
	err  error
}

type authEntry struct {
	hash string
	mac  []byte
}

func newAuthCache() *authCache {
	k := make([]byte, 32)
	rand.Read(k)
	return &authCache{key: k, m: make(map[string]authEntry), checking: make(map[string]*authCheck)}
}

// check runs checkPassword once for concurrent callers with the same
// account, stored hash and password.
func (c *authCache) check(acct, hash, password string) (bool, error) {
	key := acct + "\x00" + hash + "\x00" + string(c.mac(acct, password))
	c.mu.Lock()
	if ch := c.checking[key]; ch != nil {
		c.mu.Unlock()
		<-ch.done
		return ch.ok, ch.err
	}
	ch := &authCheck{done: make(chan struct{})}
	c.checking[key] = ch
	c.mu.Unlock()
	ch.ok, ch.err = checkPassword(hash, password)
	c.mu.Lock()
	delete(c.checking, key)
	c.mu.Unlock()
	close(ch.done)
	return ch.ok, ch.err
}

func (c *authCache) mac(acct, password string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(acct))
	h.Write([]byte{0})
	h.Write([]byte(password))
	return h.Sum(nil)
}

func (c *authCache) hit(acct, hash, password string) bool {
	c.mu.Lock()
	e, ok := c.m[acct]
	c.mu.Unlock()
	return ok && e.hash == hash && hmac.Equal(e.mac, c.mac(acct, password))
}

// forget drops what the cache knows of acct (deleted).
func (c *authCache) forget(acct string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, acct)
}

func (c *authCache) put(acct, hash, password string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[acct] = authEntry{hash: hash, mac: c.mac(acct, password)}
}

// CreateAccount creates an account with the given mailboxes. The extra
// functions run in the same transaction (certified mail provisions the
// account's custody key there).
func (s *Store) CreateAccount(name, password string, mailboxes []NewMailbox, extra ...func(tx *Tx, acct string) error) error {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return fmt.Errorf("account %q: %w", name, err)
	}
	if password == "" {
		return fmt.Errorf("account %q: empty password", name)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return s.Update(func(tx *Tx) error {
		if _, err := tx.Account(acct); err == nil {
			return fmt.Errorf("account %q: %w", acct, ErrAccountExists)
		}
		a := Account{Name: acct, PasswordHash: hash, Created: now()}
		// An account of a name that was deleted numbers its mailboxes on
		// from the old one's: the old messages, removed after the
		// deletion committed, can never sit under a new mailbox's ID.
		if v, ok, err := tx.getRaw(goneAccountKey(acct)); err != nil {
			return err
		} else if ok && len(v) == 4 {
			a.NextMailboxID = binary.BigEndian.Uint32(v)
		}
		if err := tx.setJSON(accountKey(acct), &a); err != nil {
			return err
		}
		if err := tx.putUsage(acct, usage{limitsKnown: true}); err != nil {
			return err
		}
		for _, nm := range mailboxes {
			if _, err := tx.CreateMailbox(acct, nm); err != nil {
				return err
			}
		}
		for _, fn := range extra {
			if err := fn(tx, acct); err != nil {
				return err
			}
		}
		return nil
	})
}

// Account returns an account's record.
func (tx *Tx) Account(acct string) (*Account, error) {
	var a Account
	ok, err := tx.getJSON(accountKey(acct), &a)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("account %q: %w", acct, ErrNoAccount)
	}
	return &a, nil
}

// AccountExists reports whether the (normalized) account exists.
func (s *Store) AccountExists(name string) (bool, error) {
	var ok bool
	err := s.View(func(tx *Tx) error {
		var err error
		ok, err = tx.AccountExists(name)
		return err
	})
	return ok, err
}

// AccountExists reports whether the (normalized) account exists, as seen
// by the transaction.
func (tx *Tx) AccountExists(name string) (bool, error) {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return false, nil
	}
	// Existence only: every LMTP recipient asks, twice (RCPT, then the
	// delivery), and decoding the record was most of the cost.
	found, err := tx.has(accountKey(acct))
	if err != nil {
		return false, fmt.Errorf("reading account %q: %w", acct, err)
	}
	return found, nil
}

// ListAccounts returns every account name, sorted.
func (s *Store) ListAccounts() ([]string, error) {
	var names []string
	err := s.View(func(tx *Tx) error {
		return tx.scan([]byte(prefixAccount), true, func(k, _ []byte) error {
			names = append(names, string(k[len(prefixAccount):]))
			return nil
		})
	})
	return names, err
}

// Authenticate checks a password and returns the canonical account name.
// Every failure is ErrAuthFailed, so a caller cannot tell a wrong password
// from an unknown account.
func (s *Store) Authenticate(name, password string) (string, error) {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return "", ErrAuthFailed
	}
	var a *Account
	if err := s.View(func(tx *Tx) error {
		var err error
		a, err = tx.Account(acct)
		return err
	}); err != nil {
		// Spend the same time as a real check, against timing probes.
		checkPassword("$argon2id$v=19$m=16384,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", password)
		return "", ErrAuthFailed
	}
	if s.auth.hit(acct, a.PasswordHash, password) {
		return acct, nil
	}
	ok, err := s.auth.check(acct, a.PasswordHash, password)
	if err != nil {
		s.log.Error("checking password", "account", acct, "err", err)
		return "", ErrAuthFailed
	}
	if !ok {
		return "", ErrAuthFailed
	}
	s.auth.put(acct, a.PasswordHash, password)
	return acct, nil
}

// SetPassword replaces an account's password. The extra function, if not
// nil, runs in the same transaction (receipts re-seals the custody key).
func (s *Store) SetPassword(name, password string, extra func(tx *Tx) error) error {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return fmt.Errorf("account %q: %w", name, err)
	}
	if password == "" {
		return fmt.Errorf("account %q: empty password", name)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return s.Update(func(tx *Tx) error {
		a, err := tx.Account(acct)
		if err != nil {
			return err
		}
		a.PasswordHash = hash
		if err := tx.setJSON(accountKey(acct), a); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
}

// DeleteAccount removes an account, its mailboxes and its messages. One
// transaction removes the account and its mailboxes and runs the
// AccountDeleted hooks, which end whatever else it owned (certified items,
// keys, timers); the BeforeAccountDeleted hooks run before it, for work
// too large for one transaction, and the messages are removed after it,
// in batches. A new account of the same name finds nothing of the old
// one.
func (s *Store) DeleteAccount(name string) error {
	acct, err := NormalizeAccount(name)
	if err != nil {
		return fmt.Errorf("account %q: %w", name, err)
	}
	if ok, err := s.AccountExists(acct); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("account %q: %w", acct, ErrNoAccount)
	}
	if err := s.runBeforeAccountDeletedHooks(acct); err != nil {
		return fmt.Errorf("deleting account %q: %w", acct, err)
	}
	var boxes []*MailboxInfo
	if err := s.Update(func(tx *Tx) error {
		a, err := tx.Account(acct)
		if err != nil {
			return err
		}
		if err := s.runAccountDeletedHooks(tx, acct); err != nil {
			return fmt.Errorf("deleting account %q: %w", acct, err)
		}
		if boxes, err = tx.ListMailboxes(acct); err != nil {
			return err
		}
		for _, mb := range boxes {
			if err := tx.dropMailbox(acct, mb); err != nil {
				return fmt.Errorf("deleting account %q: %w", acct, err)
			}
		}
		if err := tx.dropSubscriptions(acct); err != nil {
			return fmt.Errorf("deleting account %q: %w", acct, err)
		}
		if err := tx.set(goneAccountKey(acct), binary.BigEndian.AppendUint32(nil, a.NextMailboxID)); err != nil {
			return err
		}
		if err := tx.dropUsage(acct); err != nil {
			return err
		}
		tx.noteEvent(Change{Kind: AccountDeleted, Account: acct})
		if err := tx.dropMetadata(metadataAccountPrefix(acct)); err != nil {
			return err
		}
		tx.afterCommit(func() []Change {
			s.auth.forget(acct)
			return []Change{{Kind: AccountDeleted, Account: acct}}
		})
		return tx.del(accountKey(acct))
	}); err != nil {
		return err
	}
	for _, mb := range boxes {
		if err := s.removeMailboxMessages(acct, mb.ID); err != nil {
			return fmt.Errorf("deleting messages of account %q: %w", acct, err)
		}
	}
	return nil
}

// getRaw reads a value of the store's own key space.
func (tx *Tx) getRaw(key []byte) ([]byte, bool, error) { return tx.get(key) }
