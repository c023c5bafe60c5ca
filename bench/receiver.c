/*
 * bench/receiver.c: a fast HTTP/1.1 sink for the Webhooky benchmarks.
 *
 *   receiver PORT LOGFILE [PORTFILE]
 *
 * Listens on 127.0.0.1:PORT (0 = any free port; the chosen port is written to PORTFILE),
 * answers every request with "200 ok" (keep-alive unless the client asks to close), and
 * records for each request "<arrival unix microseconds> <webhook-id header value>\n" in a
 * memory buffer that is written to LOGFILE when it gets SIGTERM or SIGINT (never during the
 * run, so that disk writes do not disturb the measurement). The arrival time is taken when
 * the whole request (headers and body) has been read.
 *
 * With the environment variable RECEIVER_SAMPLE=FILE, the first recorded request is also
 * written to FILE as received (headers and body), to show what was sent.
 *
 * GET /_count answers with the number of requests recorded so far (not itself recorded), so
 * that the harness can wait for the last delivery without touching the database.
 *
 * Single thread, epoll, edge cases handled: Content-Length and chunked bodies, pipelining,
 * "Expect: 100-continue", "Connection: close". Build: gcc -O2 -o receiver receiver.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_CHUNK 65536
#define MAX_HEADER 65536

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
    char *out;          /* pending output */
    size_t out_len, out_off, out_cap;
    int close_after;    /* close once the output is flushed */
} conn_t;

static volatile sig_atomic_t stop_requested = 0;
static char *log_buf;
static size_t log_len, log_cap;
static unsigned long long recorded;
static const char *sample_path;  /* RECEIVER_SAMPLE: the first recorded request, raw */

static const char OK_RESPONSE[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
static const char CONTINUE_RESPONSE[] = "HTTP/1.1 100 Continue\r\n\r\n";
static const char BAD_RESPONSE[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void die(const char *what) { perror(what); exit(1); }

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) die("realloc");
    return q;
}

static void log_append(const char *s, size_t n) {
    if (log_len + n > log_cap) {
        size_t cap = log_cap ? log_cap : (64u << 20);
        while (cap < log_len + n) cap *= 2;
        log_buf = xrealloc(log_buf, cap);
        log_cap = cap;
    }
    memcpy(log_buf + log_len, s, n);
    log_len += n;
}

static void record(long long micros, const char *id, size_t id_len) {
    char line[64];
    int n = snprintf(line, sizeof line, "%lld ", micros);
    log_append(line, (size_t)n);
    if (id_len == 0) { id = "-"; id_len = 1; }
    log_append(id, id_len);
    log_append("\n", 1);
    recorded++;
}

static long long now_micros(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void out_append(conn_t *c, const char *s, size_t n) {
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
        while (cap < c->out_len + n) cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
}

/* Case-insensitive search of a header line value; returns pointer to value, sets *vlen. */
static const char *header_value(const char *hdr, size_t hlen, const char *name, size_t *vlen) {
    size_t nlen = strlen(name);
    const char *p = memchr(hdr, '\n', hlen);   /* skip the request line */
    const char *end = hdr + hlen;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol < end ? eol : NULL;
    }
    return NULL;
}

/* Parses a chunked body starting at b (n bytes available). Returns the total number of
 * bytes consumed by the body including the final CRLF, 0 if incomplete, -1 if malformed. */
static long chunked_length(const char *b, size_t n) {
    size_t off = 0;
    for (;;) {
        const char *eol = memmem(b + off, n - off, "\r\n", 2);
        if (!eol) return 0;
        char *endp;
        unsigned long size = strtoul(b + off, &endp, 16);
        if (endp == b + off) return -1;
        off = (size_t)(eol - b) + 2;
        if (size == 0) {
            /* trailers until an empty line */
            for (;;) {
                const char *e2 = memmem(b + off, n - off, "\r\n", 2);
                if (!e2) return 0;
                if (e2 == b + off) return (long)(off + 2);
                off = (size_t)(e2 - b) + 2;
            }
        }
        if (n - off < size + 2) return 0;
        off += size + 2;
    }
}

/* Handles as many complete requests as the buffer holds. Returns -1 to close now. */
static int process(conn_t *c) {
    size_t consumed = 0;
    while (consumed < c->len) {
        char *start = c->buf + consumed;
        size_t avail = c->len - consumed;
        char *hend = memmem(start, avail, "\r\n\r\n", 4);
        if (!hend) {
            if (avail > MAX_HEADER) { out_append(c, BAD_RESPONSE, sizeof BAD_RESPONSE - 1); c->close_after = 1; c->len = 0; return 0; }
            break;
        }
        size_t hlen = (size_t)(hend - start) + 4;
        size_t vlen = 0;
        size_t body_len = 0;
        const char *v = header_value(start, hlen, "transfer-encoding", &vlen);
        int chunked = v && vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
        if (chunked) {
            long bl = chunked_length(start + hlen, avail - hlen);
            if (bl < 0) { out_append(c, BAD_RESPONSE, sizeof BAD_RESPONSE - 1); c->close_after = 1; c->len = 0; return 0; }
            if (bl == 0) {
                /* incomplete: answer 100-continue once, if asked, before waiting for the body */
                goto maybe_continue;
            }
            body_len = (size_t)bl;
        } else {
            v = header_value(start, hlen, "content-length", &vlen);
            if (v) {
                char tmp[32];
                size_t k = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
                memcpy(tmp, v, k); tmp[k] = 0;
                body_len = strtoull(tmp, NULL, 10);
            }
            if (avail < hlen + body_len) goto maybe_continue;
        }
        {
            long long t = now_micros();
            if (avail >= 12 && memcmp(start, "GET /_count", 11) == 0 && (start[11] == ' ' || start[11] == '?')) {
                char resp[160], num[32];
                int nl = snprintf(num, sizeof num, "%llu", recorded);
                int rl = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", nl, num);
                out_append(c, resp, (size_t)rl);
            } else {
                size_t idlen = 0;
                const char *id = header_value(start, hlen, "webhook-id", &idlen);
                if (recorded == 0 && sample_path) {
                    FILE *sf = fopen(sample_path, "w");
                    if (sf) { fwrite(start, 1, hlen + body_len, sf); fclose(sf); }
                }
                record(t, id, id ? idlen : 0);
                out_append(c, OK_RESPONSE, sizeof OK_RESPONSE - 1);
            }
            const char *conn = header_value(start, hlen, "connection", &vlen);
            if (conn && vlen == 5 && strncasecmp(conn, "close", 5) == 0) c->close_after = 1;
            if (memmem(start, hlen < 16 ? hlen : 16, "HTTP/1.0", 8)) {
                if (!(conn && vlen == 10 && strncasecmp(conn, "keep-alive", 10) == 0)) c->close_after = 1;
            }
            consumed += hlen + body_len;
            if (c->close_after) { consumed = c->len; break; }
            continue;
        }
    maybe_continue:
        {
            const char *e = header_value(start, hlen, "expect", &vlen);
            if (e && vlen == 12 && strncasecmp(e, "100-continue", 12) == 0 && avail == hlen) {
                out_append(c, CONTINUE_RESPONSE, sizeof CONTINUE_RESPONSE - 1);
            }
        }
        break;
    }
    if (consumed > 0) {
        memmove(c->buf, c->buf + consumed, c->len - consumed);
        c->len -= consumed;
    }
    return 0;
}

/* Writes pending output. Returns -1 on error, 1 if output remains, 0 if all written. */
static int flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
            if (errno == EINTR) continue;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void close_conn(int ep, conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c->out);
    free(c);
}

static void write_log(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return; }
    if (log_len && fwrite(log_buf, 1, log_len, f) != log_len) perror("fwrite");
    if (fclose(f) != 0) perror("fclose");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT LOGFILE [PORTFILE]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *log_path = argv[2];
    const char *port_path = argc > 3 ? argv[3] : NULL;
    sample_path = getenv("RECEIVER_SAMPLE");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    if (port_path) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_path);
        FILE *pf = fopen(tmp, "w");
        if (!pf) die(tmp);
        fprintf(pf, "%d\n", ntohs(addr.sin_port));
        fclose(pf);
        if (rename(tmp, port_path) < 0) die("rename");
    }

    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;  /* NULL marks the listener */
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");

    struct epoll_event events[MAX_EVENTS];
    while (!stop_requested) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    if (!nc) die("calloc");
                    nc->fd = fd;
                    nc->cap = READ_CHUNK;
                    nc->buf = malloc(nc->cap);
                    if (!nc->buf) die("malloc");
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN | EPOLLRDHUP;
                    cev.data.ptr = nc;
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) { close(fd); free(nc->buf); free(nc); }
                }
                continue;
            }
            int dead = 0;
            if (events[i].events & EPOLLIN) {
                for (;;) {
                    if (c->cap - c->len < READ_CHUNK / 4) {
                        c->cap *= 2;
                        c->buf = xrealloc(c->buf, c->cap);
                    }
                    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
                    if (r > 0) {
                        c->len += (size_t)r;
                        continue;
                    }
                    if (r == 0) { dead = 1; break; }
                    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                    if (errno == EINTR) continue;
                    dead = 1;
                    break;
                }
                process(c);
            }
            if (c->out_len > c->out_off) {
                int f = flush_out(c);
                if (f < 0) dead = 1;
                else {
                    struct epoll_event cev;
                    memset(&cev, 0, sizeof cev);
                    cev.events = EPOLLIN | EPOLLRDHUP | (f == 1 ? EPOLLOUT : 0);
                    cev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                    if (f == 0 && c->close_after) dead = 1;
                }
            } else if (events[i].events & EPOLLOUT) {
                struct epoll_event cev;
                memset(&cev, 0, sizeof cev);
                cev.events = EPOLLIN | EPOLLRDHUP;
                cev.data.ptr = c;
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
                if (c->close_after) dead = 1;
            }
            if (events[i].events & (EPOLLHUP | EPOLLERR)) dead = 1;
            if (dead) close_conn(ep, c);
        }
    }
    write_log(log_path);
    fprintf(stderr, "receiver: %llu requests recorded\n", recorded);
    return 0;
}
