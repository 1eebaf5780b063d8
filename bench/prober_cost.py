#!/usr/bin/env python3
# CPU cost of the prober: 1,000 backends (listeners that never accept) checked every
# second with TCP checks (or http: bench/prober_cost.py http). Prints % of one core.
#   python3 bench/prober_cost.py [tcp|http]
import socket, subprocess, time, os, sys
socks=[]
for i in range(1000):
    s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(64); socks.append(s)
ports=[s.getsockname()[1] for s in socks]
typ = sys.argv[1] if len(sys.argv)>1 else 'tcp'
cfg="global: {log_level: warn}\nservices:\n  - name: many\n    listen: 127.0.0.1:18950\n    health_check: {type: %s, interval: 1s, timeout: 500ms}\n    backends:\n" % typ
cfg+="".join(f"      - address: 127.0.0.1:{p}\n" for p in ports)
open('/tmp/l4lb-prober-cost.yaml','w').write(cfg)
p=subprocess.Popen([os.environ.get('L4LB_BIN', 'build/l4lb'),'-c','/tmp/l4lb-prober-cost.yaml'],stderr=open('/dev/null','w'))
time.sleep(3)
def cpu():
    f=open(f'/proc/{p.pid}/stat').read().rsplit(')',1)[1].split(); return (int(f[11])+int(f[12]))/100
c0=cpu(); t0=time.time(); time.sleep(10); c1=cpu(); t1=time.time()
print(f"{typ}: prober for 1000 backends @1s: {100*(c1-c0)/(t1-t0):.2f}% of a core")
# accept + answer for http
p.terminate(); p.wait()
