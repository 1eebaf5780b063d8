/* bench/sni_backend.c — the backends of bench/run.sh's `sni` test.
 *
 *   sni_backend PORT=REPLY...
 *
 * Listens on 127.0.0.1:PORT for each pair (single thread, epoll). Each connection: read one TLS
 * record (the ClientHello the client sent through the balancer: 5-byte header, then the length
 * it gives), or any bytes if they do not start a TLS handshake record; then send REPLY and close
 * (the backend closes first, as nginx does with "Connection: close"). So each port answers its
 * own REPLY, which tells the routing check which backend a server name reached.
 *
 * cc -O2 -o sni_backend sni_backend.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct lsock {
  int is_listener; /* first member of both structs */
  int fd;
  const char *reply;
  size_t reply_len;
};

struct conn {
  int is_listener;
  int fd;
  const struct lsock *l;
  size_t got, need;
  unsigned char hdr[5];
};

static int ep;

static void die(const char *what) {
  perror(what);
  exit(2);
}

/* 1 when the connection is done (answered or failed) and freed */
static int serve(struct conn *c) {
  for (;;) {
    unsigned char buf[16384];
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    if (r > 0) {
      for (ssize_t i = 0; i < r && c->got + (size_t)i < 5; i++) c->hdr[c->got + (size_t)i] = buf[i];
      c->got += (size_t)r;
      if (!c->need && c->got >= 5)
        c->need = c->hdr[0] == 0x16 ? 5 + ((size_t)c->hdr[3] << 8 | c->hdr[4]) : 1;
      if (!c->need && c->hdr[0] != 0x16) c->need = 1;
      continue; /* read what is there: close() with unread bytes would send a reset */
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->need || c->got < c->need) return 0;
      (void)!send(c->fd, c->l->reply, c->l->reply_len, MSG_NOSIGNAL);
    }
    close(c->fd); /* EOF or error before a whole record: just close */
    free(c);
    return 1;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sni_backend PORT=REPLY...\n");
    return 2;
  }
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "sni_backend: %s: want PORT=REPLY\n", argv[i]);
      return 2;
    }
    *eq = 0;
    struct lsock *l = calloc(1, sizeof *l);
    l->is_listener = 1;
    l->reply = eq + 1;
    l->reply_len = strlen(eq + 1);
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (l->fd < 0) die("socket");
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l->fd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
    if (listen(l->fd, 4096) != 0) die("listen");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) != 0) die("epoll_ctl");
  }
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      if (*(int *)evs[i].data.ptr) {
        struct lsock *l = evs[i].data.ptr;
        for (;;) {
          int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          struct conn *c = calloc(1, sizeof *c);
          c->fd = fd;
          c->l = l;
          if (serve(c)) continue; /* the hello was already there */
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
        }
      } else {
        serve(evs[i].data.ptr);
      }
    }
  }
}
