// Package config owns certmail's configuration file: the TOML schema, its
// defaults, and validation. Load refuses unknown keys and bad values with the
// file, the line where it can tell, and the reason, so that a typo in a
// setting is caught at start instead of silently ignored. Command-line flags
// override what the file says; that merge happens in cmd/certmail.
package config
