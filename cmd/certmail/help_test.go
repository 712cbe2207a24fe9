package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestEveryCommandHelp walks the command tree the binary runs and asks
// every command for --help: exit 0, the help on stdout, naming the
// command's own flags and no other command's (issue 15: `user --help`
// was an unknown subcommand, `policy show --help` listed set's flags,
// every --help exited 2).
func TestEveryCommandHelp(t *testing.T) {
	root := newRoot(&env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	n := 0
	walk(root, func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		n++
		t.Run(strings.Join(append([]string{"certmail"}, path...), "_"), func(t *testing.T) {
			r := certmail(t, "", append(path, "--help")...).must(t, 0)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			says := c.Short // cobra prints the Long description if there is one
			if c.Long != "" {
				says, _, _ = strings.Cut(c.Long, "\n")
			}
			if !strings.Contains(r.stdout, says) {
				t.Errorf("help does not say what %s does (%q):\n%s", c.CommandPath(), says, r.stdout)
			}
			c.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(r.stdout, "--"+f.Name) {
					t.Errorf("help of %s does not list --%s:\n%s", c.CommandPath(), f.Name, r.stdout)
				}
			})
			// -h works as --help.
			if r2 := certmail(t, "", append(path, "-h")...).must(t, 0); r2.stdout != r.stdout {
				t.Errorf("-h and --help differ:\n%s\n---\n%s", r2.stdout, r.stdout)
			}
		})
	})
	if n < 30 {
		t.Fatalf("walked only %d commands", n)
	}
	// `certmail help CMD` is CMD --help.
	if r := certmail(t, "", "help", "user", "add").must(t, 0); !strings.Contains(r.stdout, "--password-stdin") {
		t.Errorf("help user add:\n%s", r.stdout)
	}
	// Each subcommand has its own flags.
	if r := certmail(t, "", "policy", "show", "--help").must(t, 0); strings.Contains(r.stdout, "--forward-unread-after") {
		t.Errorf("policy show --help lists set's flags:\n%s", r.stdout)
	}
	// The overview names every command and the root's flags.
	r := certmail(t, "", "--help").must(t, 0)
	for _, want := range []string{"user add NAME", "deliver --to USER", "evidence [LABEL]", "--version", "--help", "completion"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("certmail --help does not mention %q:\n%s", want, r.stdout)
		}
	}
}

// TestUsageErrors: a command line that cannot run exits 2 with one line
// naming what is wrong and where the help is.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add"}, "want 1 argument(s) (NAME), got 0"},
		{[]string{"user", "frob"}, `unknown subcommand "frob"`},
		{[]string{"user"}, "missing subcommand"},
		{[]string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"deliver"}, `required flag(s) "to" not set`},
		{[]string{"forward", "alice", "--uid", "x", "--to", "bob"}, `invalid argument "x" for "--uid"`},
		{[]string{"unread", "--older-than", "3x"}, `invalid argument "3x" for "--older-than"`},
		{[]string{"sign", "--user", "alice"}, "--label L or --all"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
	} {
		r := certmail(t, "", tc.args...).must(t, exitUsage)
		cmd := "certmail " + strings.Join(tc.args[:1], " ")
		if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--help' for usage") || !strings.HasPrefix(r.stderr, cmd) {
			t.Errorf("%v: stderr %q, want %q and a pointer to %s --help", tc.args, r.stderr, tc.want, cmd)
		}
	}
}

// TestCompletion: the shell completion scripts come from the same tree.
func TestCompletion(t *testing.T) {
	r := certmail(t, "", "completion", "bash").must(t, 0)
	if !strings.Contains(r.stdout, "__start_certmail") {
		t.Fatalf("completion bash:\n%.300s", r.stdout)
	}
	// What the script asks the binary for: the subcommands of user.
	r = certmail(t, "", "__complete", "user", "").must(t, 0)
	for _, sub := range []string{"add", "passwd", "del", "list"} {
		if !strings.Contains(r.stdout, sub) {
			t.Errorf("completing `certmail user `: %s", r.stdout)
		}
	}
	r = certmail(t, "", "__complete", "policy", "set", "alice", "--").must(t, 0)
	if !strings.Contains(r.stdout, "--forward-unread-after") {
		t.Errorf("completing policy set flags: %s", r.stdout)
	}
}

// TestManPages: certmail man writes a page per command from the same
// tree, naming its flags.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	certmail(t, "", "man", "--dir", dir).must(t, 0)
	root := newRoot(&env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	walk(root, func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		page, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no page for %s: %v", c.CommandPath(), err)
			return
		}
		if !strings.Contains(string(page), ".SH NAME") {
			t.Errorf("%s: no NAME section", name)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(string(page), `\fB--`+f.Name+`\fP`) {
				t.Errorf("%s does not list --%s", name, f.Name)
			}
		})
	})
}
