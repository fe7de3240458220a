# What the scripts in benches/proxy share. Sourced, not run.

# cleanup: for `trap cleanup EXIT`. Stops what the script started (the pids in its `pids`
# array, and nginx by WORK/nginx.pid), removes WORK and the CPU quota groups.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  rm -rf "$WORK"
  local g
  for g in "${quota_groups[@]}"; do
    for _ in $(seq 1 50); do rmdir "$g" 2>/dev/null && break; sleep 0.1; done
  done
}

# CPU_QUOTA_US (default 50000): the CPU time per 100 ms that `cpu_quota` gives each proxy
# under test; 0 runs them without a quota.
CPU_QUOTA_US=${CPU_QUOTA_US:-50000}
quota_groups=()

# cpu_quota PID NAME: holds PID and its children (nginx's workers) to CPU_QUOTA_US of CPU
# time per 100 ms with a cgroup v1 `cpu` group of their own, so the proxy is surely the
# bottleneck and never the load generator or the upstream on the other core: requests/s then
# measures the proxy, and each proxy of a comparison gets the same share of a core. Without a
# writable /sys/fs/cgroup/cpu (not root, or cgroup v2 only) it says so and runs unlimited.
cpu_quota() {
  local pid=$1 name=$2 group p
  [ "$CPU_QUOTA_US" -gt 0 ] || return 0
  group=/sys/fs/cgroup/cpu/turnpike-bench-$$-$name
  if ! mkdir -p "$group" 2>/dev/null || ! echo 100000 > "$group/cpu.cfs_period_us" 2>/dev/null; then
    echo "no writable cgroup v1 cpu controller: $name runs without a CPU quota" >&2
    return 0
  fi
  quota_groups+=("$group")
  echo "$CPU_QUOTA_US" > "$group/cpu.cfs_quota_us"
  for p in "$pid" $(pgrep -P "$pid" || true); do echo "$p" > "$group/cgroup.procs"; done
}

# quota_note: how the proxies were held, for the report's heading.
quota_note() {
  if [ "${#quota_groups[@]}" -gt 0 ]; then
    echo "each proxy held to $((CPU_QUOTA_US / 1000)) ms of CPU per 100 ms (cgroup cpu quota)"
  else
    echo "no CPU quota"
  fi
}

# bench_binary ROOT [PROFILE]: prints the path of the benchmark binary (benches/proxy/server.rs)
# built with PROFILE (default `bench`: release with thin LTO, minutes instead of twenty),
# building it unless BENCH_BIN names one built before.
bench_binary() {
  local bin profile=${2:-bench}
  if [ -z "${BENCH_BIN:-}" ]; then
    echo "building the benchmark binary ($profile)..." >&2
    bin=$(cd "$1" && cargo build --profile "$profile" --bench proxy_server --message-format=json 2>/dev/null \
      | grep -o '"executable":"[^"]*proxy_server[^"]*"' | tail -1 | cut -d'"' -f4)
  else
    bin=$BENCH_BIN
  fi
  [ -x "$bin" ] || { echo "could not build benches/proxy/server.rs" >&2; return 1; }
  echo "$bin"
}

# write_nginx_conf WORK UPSTREAM PLAIN_ADDR TLS_ADDR: a certificate and WORK/nginx.conf,
# nginx as a reverse proxy to UPSTREAM with a keep-alive pool, on one worker.
write_nginx_conf() {
  local work=$1 up=$2 plain=$3 tls=$4
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >/dev/null 2>&1
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server $up; keepalive 128; }
  ssl_certificate $work/cert.pem;
  ssl_certificate_key $work/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen $plain;
    listen $tls ssl;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
}

# CPU time (clock ticks) of a process and its children (nginx workers): user + system, or
# user only with a second argument.
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    if [ -n "${2:-}" ]; then
      total=$(( total + $(awk '{print $14}' "/proc/$p/stat") ))
    else
      total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
    fi
  done
  echo "$total"
}

# median NAME COLUMN: the median of COLUMN over the lines of the `results` array whose first
# field is NAME ("NAME requests/s cpu_us_per_request non2xx"), or n/a.
median() {
  printf '%s\n' "${results[@]}" | awk -v n="$1" -v c="$2" '$1 == n { print $c }' | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio A B: A / B with two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# wrk_round NAME PID URL [WRK_ARGS...]: one measured wrk run against URL (after a 2 s warm-up),
# wrk pinned to LOAD_CPU with CONNS connections for DUR seconds, counting the CPU time of PID.
# Prints "NAME requests/s cpu_us_per_request non2xx", the line `median` reads.
wrk_round() {
  local name=$1 pid=$2 url=$3
  shift 3
  local args=(-t1 -c"$CONNS" "$@")
  taskset -c "$LOAD_CPU" wrk "${args[@]}" -d2s "$url" >/dev/null 2>&1 # warm-up
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk "${args[@]}" -d"${DUR}s" "$url" 2>&1)
  after=$(cpu_ticks "$pid")
  local rps total non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$name $rps $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$total" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }') ${non2xx:-0}"
}

# order_post WORK BIN: what the benchmarks that POST the 1 KiB JSON order need in WORK: a
# certificate (cert.pem, key.pem) for the proxy's TLS listener, the order (body.json, from the
# benchmark binary BIN) and post.lua, wrk's script that sends it.
order_post() {
  local work=$1 bin=$2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost >/dev/null 2>&1
  "$bin" body > "$work/body.json"
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
}
