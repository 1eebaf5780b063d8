/* bench/sni_client.c — load generator and routing check for bench/run.sh's `sni` test.
 *
 * Each connection: connect, send one captured TLS ClientHello (a file of raw bytes, no TLS
 * library: no crypto CPU on the generator), read the backend's reply until EOF, close.
 * The backend (bench/sni_backend.c) closes first, as nginx does with "Connection: close" in the
 * `nc` test, so the client side leaves no TIME_WAIT and ephemeral ports are not exhausted.
 *
 *   sni_client run HOST PORT CONNS SECONDS FILE=REPLY...
 *       CONNS connections in parallel for SECONDS (single thread, epoll); connection i sends
 *       the FILE of pair i mod the number of pairs and must get exactly REPLY then EOF (anything
 *       else — other bytes, reset, 5 s without EOF — is an error). No new connection starts after
 *       SECONDS; the open ones run to their end and are counted. Prints key=value lines:
 *       conns (finished, errors included), errors, seconds (first connect to last end),
 *       cps (conns/seconds), p50_ms, p90_ms, p99_ms, max_ms: the connection time, from
 *       connect() to EOF, of the connections without error.
 *   sni_client check HOST PORT FILE=EXPECT...
 *       One connection per pair, one after the other; EXPECT is the reply wanted, or "-" for
 *       "closed (FIN or reset) without a reply byte". Prints one line per pair; exit status 1
 *       if any differs.
 *
 * cc -O2 -o sni_client sni_client.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_TIMEOUT_NS 5000000000LL
#define MAX_REPLY 256

struct pair {
  char *hello;
  size_t hello_len;
  const char *reply;
  size_t reply_len;
};

static struct pair *pairs;
static size_t npairs;
static struct sockaddr_in dst;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void load_pairs(int argc, char **argv) {
  npairs = (size_t)argc;
  pairs = calloc(npairs, sizeof *pairs);
  for (int i = 0; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "sni_client: %s: want FILE=REPLY\n", argv[i]);
      exit(2);
    }
    *eq = 0;
    FILE *f = fopen(argv[i], "rb");
    if (!f) die(argv[i]);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == 0) {
      fprintf(stderr, "sni_client: %s is empty\n", argv[i]);
      exit(2);
    }
    pairs[i].hello = malloc(n);
    memcpy(pairs[i].hello, buf, n);
    pairs[i].hello_len = n;
    pairs[i].reply = eq + 1;
    pairs[i].reply_len = strlen(eq + 1);
    if (pairs[i].reply_len > MAX_REPLY) {
      fprintf(stderr, "sni_client: reply longer than %d bytes\n", MAX_REPLY);
      exit(2);
    }
  }
}

/* ---- check ------------------------------------------------------------------------------- */

static int check(void) {
  int bad = 0;
  for (size_t i = 0; i < npairs; i++) {
    const char *want = pairs[i].reply;
    int want_close = strcmp(want, "-") == 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct timeval tv = {7, 0}; /* above every balancer's 5 s inspect timeout */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char got[MAX_REPLY + 1];
    size_t n = 0;
    const char *how = "eof";
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
      how = "connect failed";
    } else if (send(fd, pairs[i].hello, pairs[i].hello_len, MSG_NOSIGNAL) != (ssize_t)pairs[i].hello_len) {
      how = "send failed";
    } else {
      for (;;) {
        ssize_t r = recv(fd, got + n, MAX_REPLY - n, 0);
        if (r > 0) {
          n += (size_t)r;
          if (n == MAX_REPLY) { how = "too long"; break; }
          continue;
        }
        if (r == 0) break;
        how = errno == ECONNRESET ? "reset" : errno == EAGAIN ? "timeout" : "recv error";
        break;
      }
    }
    close(fd);
    got[n] = 0;
    int ok;
    if (want_close)
      ok = n == 0 && (strcmp(how, "eof") == 0 || strcmp(how, "reset") == 0);
    else
      ok = strcmp(how, "eof") == 0 && n == pairs[i].reply_len && memcmp(got, want, n) == 0;
    printf("%s  want %s  got %s%s%s (%s)\n", ok ? "ok " : "BAD", want_close ? "closed, no reply" : want,
           n ? "\"" : "no reply", n ? got : "", n ? "\"" : "", how);
    bad |= !ok;
  }
  return bad;
}

/* ---- run --------------------------------------------------------------------------------- */

struct conn {
  int fd;
  int want_out;   /* waiting for EPOLLOUT (connect not done) */
  size_t pair;
  size_t got;
  int64_t start;
  char buf[MAX_REPLY];
};

static int ep;
static struct conn *conns;
static size_t next_pair;
static int64_t *lat;
static size_t nlat, caplat;
static uint64_t finished, errors;
static int64_t t_first, t_last;

static void add_lat(int64_t v) {
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : 1 << 16;
    lat = realloc(lat, caplat * sizeof *lat);
    if (!lat) die("realloc");
  }
  lat[nlat++] = v;
}

static void conn_end(struct conn *c, int ok) {
  int64_t t = now_ns();
  close(c->fd);
  c->fd = -1;
  finished++;
  t_last = t;
  if (ok)
    add_lat(t - c->start);
  else
    errors++;
}

/* 0: sent; 1: wait for EPOLLOUT; -1: error */
static int try_send(struct conn *c) {
  const struct pair *p = &pairs[c->pair];
  ssize_t r = send(c->fd, p->hello, p->hello_len, MSG_NOSIGNAL);
  if (r == (ssize_t)p->hello_len) return 0;
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) return 1;
  return -1; /* includes a short send: a hello is far below the socket buffer */
}

static void conn_start(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket");
  c->pair = next_pair++ % npairs;
  c->got = 0;
  c->start = now_ns();
  if (!t_first) t_first = c->start;
  if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
    conn_end(c, 0);
    return;
  }
  /* On loopback the handshake is usually done when connect() returns: send at once. */
  int s = try_send(c);
  if (s < 0) { conn_end(c, 0); return; }
  c->want_out = s == 1;
  struct epoll_event ev = {.events = c->want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
}

/* returns 1 when the connection ended */
static int conn_event(struct conn *c, uint32_t events) {
  if (c->want_out) {
    int s = try_send(c);
    if (s < 0) { conn_end(c, 0); return 1; }
    if (s == 1) {
      if (events & (EPOLLERR | EPOLLHUP)) { conn_end(c, 0); return 1; }
      return 0;
    }
    c->want_out = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
    return 0;
  }
  for (;;) {
    char tmp[MAX_REPLY];
    ssize_t r = recv(c->fd, tmp, sizeof tmp, 0);
    if (r > 0) {
      if (c->got + (size_t)r > MAX_REPLY) { conn_end(c, 0); return 1; }
      memcpy(c->buf + c->got, tmp, (size_t)r);
      c->got += (size_t)r;
      continue;
    }
    if (r == 0) {
      const struct pair *p = &pairs[c->pair];
      conn_end(c, c->got == p->reply_len && memcmp(c->buf, p->reply, c->got) == 0);
      return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    conn_end(c, 0);
    return 1;
  }
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_ms(double q) {
  if (!nlat) return 0;
  size_t i = (size_t)(q * (double)nlat + 0.999999);
  if (i < 1) i = 1;
  if (i > nlat) i = nlat;
  return (double)lat[i - 1] / 1e6;
}

static int run(int nconn, double seconds) {
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  conns = calloc((size_t)nconn, sizeof *conns);
  int64_t t0 = now_ns(), deadline = t0 + (int64_t)(seconds * 1e9), last_scan = t0;
  int open = 0;
  for (int i = 0; i < nconn; i++) {
    conn_start(&conns[i]);
    while (conns[i].fd < 0 && now_ns() < deadline) conn_start(&conns[i]);
    open += conns[i].fd >= 0;
  }
  struct epoll_event evs[256];
  while (open > 0) {
    int n = epoll_wait(ep, evs, 256, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    int64_t t = now_ns();
    int more = t < deadline;
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0 || !conn_event(c, evs[i].events)) continue;
      open--;
      while (more && c->fd < 0) {
        conn_start(c);
        more = now_ns() < deadline;
      }
      open += c->fd >= 0;
    }
    if (t - last_scan > 100000000LL) { /* connections stuck for 5 s are errors */
      last_scan = t;
      for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        if (c->fd >= 0 && t - c->start > CONN_TIMEOUT_NS) {
          conn_end(c, 0);
          open--;
          if (t < deadline) { conn_start(c); open += c->fd >= 0; }
        }
      }
    }
  }
  qsort(lat, nlat, sizeof *lat, cmp64);
  double secs = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
  printf("conns=%llu\nerrors=%llu\nseconds=%.3f\ncps=%.1f\n", (unsigned long long)finished,
         (unsigned long long)errors, secs, secs > 0 ? (double)finished / secs : 0.0);
  printf("p50_ms=%.4f\np90_ms=%.4f\np99_ms=%.4f\nmax_ms=%.4f\n", pct_ms(0.50), pct_ms(0.90), pct_ms(0.99),
         nlat ? (double)lat[nlat - 1] / 1e6 : 0.0);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: sni_client run HOST PORT CONNS SECONDS FILE=REPLY...\n"
          "       sni_client check HOST PORT FILE=EXPECT...   (EXPECT \"-\": closed without a reply)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  int is_run = strcmp(argv[1], "run") == 0;
  if (!is_run && strcmp(argv[1], "check") != 0) usage();
  int first = is_run ? 6 : 4;
  if (argc <= first) usage();
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1) usage();
  load_pairs(argc - first, argv + first);
  if (!is_run) return check();
  int nconn = atoi(argv[4]);
  double secs = atof(argv[5]);
  if (nconn < 1 || secs <= 0) usage();
  return run(nconn, secs);
}
