# certmail — build and test.
#
#   make build      build ./certmail
#   make test       install the Debian programs the tests drive, then vet and test
#   make bench      compare certmail with Dovecot (see BENCHMARKS.md)

GO ?= go

# Real clients and peers the tests talk to. They are installed when missing,
# so the tests never skip what they need. Postfix is preseeded "No
# configuration": the tests run a private instance of their own, and the
# system's stays unconfigured. systemd gives systemd-analyze (the unit test),
# iproute2 the address in the remote-client test's network namespace,
# neomutt the QRESYNC client of the offline-resync test, thunderbird the
# headless Thunderbird of interop/thunderbird_test.go, postgresql the server
# binaries the PostgreSQL tests start private clusters with (kv/pgkv/pgtest;
# the package's own cluster stays as Debian set it up), libmail-imapclient-perl
# the Perl IMAP client of interop/imapclient_test.go (ID, COMPRESS, QUOTA),
# jq the README's submission command (interop/docs_test.go runs the docs'
# shell blocks).
TEST_PACKAGES := python3 libmail-imapclient-perl curl jq isync swaks openssl python3-jwcrypto dovecot-imapd dovecot-lmtpd postfix systemd iproute2 neomutt thunderbird postgresql haproxy

# The suites that run on both storage engines (kv/testengine).
ENGINE_PACKAGES := ./mailbox/... ./certified/... ./forwarding/... ./receipts/evidence/...

.PHONY: build test test-deps vet fuzz bench

build:
	$(GO) build -o certmail ./cmd/certmail

test-deps:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		echo "postfix postfix/main_mailer_type select No configuration" | $$SUDO debconf-set-selections; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vet:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

test: test-deps vet
	# -count=1: the interop tests build and run the binary, which the test
	# cache cannot see; a cached pass would not be a pass.
	$(GO) test -race -count=1 -timeout 20m ./...
	# The vendored go-imap is a module of its own, outside ./...: its tests
	# (certmail's patches among them) run here.
	cd third_party/go-imap && $(GO) test -race -count=1 ./...
	# The store-level suites again, on PostgreSQL (a private cluster per
	# test binary, kv/testengine): both engines pass the same tests.
	CERTMAIL_TEST_ENGINE=postgres $(GO) test -race -count=1 -timeout 20m $(ENGINE_PACKAGES)

# Run every fuzz target for a short while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
