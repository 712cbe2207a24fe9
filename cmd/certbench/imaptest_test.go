package main

import "testing"

// TestImaptestTotal reads the Totals row of imaptest's own output (a
// logout=0 run: LOGIN once per client, no LOGOUT column).
func TestImaptestTotal(t *testing.T) {
	out := `Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe 
100%  50%  50% 100% 100% 100%  50% 100% 100% 100% 
                          30%                  5% 
   0   20   20    0    6    6   14   17   15   25 ms/cmd avg

Totals:
Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe 
100%  50%  50% 100% 100% 100%  50% 100% 100% 100% 
                          30%                  5% 
  20 13965 14034   20 27960 39985 11603 14102 27960 15026 
`
	got, ok := imaptestTotal(out)
	if want := 20 + 13965 + 14034 + 20 + 27960 + 39985 + 11603 + 14102 + 27960 + 15026; !ok || got != want {
		t.Fatalf("imaptestTotal = %d, %v; want %d", got, ok, want)
	}
	if _, ok := imaptestTotal("imaptest: connection refused\n"); ok {
		t.Fatal("a total from output without one")
	}
}
