# Run inside a private network namespace whose lo also holds 192.0.2.10
# (see remote_test.go): certmail listens there, and this client connects
# from that non-loopback address, as a remote client would.
import imaplib, socket, ssl, subprocess, sys, time

certmail, data, cert, key, host = sys.argv[1:6]
port, sport = 11143, 11993

def serve(*extra):
    p = subprocess.Popen([certmail, "serve", "--data", data, "--imap", f"{host}:{port}",
                          "--lmtp", "", "--http", "", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise SystemExit("certmail did not start: " + p.stderr.read().decode())

def stop(p):
    p.terminate()
    p.wait(timeout=20)

# Without TLS: LOGINDISABLED, and LOGIN refused.
p = serve()
m = imaplib.IMAP4(host, port)
assert "LOGINDISABLED" in m.capabilities, m.capabilities
assert "STARTTLS" not in m.capabilities, m.capabilities
try:
    m.login("alice", "remote-pw")
    raise SystemExit("FAIL: LOGIN without TLS from a remote address succeeded")
except imaplib.IMAP4.error as e:
    print("plain LOGIN refused:", e)
stop(p)

# With a certificate: STARTTLS, then LOGIN; and implicit TLS.
p = serve("--tls-cert", cert, "--tls-key", key, "--imaps", f"{host}:{sport}")
ctx = ssl.create_default_context(cafile=cert)
m = imaplib.IMAP4(host, port)
assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
assert "LOGINDISABLED" not in m.capabilities, m.capabilities
m.login("alice", "remote-pw")
print("STARTTLS LOGIN ok")
m.logout()
m = imaplib.IMAP4_SSL(host, sport, ssl_context=ctx)
m.login("alice", "remote-pw")
print("IMAPS LOGIN ok")
m.logout()
stop(p)

# allow_insecure_auth lifts the rule.
conf = data + ".insecure.toml"
# The connection limit counts this address (loopback_exempt spares only
# loopback clients).
open(conf, "w").write("allow_insecure_auth = true\n[limits]\nmax_connections_per_ip = 3\n")
p = serve("--config", conf)
m = imaplib.IMAP4(host, port)
assert "LOGINDISABLED" not in m.capabilities, m.capabilities
m.login("alice", "remote-pw")
print("insecure LOGIN ok")
# One at a time: each is counted once its greeting is out.
others, greetings = [], []
for _ in range(3):
    o = socket.create_connection((host, port))
    others.append(o)
    greetings.append(o.makefile("rb").readline())
assert greetings[0].startswith(b"* OK") and greetings[1].startswith(b"* OK"), greetings
assert greetings[2].startswith(b"* BYE too many connections from your address (limit 3)"), greetings
print("4th connection:", greetings[2].decode().strip())
m.logout()
stop(p)
print("PASS")
