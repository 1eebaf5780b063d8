#!/usr/bin/env bash
# Announce the service address over BGP only while this node's l4lb is healthy: polls l4lb's
# /health and turns BIRD's static protocol l4lb_service (conf/bird/bird.conf) on and off with
# birdc. See conf/bird/README.md for why this and not something else.
#
#   l4lb-bird-health.sh [-s BIRD_SOCKET] [-p PROTOCOL] [-u HEALTH_URL] [-i SECONDS] [-r N]
#
#   -s  BIRD's control socket            (default /run/bird/bird.ctl)
#   -p  the static protocol to switch     (default l4lb_service)
#   -u  l4lb's health URL                 (default http://127.0.0.1:9900/health)
#   -i  seconds between checks            (default 0.2)
#   -r  successes in a row before announcing again (default 2; one failure withdraws)
#
# /health answers 200 only while every service has an available backend; 503 while l4lb drains
# after SIGTERM ("stopping") or when a service has none; nothing once l4lb has exited. curl -f
# makes all of those a failure, and -m 0.5 makes a hung l4lb one too. So the route goes within
# one interval (+ curl's 0.5 s at worst) of l4lb saying goodbye, failing, or dying.
#
# The desired state is asserted again every 2 s even when nothing changed: a bird that was
# restarted comes up with l4lb_service disabled (as bird.conf says) and is set right at once.
# On SIGTERM/SIGINT the watcher withdraws the route before it exits: no watcher, no route.
set -u

sock=/run/bird/bird.ctl
proto=l4lb_service
url=http://127.0.0.1:9900/health
interval=0.2
rise=2
while getopts 's:p:u:i:r:' o; do
  case $o in
    s) sock=$OPTARG ;;
    p) proto=$OPTARG ;;
    u) url=$OPTARG ;;
    i) interval=$OPTARG ;;
    r) rise=$OPTARG ;;
    *) echo "usage: $0 [-s BIRD_SOCKET] [-p PROTOCOL] [-u HEALTH_URL] [-i SECONDS] [-r N]" >&2; exit 2 ;;
  esac
done

log() { printf '%s l4lb-bird-health: %s\n' "$(date '+%F %T.%3N')" "$*" >&2; }

# birdc CMD: enable or disable the protocol; true when BIRD took the command.
birdc_set() {
  local out
  out=$(birdc -s "$sock" "$1" "$proto" 2>&1) || { log "birdc $1 $proto: ${out:-failed}"; return 1; }
  case $out in
    *"$proto: "*abled*) return 0 ;;          # "enabled", "disabled", "already enabled/disabled"
    *) log "birdc $1 $proto: $out"; return 1 ;;
  esac
}

stopping=0
trap 'stopping=1' TERM INT

state=unknown   # what BIRD was last told: enable | disable | unknown
ok_run=0        # successes in a row
last=0          # $SECONDS when the state was last asserted
while [ $stopping -eq 0 ]; do
  if curl -fsS -m 0.5 -o /dev/null "$url" 2>/dev/null; then
    ok_run=$((ok_run + 1))
  else
    ok_run=0
  fi
  if [ $ok_run -ge "$rise" ]; then
    want=enable
  elif [ $ok_run -eq 0 ]; then
    want=disable
  else
    want=$state          # rising: keep what was (a withdrawn route stays withdrawn)
    [ "$want" = unknown ] && want=disable
  fi
  if [ "$want" != "$state" ] || [ $((SECONDS - last)) -ge 2 ]; then
    if birdc_set "$want"; then
      if [ "$want" != "$state" ]; then
        if [ "$want" = enable ]; then
          log "$url healthy $rise times in a row: announcing (enable $proto)"
        elif [ $ok_run -eq 0 ]; then
          log "$url failing: withdrawing (disable $proto)"
        else
          log "$url healthy $ok_run of $rise times: not announcing yet (disable $proto)"
        fi
      fi
      state=$want
      last=$SECONDS
    else
      state=unknown
    fi
  fi
  sleep "$interval" &
  wait $! 2>/dev/null
done
birdc_set disable && log "stopped: route withdrawn (disable $proto)"
exit 0
