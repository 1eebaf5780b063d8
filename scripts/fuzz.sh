#!/usr/bin/env bash
# Builds the libFuzzer targets (test/fuzz/fuzz_*.cpp, clang++ with ASan + UBSan) into
# build/fuzz/ and fuzzes each for SECONDS (default 30). Replays test/fuzz/regressions/
# first. A crash, timeout or OOM is copied to test/fuzz/regressions/NAME/ and the script
# exits 1.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: config duration address
#                                              status_line admin_request proxy_header
#                                              client_hello
#   FUZZ_FLAGS="-rss_limit_mb=512 -timeout=2" scripts/fuzz.sh 60 config   extra flags
#   CLANGXX=clang++-14 (default: clang++-14 if present, else clang++)
# Inputs found are kept in build/fuzz/corpus/NAME/ (the seeds in test/fuzz/corpus/ are
# only read).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift $(( $# > 0 ? 1 : 0 ))
all=(config duration address status_line admin_request proxy_header client_hello)
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
CLANGXX=${CLANGXX:-$(command -v clang++-14 || command -v clang++ || echo clang++)}
out=build/fuzz
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Iinclude -DL4LB_VERSION='"fuzz"')

srcs() {  # the l4lb sources (and libraries) each target links
  case $1 in
    config)        echo src/config/config.cpp src/base/address.cpp src/base/hosts_file.cpp src/base/duration.cpp src/base/text.cpp src/base/cidr.cpp src/base/file.cpp src/dataplane/sni_table.cpp src/dataplane/client_hello.cpp -lyaml-cpp -lfmt ;;
    duration)      echo src/base/duration.cpp src/base/text.cpp ;;
    address)       echo src/base/address.cpp src/base/text.cpp ;;
    status_line)   echo src/health/http_probe.cpp -lfmt ;;
    admin_request) echo src/admin/admin_http.cpp src/admin/routes.cpp src/control/state_file.cpp src/base/text.cpp src/base/file.cpp -lfmt ;;
    proxy_header)  echo src/dataplane/proxy_header.cpp src/base/address.cpp src/base/text.cpp ;;
    client_hello)  echo src/dataplane/client_hello.cpp ;;
    *) echo "unknown fuzz target: $1" >&2; return 1 ;;
  esac
}
max_len() { [ "$1" = config ] && echo 65536 || echo 4096; }

build() {  # rebuilds build/fuzz/fuzz_NAME when a source or header is newer
  local name=$1 bin=$out/fuzz_$1 deps
  deps=$(srcs "$name") || return 1
  if [ -x "$bin" ] && [ -z "$(find test/fuzz/fuzz_"$name".cpp test/fuzz/fuzz.hpp include/l4lb \
        $(tr ' ' '\n' <<<"$deps" | grep '^src/') -newer "$bin" 2>/dev/null | head -1)" ]; then
    return 0
  fi
  echo "== build $bin"
  # shellcheck disable=SC2086  # DEPS is a word list
  "$CLANGXX" "${flags[@]}" -o "$bin" test/fuzz/fuzz_"$name".cpp $deps
}

mkdir -p "$out"
status=0
for name in "${targets[@]}"; do
  build "$name" || { echo "FAIL $name: build"; status=1; continue; }
  bin=$out/fuzz_$name
  reg=test/fuzz/regressions/$name

  # 1. Replay every input that once failed (libFuzzer runs files given as arguments).
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    if ! "$bin" -timeout=5 -rss_limit_mb=2048 "$reg"/* >"$out/$name.replay.log" 2>&1; then
      echo "FAIL $name: a regression input fails again (see $out/$name.replay.log)"
      status=1; continue
    fi
    echo "ok   $name: $(ls "$reg" | wc -l) regression input(s) replayed"
  fi

  # 2. Fuzz. The first corpus dir receives new inputs; the seeds are only read.
  mkdir -p "$out/corpus/$name" "$out/artifacts/$name"
  rm -f "$out/artifacts/$name"/*
  # shellcheck disable=SC2086  # FUZZ_FLAGS is a word list
  "$bin" -max_total_time="$seconds" -max_len="$(max_len "$name")" -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$name/" ${FUZZ_FLAGS:-} \
    "$out/corpus/$name" "test/fuzz/corpus/$name" >"$out/$name.log" 2>&1
  rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$name.log" | tail -1)
  execs=$(grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$out/$name.log" | grep -oE '[0-9]+$')
  speed=$(grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$out/$name.log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' <<<"$done_line")
  found=$(ls "$out/artifacts/$name" 2>/dev/null)
  if [ $rc -ne 0 ] || [ -n "$found" ]; then
    mkdir -p "$reg"
    for f in $found; do cp "$out/artifacts/$name/$f" "$reg/"; done
    echo "FAIL $name (exit $rc): ${found:-no artifact} -> $reg/ (log: $out/$name.log)"
    grep -m1 -E 'ERROR: |runtime error:|==[0-9]+==' "$out/$name.log" | sed 's/^/     /'
    status=1
  else
    echo "ok   $name: ${execs:-?} runs in ${seconds}s (${speed:-?}/s), ${cov:-cov ?}"
  fi
done
exit $status
