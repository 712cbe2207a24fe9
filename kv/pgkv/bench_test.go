package pgkv

import (
	"fmt"
	"strings"
	"testing"

	"certmail/kv"
	"certmail/kv/badgerkv"
)

// BenchmarkOps measures time, round trips and wire bytes per operation on
// the private cluster (loopback, fsync on), beside Badger on disk with a
// Sync after each write (the same durability). Run alone, on a quiet
// machine:
//
//	go test -run '^$' -bench Ops -benchtime 2000x ./kv/pgkv
func BenchmarkOps(b *testing.B) {
	value := make([]byte, 100)
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i * 31)
	}
	ops := []struct {
		name string
		fn   func(e kv.Engine, i int) error
	}{ // names starting with Get or Scan only read
		{"Get", func(e kv.Engine, i int) error {
			return kv.View(e, func(tx kv.Txn) error {
				_, err := tx.Get(fmt.Appendf(nil, "s/%05d", i%1000), nil)
				return err
			})
		}},
		{"Set", func(e kv.Engine, i int) error {
			return kv.Update(e, func(tx kv.Txn) error { return tx.Set(fmt.Appendf(nil, "w/%08d", i), value) })
		}},
		{"ReadModifyWrite", func(e kv.Engine, i int) error {
			return kv.Update(e, func(tx kv.Txn) error {
				k := fmt.Appendf(nil, "s/%05d", i%1000)
				v, err := tx.Get(k, nil)
				if err != nil {
					return err
				}
				return tx.Set(k, v)
			})
		}},
		// A delivery's shape: read a few records, write ten.
		{"Read2Write10", func(e kv.Engine, i int) error {
			return kv.Update(e, func(tx kv.Txn) error {
				for j := range 2 {
					if _, err := tx.Get(fmt.Appendf(nil, "s/%05d", (i+j)%1000), nil); err != nil {
						return err
					}
				}
				for j := range 10 {
					if err := tx.Set(fmt.Appendf(nil, "d/%08d/%02d", i, j), value); err != nil {
						return err
					}
				}
				return nil
			})
		}},
		{"Scan100", func(e kv.Engine, i int) error {
			return kv.View(e, func(tx kv.Txn) error {
				n := 0
				err := tx.Scan(kv.Range{Prefix: []byte("s/"), Start: fmt.Appendf(nil, "s/%05d", i%900)}, func(k, v []byte) error {
					if n++; n == 100 {
						return kv.ErrStop
					}
					return nil
				})
				return err
			})
		}},
		{"Set1MiB", func(e kv.Engine, i int) error {
			return kv.Update(e, func(tx kv.Txn) error { return tx.Set(fmt.Appendf(nil, "m/%08d", i), body) })
		}},
		{"Get1MiB", func(e kv.Engine, i int) error {
			return kv.View(e, func(tx kv.Txn) error {
				_, err := tx.Get([]byte("m/big"), nil)
				return err
			})
		}},
	}
	seed := func(b *testing.B, e kv.Engine) {
		err := kv.Update(e, func(tx kv.Txn) error {
			for i := range 1000 {
				if err := tx.Set(fmt.Appendf(nil, "s/%05d", i), value); err != nil {
					return err
				}
			}
			return tx.Set([]byte("m/big"), body)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("engine=postgres", func(b *testing.B) {
		e := open(b)
		defer e.Close()
		seed(b, e)
		for _, op := range ops {
			b.Run(op.name, func(b *testing.B) {
				before := e.Stats()
				for i := 0; b.Loop(); i++ {
					if err := op.fn(e, i); err != nil {
						b.Fatal(err)
					}
				}
				after := e.Stats()
				n := float64(b.N)
				b.ReportMetric(float64(after.RoundTrips-before.RoundTrips)/n, "roundtrips/op")
				b.ReportMetric(float64(after.BytesSent-before.BytesSent+after.BytesReceived-before.BytesReceived)/n, "wirebytes/op")
			})
		}
	})
	b.Run("engine=badger", func(b *testing.B) {
		db, err := badgerkv.Open(badgerkv.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		seed(b, db)
		for _, op := range ops {
			b.Run(op.name, func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					if err := op.fn(db, i); err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(op.name, "Get") || strings.HasPrefix(op.name, "Scan") {
						continue
					}
					if err := db.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}
