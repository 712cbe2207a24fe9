// Package buildinfo says which certmail this is: the module version and
// the VCS revision the Go toolchain stamped into the binary
// (runtime/debug.ReadBuildInfo), for `certmail version`, the log's first
// line and anything else that names the build.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what the binary knows of its build.
type Info struct {
	// Version is the main module's version: a tag (v1.2.3), a
	// pseudo-version, or "(devel)" for a build from a work tree.
	Version string
	// Revision is the VCS commit, Time its commit time (RFC 3339), and
	// Modified whether the work tree had uncommitted changes; empty and
	// false when the build carries no VCS stamp (go run, -buildvcs=false,
	// a test binary).
	Revision string
	Time     string
	Modified bool
	// Go is the toolchain version, Platform GOOS/GOARCH.
	Go       string
	Platform string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if !ok || bi == nil {
		return in
	}
	if bi.Main.Version != "" {
		in.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		in.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// ShortRevision is the revision's first 12 digits, with "+dirty" when
// the work tree was modified; "unknown" without a VCS stamp.
func (in Info) ShortRevision() string {
	if in.Revision == "" {
		return "unknown"
	}
	r := in.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if in.Modified {
		r += "+dirty"
	}
	return r
}

// String is one line: "certmail v1.2.3 (rev 0123456789ab, 2026-12-06T01:00:00Z) go1.25 linux/amd64".
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("certmail ")
	b.WriteString(in.Version)
	b.WriteString(" (rev ")
	b.WriteString(in.ShortRevision())
	if in.Time != "" {
		b.WriteString(", ")
		b.WriteString(in.Time)
	}
	b.WriteString(") ")
	b.WriteString(in.Go)
	b.WriteString(" ")
	b.WriteString(in.Platform)
	return b.String()
}
