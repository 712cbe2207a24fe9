package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99",
		Main:      debug.Module{Path: "certmail", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-06T01:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	in := fromBuildInfo(bi, true)
	if in.Version != "v1.2.3" || in.ShortRevision() != "0123456789ab+dirty" || in.Go != "go1.99" {
		t.Fatalf("%+v", in)
	}
	want := "certmail v1.2.3 (rev 0123456789ab+dirty, 2026-12-06T01:00:00Z) go1.99 " + in.Platform
	if in.String() != want {
		t.Fatalf("%q, want %q", in.String(), want)
	}
	if in := fromBuildInfo(nil, false); in.Version != "(devel)" || in.ShortRevision() != "unknown" {
		t.Fatalf("no build info: %+v", in)
	}
}
