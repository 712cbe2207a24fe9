package authguard

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"time"

	"certmail/kv"
	"certmail/kv/keyspace"
)

// Failure counts kept in the store (Policy.Shared), so that nodes sharing
// one database share one budget: a client that spreads its guesses over
// the nodes behind one address gets the budget once, not once a node.
//
// Each account and each address block has one record, under
// keyspace.AuthGuard: "a/" + account or "n/" + address block, holding the
// failures and the time of the last (12 bytes). The local table stays
// what it is without a shared store, plus a cache: an attempt reads the
// two records (together, kv.Records GetMany: one statement on
// PostgreSQL) before it may check a password, and puts their counts in
// the table, where the rules of guard.go and table.go apply to them as
// to local counts; a failure is added to the records (read and written
// in one transaction, so that no node's failure is lost to another's),
// and the table takes the count the records then hold. A correct login
// with no failures on record writes nothing: it costs one round trip
// more than without a shared store.
//
// The database unreachable, no count can be read: the attempt is refused
// without its password being checked (fail closed; the password could not
// be checked anyway, the store being down).
//
// What other nodes have in flight is not in the records: each node lets
// attempts on one key run in parallel only while its count, with those
// in flight, is below FreeFailures, and one at a time after that
// (busyShared). N nodes thus check at most MaxFailures + N - 1 passwords
// of one account or address per lockout (N × FreeFailures when that is
// more): the budget holds up to the attempts already running when it is
// reached, one a node.

var (
	prefixAcct = []byte(keyspace.AuthGuard + "a/")
	prefixAddr = []byte(keyspace.AuthGuard + "n/")
)

// sharedCount is one record: n failures, the last at last.
type sharedCount struct {
	n    int
	last time.Time
}

func sharedKey(prefix []byte, key string) []byte {
	return append(append([]byte(nil), prefix...), key...)
}

func encodeCount(c sharedCount) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(min(c.n, 1<<31-1)))
	return binary.BigEndian.AppendUint64(b, uint64(c.last.UnixNano()))
}

func decodeCount(v []byte) (sharedCount, error) {
	if len(v) != 12 {
		return sharedCount{}, fmt.Errorf("authguard: failure record of %d bytes, want 12", len(v))
	}
	return sharedCount{
		n:    int(binary.BigEndian.Uint32(v)),
		last: time.Unix(0, int64(binary.BigEndian.Uint64(v[4:]))),
	}, nil
}

// readCounts reads the records of acctKey and addrKey (either may be "":
// not counted) in one GetMany, one round trip, and returns their live
// counts (zero when there is none, or its failures are older than the
// lockout and so forgotten).
func (g *Guard) readCounts(r kv.Records, acctKey, addrKey string, now time.Time) (acct, addr sharedCount, err error) {
	var keys [][]byte
	var outs []*sharedCount
	if acctKey != "" {
		keys, outs = append(keys, sharedKey(prefixAcct, acctKey)), append(outs, &acct)
	}
	if addrKey != "" {
		keys, outs = append(keys, sharedKey(prefixAddr, addrKey)), append(outs, &addr)
	}
	if len(keys) == 0 {
		return acct, addr, nil
	}
	err = r.GetMany(keys, func(i int, v []byte) error {
		c, err := decodeCount(v)
		if err != nil {
			return err
		}
		if now.Sub(c.last) < g.pol.Lockout {
			*outs[i] = c
		}
		return nil
	})
	return acct, addr, err
}

// load reads the records of acctKey and addrKey and puts them in the
// tables.
func (g *Guard) load(acctKey, addrKey string) error {
	if g.pol.Shared == nil || (acctKey == "" && addrKey == "") {
		return nil
	}
	start := g.now()
	var acct, addr sharedCount
	if err := g.pol.Shared.View(func(r kv.Records) error {
		var err error
		acct, addr, err = g.readCounts(r, acctKey, addrKey, start)
		return err
	}); err != nil {
		return fmt.Errorf("reading failure counts: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accts.adopt(acctKey, acct, start, g.pol)
	g.addrs.adopt(addrKey, addr, start, g.pol)
	return nil
}

// record adds a failure at now to the records of acctKey and addrKey and
// returns the counts they then hold (n < 0: that key is not counted).
func (g *Guard) record(acctKey, addrKey string, now time.Time) (acct, addr sharedCount, err error) {
	err = g.pol.Shared.Update(func(r kv.Records) error {
		var err error
		acct, addr, err = g.readCounts(r, acctKey, addrKey, now)
		if err != nil {
			return err
		}
		acct.n, addr.n = acct.n+1, addr.n+1
		acct.last, addr.last = now, now
		if acctKey == "" {
			acct.n = -1
		} else if err := r.Set(sharedKey(prefixAcct, acctKey), encodeCount(acct)); err != nil {
			return err
		}
		if addrKey == "" {
			addr.n = -1
		} else if err := r.Set(sharedKey(prefixAddr, addrKey), encodeCount(addr)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return sharedCount{n: -1}, sharedCount{n: -1}, fmt.Errorf("recording a failure: %w", err)
	}
	return acct, addr, nil
}

// forgive removes acctKey's record and lowers addrKey's by as many
// failures as the account had (succeeded's rule), and returns how many
// that was. Only a login whose account had failures on record comes here.
func (g *Guard) forgive(acctKey, addrKey string, now time.Time) (int, error) {
	var forgiven int
	err := g.pol.Shared.Update(func(r kv.Records) error {
		c, a, err := g.readCounts(r, acctKey, addrKey, now)
		if err != nil {
			return err
		}
		forgiven = c.n
		if err := r.Delete(sharedKey(prefixAcct, acctKey)); err != nil {
			return err
		}
		if addrKey == "" || forgiven == 0 || a.n == 0 {
			return nil
		}
		key := sharedKey(prefixAddr, addrKey)
		a.n -= min(forgiven, a.n)
		if a.n == 0 {
			return r.Delete(key)
		}
		return r.Set(key, encodeCount(a))
	})
	if err != nil {
		return 0, fmt.Errorf("forgiving failures: %w", err)
	}
	return forgiven, nil
}

// A sweep deletes stale records sweepBatch at a time (one transaction
// each), and at most maxSweepBatches batches: a flood of failing
// addresses (an IPv6 guesser with many /64s) leaves many records, and a
// sweep that took a fixed number a lockout would fall behind.
const (
	sweepBatch      = 1000
	maxSweepBatches = 100
)

// sweep deletes records whose failures are forgotten, at most once a
// lockout per node, from the failure path: records no attempt comes back
// to would otherwise stay in the store for good.
func (g *Guard) sweep(now time.Time) {
	g.mu.Lock()
	due := now.Sub(g.swept) >= g.pol.Lockout
	if due {
		g.swept = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	batch := cmp.Or(g.sweepBatch, sweepBatch)
	var total int
	for range maxSweepBatches {
		var n int
		err := g.pol.Shared.Update(func(r kv.Records) error {
			var stale [][]byte
			err := r.Scan([]byte(keyspace.AuthGuard), func(k, v []byte) error {
				c, err := decodeCount(v)
				if err == nil && now.Sub(c.last) < g.pol.Lockout {
					return nil
				}
				stale = append(stale, append([]byte(nil), k...))
				if len(stale) >= batch {
					return kv.ErrStop
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range stale {
				if err := r.Delete(k); err != nil {
					return err
				}
			}
			n = len(stale)
			return nil
		})
		if err != nil {
			g.log.Warn("deleting expired failure counts", "err", err)
			break
		}
		total += n
		if n < batch {
			break
		}
	}
	if total > 0 {
		g.log.Debug("deleted expired failure counts", "records", total)
	}
}
