#!/usr/bin/env python3
"""Captures the first bytes real TLS clients send and writes them as
test/unit/dataplane/client_hello_vectors.hpp (the tests of client_hello.cpp).

    python3 test/unit/dataplane/client_hello_capture.py > test/unit/dataplane/client_hello_vectors.hpp

Each client connects to a loopback port where a tiny server reads whatever arrives until the
client has been silent for a second, then closes: the handshake fails, which is fine. Needs
openssl, curl, node and java (Debian 12: OpenSSL 3.0, which has no X25519MLKEM768: the
post-quantum-sized hello is made from a captured one, see make_pq()).
"""
import os
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


def capture(client, timeout=8.0):
    """Runs CLIENT(port) (a command list, or a callable that connects) and returns the bytes received."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(timeout)
    port = srv.getsockname()[1]
    got = {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(1.0)
        data = b""
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        except socket.timeout:
            pass
        got["data"] = data
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    cmd = client(port)
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=timeout + 20)
    t.join()
    srv.close()
    return got["data"]


def records(data):
    """(type, payload) of each TLS record in DATA; DATA must be whole records."""
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i + 3:i + 5], "big")
        out.append((data[i], data[i + 5:i + 5 + n]))
        i += 5 + n
    assert i == len(data), "not whole records"
    return out


def handshake(data):
    return b"".join(p for t, p in records(data) if t == 22)


def body_len(data):
    return int.from_bytes(handshake(data)[1:4], "big")


def py_client(name, alpn=None, tls=None):
    code = f"""
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
{"ctx.maximum_version = ssl.TLSVersion." + tls if tls else ""}
{"ctx.set_alpn_protocols(" + repr(alpn) + ")" if alpn else ""}
s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
try:
    ctx.wrap_socket(s, server_hostname={name!r})
except Exception:
    pass
"""
    return lambda port: [sys.executable, "-c", code.replace("PORT", str(port))]


def openssl(*args):
    return lambda port: ["timeout", "5", "openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                         *args]


def curl(name):
    return lambda port: ["curl", "-sk", "--max-time", "3", "--resolve",
                         f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/"]


def node(name):
    js = ("const t=require('tls');const s=t.connect({host:'127.0.0.1',port:PORT,servername:'%s',"
          "ALPNProtocols:['h2','http/1.1'],rejectUnauthorized:false});s.on('error',()=>{});"
          "setTimeout(()=>process.exit(0),3000);" % name)
    return lambda port: ["node", "-e", js.replace("PORT", str(port))]


JAVA = r"""
import javax.net.ssl.*; import java.util.List;
public class Hello {
  public static void main(String[] a) throws Exception {
    SSLSocket s = (SSLSocket) SSLSocketFactory.getDefault().createSocket("127.0.0.1", Integer.parseInt(a[0]));
    SSLParameters p = s.getSSLParameters();
    p.setServerNames(List.of(new SNIHostName(a[1])));
    s.setSSLParameters(p);
    s.setSoTimeout(3000);
    try { s.startHandshake(); } catch (Exception e) {}
  }
}
"""


def java(name):
    path = "/tmp/l4lb-hello-capture/Hello.java"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(JAVA)
    return lambda port: ["java", path, str(port), name]


def make_pq(data):
    """DATA (a one-record TLS 1.3 ClientHello with key_share and supported_groups) with an
    X25519MLKEM768 (group 0x11ec) key share of 1216 bytes put first, and 0x11ec first in
    supported_groups, every length field rewritten: the shape of a hello from a client
    that offers the hybrid post-quantum group (Chrome 131+, Firefox 132+, OpenSSL 3.5).
    The share's bytes are a fixed pattern (i*7 mod 256), not a real key."""
    (rtype, hs), = records(data)
    assert rtype == 22 and hs[0] == 1
    body = hs[4:]
    i = 2 + 32
    i += 1 + body[i]
    i += 2 + int.from_bytes(body[i:i + 2], "big")
    i += 1 + body[i]
    head, exts_in = body[:i], body[i + 2:]
    exts, j = b"", 0
    while j < len(exts_in):
        et = int.from_bytes(exts_in[j:j + 2], "big")
        n = int.from_bytes(exts_in[j + 2:j + 4], "big")
        ed = exts_in[j + 4:j + 4 + n]
        j += 4 + n
        if et == 10:  # supported_groups
            groups = b"\x11\xec" + ed[2:]
            ed = len(groups).to_bytes(2, "big") + groups
        elif et == 51:  # key_share
            share = bytes((k * 7) % 256 for k in range(1216))
            shares = b"\x11\xec" + len(share).to_bytes(2, "big") + share + ed[2:]
            ed = len(shares).to_bytes(2, "big") + shares
        exts += et.to_bytes(2, "big") + len(ed).to_bytes(2, "big") + ed
    body = head + len(exts).to_bytes(2, "big") + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def alpn_list(total):
    """Protocol names (255 bytes each, then a shorter last one) whose wire size is TOTAL bytes."""
    out, k = [], 0
    while total > 0:
        n = min(255, total - 1)
        if total - (n + 1) == 1:  # never leave 1 byte: a name needs a length byte and a byte
            n -= 1
        out.append(("p%04d" % k + "x" * 255)[:n])
        total -= n + 1
        k += 1
    return out


def two_record_hello():
    """A Python (OpenSSL 3.0) hello whose handshake body is exactly 16384 bytes (kMaxHello), so
    that the handshake message (16388 bytes) is sent in two records: 16384 + 4 bytes."""
    size = 15000
    for _ in range(6):
        data = capture(py_client("two-records.example", alpn=alpn_list(size)))
        diff = 16384 - body_len(data)
        if diff == 0:
            return data
        size += diff
    raise SystemExit("could not size the two-record hello")


VECTORS = [
    # name, how it was made, client, expected server name
    ("openssl_tls13_sni", "openssl s_client -tls1_3 -servername example.com",
     openssl("-tls1_3", "-servername", "example.com"), "example.com"),
    ("openssl_tls12_sni", "openssl s_client -tls1_2 -servername Www.Example.ORG (case kept as sent)",
     openssl("-tls1_2", "-servername", "Www.Example.ORG"), "Www.Example.ORG"),
    ("openssl_tls13_nosni", "openssl s_client -tls1_3 -noservername",
     openssl("-tls1_3", "-noservername"), ""),
    ("openssl_tls12_nosni", "openssl s_client -tls1_2 -noservername",
     openssl("-tls1_2", "-noservername"), ""),
    ("openssl_tls12_trailing_dot", "openssl s_client -tls1_2 -servername db.example.com. (trailing dot)",
     openssl("-tls1_2", "-servername", "db.example.com."), "db.example.com."),
    ("python_sni_alpn", "Python ssl, server_hostname=api.internal.example, ALPN h2, http/1.1",
     py_client("api.internal.example", alpn=["h2", "http/1.1"]), "api.internal.example"),
    ("python_nosni", "Python ssl, server_hostname=None",
     py_client(None), ""),
    ("python_tls12_sni", "Python ssl, maximum_version TLSv1_2, server_hostname=legacy.example",
     py_client("legacy.example", tls="TLSv1_2"), "legacy.example"),
    ("curl_sni", "curl -k --resolve sni.curl.test:PORT:127.0.0.1 https://sni.curl.test:PORT/",
     curl("sni.curl.test"), "sni.curl.test"),
    ("node_sni", "Node 20 tls.connect servername=node.example.net, ALPN h2, http/1.1",
     node("node.example.net"), "node.example.net"),
    ("java_sni", "OpenJDK 17 SSLSocket, SNIHostName java.example.com",
     java("java.example.com"), "java.example.com"),
    ("python_big_alpn", "Python ssl, server_hostname=big.example.com, ALPN of 3000 bytes "
     "(a hello larger than one 1460-byte TCP segment)",
     py_client("big.example.com", alpn=alpn_list(3000)), "big.example.com"),
]


def hexlines(data, indent="    "):
    h = data.hex()
    return "\n".join(f'{indent}"{h[i:i + 120]}"' for i in range(0, len(h), 120))


def main():
    out = []
    for name, how, client, sni in VECTORS:
        data = capture(client)
        assert data and data[0] == 22, f"{name}: no TLS record received"
        handshake(data)  # whole records
        out.append((name, how, sni, data))
        print(f"{name}: {len(data)} bytes", file=sys.stderr)
    base = next(d for n, _, _, d in out if n == "openssl_tls13_sni")
    out.append(("synthetic_pq_keyshare",
                "openssl_tls13_sni rewritten by make_pq() in client_hello_capture.py: an "
                "X25519MLKEM768 key share of 1216 bytes added (OpenSSL 3.0 cannot send one)",
                "example.com", make_pq(base)))
    two = two_record_hello()
    out.append(("python_two_records",
                "Python ssl, server_hostname=two-records.example, ALPN sized so that the "
                "handshake body is 16384 bytes: OpenSSL sends it in two records (16384 + 4)",
                "two-records.example", two))
    big = capture(py_client("too-large.example", alpn=alpn_list(20000)))
    print(f"python_two_records: {len(two)} bytes; too large: {len(big)} bytes", file=sys.stderr)

    w = sys.stdout.write
    w("// ClientHellos captured from real TLS clients by client_hello_capture.py (beside this file;\n"
      "// it regenerates this header). Each is every byte the client sent before waiting for the\n"
      "// server: whole TLS records. Hex, decoded by the tests.\n"
      "#pragma once\n#include <string_view>\n\nnamespace hello_vectors {\n\n"
      "struct Capture {\n  std::string_view name;\n  std::string_view how;  // how it was produced\n"
      "  std::string_view server_name;  // what the client put in server_name, empty if none\n"
      "  std::string_view hex;\n};\n\n")
    for name, how, sni, data in out:
        w(f"// {name}: {how}; {len(data)} bytes.\n")
        w(f"inline constexpr std::string_view {name} =\n{hexlines(data)};\n\n")
    w("inline constexpr Capture kCaptures[] = {\n")
    for name, how, sni, data in out:
        how_c = how.replace('"', '\\"')
        w(f'    {{"{name}", "{how_c}", "{sni}", {name}}},\n')
    w("};\n\n")
    w(f"// The first 64 bytes of a Python ssl hello with server_hostname=too-large.example and an\n"
      f"// ALPN list of 20000 bytes: a handshake body of {body_len(big)} bytes, over kMaxHello\n"
      f"// (the whole capture is {len(big)} bytes, in two records).\n")
    w(f"inline constexpr std::string_view too_large_head =\n{hexlines(big[:64])};\n\n")
    w("}  // namespace hello_vectors\n")


if __name__ == "__main__":
    main()
