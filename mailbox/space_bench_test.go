package mailbox

import "testing"

// BenchmarkFreeSpace is the cost the disk check adds to each write
// transaction and each message stored.
func BenchmarkFreeSpace(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if _, err := freeSpace(dir); err != nil {
			b.Fatal(err)
		}
	}
}
