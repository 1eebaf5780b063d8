# bench/sni_lib.sh — the `sni` test of bench/run.sh (sourced after lib.sh, not run):
# shellcheck shell=bash
# new connections that each send a captured TLS ClientHello to a listen address shared by
# four services routed by server name, and read the backend's reply.
#
# Layout: one balancer listen address, P_LB_SNI, with four routes — three exact names and one
# wildcard — each to its own port of one backend process (bench/sni_backend.c, on GEN_CPU) that
# answers with its own name. The balancer runs in its own process for this test (a fresh one
# each repeat), with only this listener. Names that match nothing have no route: each balancer
# closes them (l4lb: unrouted, reason no_match; HAProxy: no backend; nginx: empty proxy_pass).

P_SNI_A=$((PORT_BASE + 5))     # sni_backend: answers "sni-a"  (a.bench.test)
P_SNI_B=$((PORT_BASE + 6))     #              answers "sni-b"  (b.bench.test)
P_SNI_C=$((PORT_BASE + 7))     #              answers "sni-c"  (c.bench.test)
P_SNI_W=$((PORT_BASE + 8))     #              answers "sni-w"  (*.w.bench.test)
P_LB_SNI=$((PORT_BASE + 13))   # balancer, routing by server name -> P_SNI_*
SNI_C=${BENCH_SNI_CONNS:-64}   # parallel connections of the generator
# the names the load cycles through (one connection each, in turn): NAME:REPLY OF ITS BACKEND
SNI_LOAD=(a.bench.test:sni-a b.bench.test:sni-b c.bench.test:sni-c x.w.bench.test:sni-w)

# sni_prepare: compile the client and the backend, capture the ClientHellos (into $WORK/sni).
sni_prepare() {
  local d="$WORK/sni"
  mkdir -p "$d"
  ${CC:-cc} -O2 -o "$d/sni_client" "$BENCH_DIR/sni_client.c" || die "could not compile bench/sni_client.c (set CC)"
  ${CC:-cc} -O2 -o "$d/sni_backend" "$BENCH_DIR/sni_backend.c" || die "could not compile bench/sni_backend.c (set CC)"
  # One ClientHello per name, as Python's ssl (OpenSSL) would send it, captured through a
  # MemoryBIO: do_handshake() stops at SSLWantReadError with the hello in the outgoing BIO.
  python3 - "$d" a.bench.test b.bench.test c.bench.test x.w.bench.test q.r.w.bench.test \
    B.Bench.Test w.bench.test nomatch.other.test <<'EOF' || die "could not capture the ClientHellos (python3 ssl)"
import ssl, sys
d = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for name in sys.argv[2:]:
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = ctx.wrap_bio(inc, out, server_hostname=name)
    try:
        s.do_handshake()
        sys.exit("handshake did not stop for the server's answer")
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    assert hello[0] == 0x16 and len(hello) == 5 + (hello[3] << 8 | hello[4]), "not one TLS record"
    open("%s/hello-%s.bin" % (d, name), "wb").write(hello)
EOF
  SNI_HELLO_BYTES=$(stat -c %s "$d/hello-a.bench.test.bin")
}

sni_start_backend() {
  start_bg sni-backend taskset -c "$GEN_CPU" "$WORK/sni/sni_backend" \
    "$P_SNI_A=sni-a" "$P_SNI_B=sni-b" "$P_SNI_C=sni-c" "$P_SNI_W=sni-w"
  local p
  for p in "$P_SNI_A" "$P_SNI_B" "$P_SNI_C" "$P_SNI_W"; do
    wait_listen "$p" 10 || die "sni_backend did not start (see $WORK/sni-backend.log)"
  done
}

gen_haproxy_sni() {
  local dir=$1
  mkdir -p "$dir"
  cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 9850
    maxpipes 64
    pidfile $dir/haproxy.pid

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    option splice-auto

frontend fe_sni
    bind 127.0.0.1:$P_LB_SNI
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be_a if { req.ssl_sni -i a.bench.test }
    use_backend be_b if { req.ssl_sni -i b.bench.test }
    use_backend be_c if { req.ssl_sni -i c.bench.test }
    use_backend be_w if { req.ssl_sni -i -m end .w.bench.test }
    # no default_backend: a name that matches nothing is closed

backend be_a
    server s1 127.0.0.1:$P_SNI_A
backend be_b
    server s1 127.0.0.1:$P_SNI_B
backend be_c
    server s1 127.0.0.1:$P_SNI_C
backend be_w
    server s1 127.0.0.1:$P_SNI_W
EOF
}

gen_nginx_sni() {
  local dir=$1
  mkdir -p "$dir"
  { nginx_stream_head "$dir"; cat <<EOF
    preread_timeout 5s;
    map \$ssl_preread_server_name \$sni_upstream {
        hostnames;
        a.bench.test    127.0.0.1:$P_SNI_A;
        b.bench.test    127.0.0.1:$P_SNI_B;
        c.bench.test    127.0.0.1:$P_SNI_C;
        *.w.bench.test  127.0.0.1:$P_SNI_W;
        default         "";    # matches nothing: proxy_pass fails and the client is closed
    }
    server {
        listen 127.0.0.1:$P_LB_SNI backlog=4096;
        ssl_preread on;
        proxy_pass \$sni_upstream;
    }
}
EOF
  } >"$dir/nginx.conf"
}

gen_l4lb_sni() {
  local dir=$1 id name port
  mkdir -p "$dir"
  {
    cat <<EOF
global:
  workers: 1
  log_level: warn
  inspect_timeout: 5s
services:
EOF
    while read -r id name port; do
      cat <<EOF
  - name: sni-$id
    listen: 127.0.0.1:$P_LB_SNI
    sni: ["$name"]
    idle_timeout: 1h
    health_check: {type: none}
    backends:
      - address: 127.0.0.1:$port
EOF
    done <<EOF
a a.bench.test $P_SNI_A
b b.bench.test $P_SNI_B
c c.bench.test $P_SNI_C
w *.w.bench.test $P_SNI_W
EOF
    echo "  # no service without sni: a name that matches nothing is unrouted (no_match) and closed"
  } >"$dir/l4lb.yaml"
}

# sni_start_lb NAME : the balancer for the sni test, pinned to LB_CPU, in $WORK/NAME-sni;
# sets LB_PID ("" for direct) and SNI_PORT (the port the client connects to).
sni_start_lb() {
  local name=$1 dir="$WORK/$1-sni"
  LB_PID=
  SNI_PORT=$P_LB_SNI
  case $name in
    direct) SNI_PORT=$P_SNI_A; return 0 ;;
    haproxy)
      gen_haproxy_sni "$dir"
      start_bg "lb-$name-sni" taskset -c "$LB_CPU" haproxy -db -f "$dir/haproxy.cfg" ;;
    nginx)
      gen_nginx_sni "$dir"
      start_bg "lb-$name-sni" taskset -c "$LB_CPU" nginx -e "$dir/error.log" -c "$dir/nginx.conf" ;;
    l4lb)
      gen_l4lb_sni "$dir"
      start_bg "lb-$name-sni" taskset -c "$LB_CPU" "$L4LB_BIN" -c "$dir/l4lb.yaml" ;;
    *) die "no sni configuration for balancer $name" ;;
  esac
  LB_PID=$LASTPID
  if ! wait_listen "$P_LB_SNI" 10; then
    cat "$WORK/lb-$name-sni.log" >&2 || true
    die "$name did not start listening on $P_LB_SNI"
  fi
  sleep 0.3   # let nginx fork its worker
}

sni_stop_lb() {
  [[ -n ${LB_PID:-} ]] || return 0
  stop_pid "$LB_PID"
  local i
  for ((i = 0; i < 50; i++)); do port_busy "$P_LB_SNI" || break; sleep 0.1; done
  LB_PID=
}

# sni_check NAME : every name reaches its backend, names that match nothing are closed without
# a reply. Output in $WORK/sni-check-NAME.txt; status 1 on any difference.
sni_check() {
  local name=$1 h="$WORK/sni/hello-" out="$WORK/sni-check-$1.txt"
  if [[ $name == direct ]]; then   # no routing: just the backend answering
    timeout 20 taskset -c "$GEN_CPU" "$WORK/sni/sni_client" check 127.0.0.1 "$SNI_PORT" "${h}a.bench.test.bin=sni-a" >"$out" 2>&1
    return
  fi
  # exact names, a wildcard one and two labels deep, case, no match, and the wildcard's own suffix
  timeout 60 taskset -c "$GEN_CPU" "$WORK/sni/sni_client" check 127.0.0.1 "$SNI_PORT" \
    "${h}a.bench.test.bin=sni-a" "${h}b.bench.test.bin=sni-b" "${h}c.bench.test.bin=sni-c" \
    "${h}x.w.bench.test.bin=sni-w" "${h}q.r.w.bench.test.bin=sni-w" "${h}B.Bench.Test.bin=sni-b" \
    "${h}nomatch.other.test.bin=-" "${h}w.bench.test.bin=-" >"$out" 2>&1
}

# sni_load NAME OUTFILE : the measured load (the names of SNI_LOAD in turn)
sni_load() {
  local name=$1 out=$2 p reply args=()
  for p in "${SNI_LOAD[@]}"; do
    reply=${p#*:}
    [[ $name == direct ]] && reply=sni-a   # direct: all to the backend port of a.bench.test
    args+=("$WORK/sni/hello-${p%%:*}.bin=$reply")
  done
  timeout $((WRK_T + 30)) taskset -c "$GEN_CPU" "$WORK/sni/sni_client" run 127.0.0.1 "$SNI_PORT" \
    "$SNI_C" "$WRK_T" "${args[@]}" >"$out" 2>&1
}
