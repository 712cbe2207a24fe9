package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	rpprof "runtime/pprof"
	"sync"
)

// Profiling for the benchmark (cmd/certbench --cpuprofile): when
// CERTMAIL_PPROF names a listen address, serve runs net/http/pprof there,
// plus two endpoints that start and stop a CPU profile written to a file,
// so a profile covers exactly one workload. Nothing listens without the
// variable; the public HTTP listener never serves these.
func init() {
	addr := os.Getenv("CERTMAIL_PPROF")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	var mu sync.Mutex
	var out *os.File
	mux.HandleFunc("POST /cpuprofile/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if out != nil {
			http.Error(w, "already profiling", http.StatusConflict)
			return
		}
		f, err := os.Create(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := rpprof.StartCPUProfile(f); err != nil {
			f.Close()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out = f
	})
	mux.HandleFunc("POST /cpuprofile/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if out == nil {
			http.Error(w, "not profiling", http.StatusConflict)
			return
		}
		rpprof.StopCPUProfile()
		err := out.Close()
		out = nil
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			slog.Error(fmt.Sprintf("CERTMAIL_PPROF listener: %v", err))
		}
	}()
}
