/* bench/floor_proxy.c — the least a user-space TCP proxy can do per request, as a yardstick.
 *
 * Not a product and not for use: it exists so bench/run.sh can show how much CPU per
 * request and per connection the kernel charges *any* read/write proxy on this machine.
 * It makes only the syscalls no proxy can avoid: accept4 (one per readable event), socket,
 * setsockopt(TCP_NODELAY) on the backend socket (the client inherits it from the
 * listener), connect, one epoll_ctl ADD per socket (edge-triggered, never modified: the
 * kernel drops it at close), one recv and one send per message, one recv for EOF, and
 * close. It has none of l4lb's duties: no half-close (EOF on either side closes both, as
 * nginx's default), no SO_KEEPALIVE, no timeouts, no counters, no backpressure (a send
 * that cannot take the whole message closes the pair), no retries, one backend.
 * Messages must fit in 16 KiB, so it is run only for the request/response loads.
 *
 * usage: floor_proxy LISTEN_PORT BACKEND_PORT   (both on 127.0.0.1; runs until killed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct end {
  int fd;
  struct end *peer;
};

static int ep;
static char buf[16384];
static struct end *dead[1024]; /* pairs closed in this batch: freed after it */
static int ndead;

static void addr_of(struct sockaddr_in *a, int port) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((unsigned short)port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void close_pair(struct end *e) {
  struct end *p = e->peer;
  close(e->fd);
  close(p->fd);
  e->fd = p->fd = -1;  /* the other end may have an event later in this batch */
  dead[ndead++] = e < p ? e : p; /* both ends live in one allocation */
}

static void watch(struct end *e) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = e};
  epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev);
}

static void on_accept(int lfd, const struct sockaddr_in *backend) {
  int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) return;
  int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (b < 0 || setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      (connect(b, (const struct sockaddr *)backend, sizeof *backend) != 0 && errno != EINPROGRESS)) {
    close(c);
    if (b >= 0) close(b);
    return;
  }
  struct end *pair = malloc(2 * sizeof *pair);
  if (!pair) abort();
  pair[0] = (struct end){c, &pair[1]};
  pair[1] = (struct end){b, &pair[0]};
  watch(&pair[0]);
  watch(&pair[1]);
}

/* Edge-triggered: one recv per event, unless the event says the peer closed (EPOLLRDHUP),
 * when data and EOF may both be waiting. */
static void on_readable(struct end *e, unsigned events) {
  if (e->fd < 0) return;
  for (;;) {
    ssize_t n = recv(e->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0 || send(e->peer->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
      close_pair(e);
      return;
    }
    if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && (size_t)n < sizeof buf) return;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT\n", argv[0]);
    return 2;
  }
  struct sockaddr_in la, ba;
  addr_of(&la, atoi(argv[1]));
  addr_of(&ba, atoi(argv[2]));
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof la) != 0 || listen(lfd, 4096) != 0) {
    perror("listen");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL}; /* level-triggered */
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct epoll_event evs[512];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    ndead = 0;
    for (int i = 0; i < n; ++i) {
      if (!evs[i].data.ptr)
        on_accept(lfd, &ba);
      else
        on_readable(evs[i].data.ptr, evs[i].events);
    }
    for (int i = 0; i < ndead; ++i) free(dead[i]);
  }
}
