package node

import (
	"log/slog"
	"testing"

	"certmail/config"
	"certmail/mailbox"
)

// TestStoreOptionsDiskReserve: the config's default reserve is the
// store's (config does not import the store), and disk_reserve = 0 turns
// the check off rather than meaning the store's default.
func TestStoreOptionsDiskReserve(t *testing.T) {
	if config.DefaultDiskReserve != mailbox.DefaultDiskReserve {
		t.Fatalf("config.DefaultDiskReserve %d != mailbox.DefaultDiskReserve %d", config.DefaultDiskReserve, mailbox.DefaultDiskReserve)
	}
	cfg := config.Default()
	for _, tc := range []struct{ set, want int64 }{{0, -1}, {8 << 20, 8 << 20}, {config.DefaultDiskReserve, mailbox.DefaultDiskReserve}} {
		cfg.Limits.DiskReserve = config.ByteSize(tc.set)
		o, err := StoreOptions(cfg, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		if o.DiskReserve != tc.want {
			t.Errorf("disk_reserve %d: store DiskReserve %d, want %d", tc.set, o.DiskReserve, tc.want)
		}
	}
}

// TestStoreOptionsSoleLease: [store] sole_lease reaches the store.
func TestStoreOptionsSoleLease(t *testing.T) {
	cfg := config.Default()
	for _, on := range []bool{true, false} {
		cfg.Store.SoleLease = on
		o, err := StoreOptions(cfg, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		if o.SoleLease != on {
			t.Errorf("sole_lease = %v: store SoleLease %v", on, o.SoleLease)
		}
	}
}
