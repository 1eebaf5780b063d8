// l4lb-testd — a small test backend for the integration tests.
//
//   l4lb-testd --mode MODE --listen HOST:PORT [--listen HOST:PORT ...] [--name NAME]
//              [--read-chunk BYTES --read-delay-ms MS] [--health-file PATH]
//              [--hold-ms MS] [--stats HOST:PORT]
//
// Modes:
//   id      writes "NAME\n" at once (server speaks first), then reads until EOF and closes
//   echo    writes back every byte read; on EOF shutdown(SHUT_WR) and close
//   digest  reads until EOF, then writes "<count> <sha256 hex>\n" and closes
//   sink    reads and discards (optionally N bytes every M ms); on EOF as digest
//   http    minimal HTTP/1.1 keep-alive server: GET /health -> 200 "ok\n" (or the status
//           code held in --health-file), any other GET -> 200 "NAME\n"
//   hold    keeps each connection open --hold-ms (default 200), then closes it (bytes
//           received are discarded); the backend closes first
//
// Several --listen: one process on several ports, every connection counted together.
// --stats HOST:PORT: each connection there gets one line
//   "open N peak N accepted N\n"
// (connections open now, the most open at once since the previous stats line, accepted in
// all) and is closed. A connection counts as open from accept until just before its close.
//
// Prints exactly one line "listening HOST:PORT" (the real port) on stdout once listening;
// with several --listen, every address in order, and with --stats "stats HOST:PORT" at the
// end: "listening A B stats S".
// One thread per connection, blocking sockets.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------- SHA-256 (FIPS 180-4)

class Sha256 {
public:
    Sha256() { reset(); }

    void reset() {
        h_ = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
              0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
        len_ = 0;
        used_ = 0;
    }

    void update(const void* data, size_t n) {
        const auto* p = static_cast<const uint8_t*>(data);
        len_ += n;
        if (used_ > 0) {
            size_t take = std::min(n, size_t{64} - used_);
            std::memcpy(buf_.data() + used_, p, take);
            used_ += take;
            p += take;
            n -= take;
            if (used_ < 64) return;
            block(buf_.data());
            used_ = 0;
        }
        while (n >= 64) {
            block(p);
            p += 64;
            n -= 64;
        }
        if (n > 0) {
            std::memcpy(buf_.data(), p, n);
            used_ = n;
        }
    }

    std::string hex() {
        uint64_t bits = len_ * 8;
        uint8_t pad = 0x80;
        update(&pad, 1);
        uint8_t zero = 0;
        while (used_ != 56) update(&zero, 1);
        uint8_t lenbytes[8];
        for (int i = 0; i < 8; ++i) lenbytes[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
        update(lenbytes, 8);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (uint32_t v : h_)
            for (int i = 28; i >= 0; i -= 4) out.push_back(digits[(v >> i) & 0xf]);
        return out;
    }

private:
    static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

    void block(const uint8_t* p) {
        static constexpr uint32_t k[64] = {
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2};
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) |
                   (uint32_t{p[4 * i + 2]} << 8) | uint32_t{p[4 * i + 3]};
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
        uint32_t e = h_[4], f = h_[5], g = h_[6], h = h_[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + k[i] + w[i];
            uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
        h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
    }

    std::array<uint32_t, 8> h_{};
    std::array<uint8_t, 64> buf_{};
    uint64_t len_ = 0;
    size_t used_ = 0;
};

// ---------------------------------------------------------------- options

enum class Mode { id, echo, digest, sink, http, hold };

struct Options {
    Mode mode = Mode::echo;
    std::string listen;
    std::vector<std::string> more_listen;  // the second and later --listen
    std::string stats;
    int hold_ms = 200;
    std::string name;
    size_t read_chunk = 0;
    int read_delay_ms = 0;
    std::string health_file;
};

Options g_opt;

[[noreturn]] void usage(int code) {
    std::fprintf(code == 0 ? stdout : stderr,
                 "usage: l4lb-testd --mode id|echo|digest|sink|http|hold --listen HOST:PORT\n"
                 "                  [--listen HOST:PORT ...] [--name NAME]\n"
                 "                  [--read-chunk BYTES --read-delay-ms MS] [--health-file PATH]\n"
                 "                  [--hold-ms MS] [--stats HOST:PORT]\n");
    std::exit(code);
}

// ---------------------------------------------------------------- socket helpers

bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool write_all(int fd, std::string_view s) { return write_all(fd, s.data(), s.size()); }

// Returns bytes read, 0 on EOF, -1 on error (EINTR retried).
ssize_t read_some(int fd, char* buf, size_t n, int flags = 0) {
    for (;;) {
        ssize_t r = ::recv(fd, buf, n, flags);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

void drain_until_eof(int fd) {
    std::vector<char> buf(64 * 1024);
    while (read_some(fd, buf.data(), buf.size()) > 0) {
    }
}

// ---------------------------------------------------------------- concurrency count

struct Counts {
    std::mutex mu;
    uint64_t open = 0;
    uint64_t peak = 0;
    uint64_t accepted = 0;
};

Counts g_counts;

void count_open() {
    std::lock_guard<std::mutex> lock(g_counts.mu);
    ++g_counts.accepted;
    if (++g_counts.open > g_counts.peak) g_counts.peak = g_counts.open;
}

void count_closed() {
    std::lock_guard<std::mutex> lock(g_counts.mu);
    --g_counts.open;
}

// "open N peak N accepted N\n"; the peak starts again from the connections open now.
std::string stats_line() {
    std::lock_guard<std::mutex> lock(g_counts.mu);
    std::string out = "open " + std::to_string(g_counts.open) + " peak " +
                      std::to_string(g_counts.peak) + " accepted " +
                      std::to_string(g_counts.accepted) + "\n";
    g_counts.peak = g_counts.open;
    return out;
}

// ---------------------------------------------------------------- modes

void serve_id(int fd) {
    if (write_all(fd, g_opt.name + "\n")) drain_until_eof(fd);
}

void serve_echo(int fd) {
    std::vector<char> buf(64 * 1024);
    for (;;) {
        ssize_t r = read_some(fd, buf.data(), buf.size());
        if (r < 0) return;
        if (r == 0) break;
        if (!write_all(fd, buf.data(), static_cast<size_t>(r))) return;
    }
    ::shutdown(fd, SHUT_WR);
}

void serve_digest(int fd, size_t chunk, int delay_ms) {
    std::vector<char> buf(chunk > 0 ? chunk : 64 * 1024);
    Sha256 sha;
    uint64_t count = 0;
    for (;;) {
        ssize_t r = read_some(fd, buf.data(), buf.size(), chunk > 0 ? MSG_WAITALL : 0);
        if (r < 0) return;  // reset: no answer
        if (r == 0) break;
        sha.update(buf.data(), static_cast<size_t>(r));
        count += static_cast<uint64_t>(r);
        if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    write_all(fd, std::to_string(count) + " " + sha.hex() + "\n");
    ::shutdown(fd, SHUT_WR);
}

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return std::string(s);
}

const char* reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 302: return "Found";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 500: return "Internal Server Error";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        default: return "Status";
    }
}

int health_status() {
    if (g_opt.health_file.empty()) return 200;
    std::ifstream in(g_opt.health_file);
    if (!in) return 200;
    int code = 0;
    if (in >> code && code >= 100 && code <= 999) return code;
    return 200;
}

void serve_http(int fd) {
    std::string in;
    std::vector<char> buf(16 * 1024);
    for (;;) {
        size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos) {
            if (in.size() > 64 * 1024) return;
            ssize_t r = read_some(fd, buf.data(), buf.size());
            if (r <= 0) return;
            in.append(buf.data(), static_cast<size_t>(r));
        }
        std::string head = in.substr(0, end + 2);
        in.erase(0, end + 4);

        size_t eol = head.find("\r\n");
        std::string request_line = head.substr(0, eol);
        std::string method, target, version;
        {
            size_t a = request_line.find(' ');
            size_t b = a == std::string::npos ? a : request_line.find(' ', a + 1);
            if (a == std::string::npos || b == std::string::npos) {
                write_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            method = request_line.substr(0, a);
            target = request_line.substr(a + 1, b - a - 1);
            version = request_line.substr(b + 1);
        }
        bool keep_alive = version == "HTTP/1.1";
        size_t content_length = 0;
        size_t pos = eol + 2;
        while (pos < head.size()) {
            size_t e = head.find("\r\n", pos);
            if (e == std::string::npos) e = head.size();
            std::string line = head.substr(pos, e - pos);
            pos = e + 2;
            size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string key = lower(trim(line.substr(0, colon)));
            std::string value = lower(trim(line.substr(colon + 1)));
            if (key == "connection") {
                if (value.find("close") != std::string::npos) keep_alive = false;
                if (value.find("keep-alive") != std::string::npos) keep_alive = true;
            } else if (key == "content-length") {
                content_length = std::strtoull(value.c_str(), nullptr, 10);
            }
        }
        // Skip a request body.
        while (in.size() < content_length) {
            ssize_t r = read_some(fd, buf.data(), buf.size());
            if (r <= 0) return;
            in.append(buf.data(), static_cast<size_t>(r));
        }
        in.erase(0, content_length);

        int status;
        std::string body;
        std::string path = target.substr(0, target.find('?'));
        if (method != "GET" && method != "HEAD") {
            status = 405;
            body = "method not allowed\n";
        } else if (path == "/health") {
            status = health_status();
            body = status == 200 ? "ok\n" : std::to_string(status) + "\n";
        } else {
            status = 200;
            body = g_opt.name + "\n";
        }
        std::string resp = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n" +
                           "Content-Type: text/plain\r\n" +
                           "Content-Length: " + std::to_string(body.size()) + "\r\n" +
                           (keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n") +
                           "\r\n";
        if (method != "HEAD") resp += body;
        if (!write_all(fd, resp)) return;
        if (!keep_alive) {
            ::shutdown(fd, SHUT_WR);
            drain_until_eof(fd);
            return;
        }
    }
}

void serve_hold(int fd) {
    std::this_thread::sleep_for(std::chrono::milliseconds(g_opt.hold_ms));
    // Unread bytes would turn the close into a reset: discard what came.
    char buf[4096];
    while (read_some(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

void serve(int fd) {
    switch (g_opt.mode) {
        case Mode::id: serve_id(fd); break;
        case Mode::echo: serve_echo(fd); break;
        case Mode::digest: serve_digest(fd, 0, 0); break;
        case Mode::sink: serve_digest(fd, g_opt.read_chunk, g_opt.read_delay_ms); break;
        case Mode::http: serve_http(fd); break;
        case Mode::hold: serve_hold(fd); break;
    }
    count_closed();  // before the close: the peer cannot see it closed while it still counts
    ::close(fd);
}

// ---------------------------------------------------------------- listen

bool split_host_port(const std::string& s, std::string& host, std::string& port) {
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        size_t colon = s.rfind(':');
        if (colon == std::string::npos) return false;
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    return !port.empty();
}

std::string format_addr(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
    }
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
}

int open_listener(const std::string& spec, std::string& real) {
    std::string host, port;
    if (!split_host_port(spec, host, port)) {
        std::fprintf(stderr, "l4lb-testd: bad listen address '%s'\n", spec.c_str());
        return -1;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
        std::fprintf(stderr, "l4lb-testd: %s: %s\n", spec.c_str(), ::gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int err = 0;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) break;
        err = errno;
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0) {
        std::fprintf(stderr, "l4lb-testd: cannot listen on %s: %s\n", spec.c_str(), std::strerror(err));
        return -1;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    real = format_addr(ss);
    return fd;
}

// Accepts on LFD forever: one thread per connection (serve), or with STATS one stats line
// per connection. Returns 1 on an accept error it cannot ride out.
int accept_loop(int lfd, bool stats) {
    for (;;) {
        int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            std::fprintf(stderr, "l4lb-testd: accept: %s\n", std::strerror(errno));
            return 1;
        }
        if (stats) {
            write_all(fd, stats_line());
            ::shutdown(fd, SHUT_WR);
            ::close(fd);
            continue;
        }
        count_open();
        try {
            std::thread(serve, fd).detach();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "l4lb-testd: thread: %s\n", e.what());
            count_closed();
            ::close(fd);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "l4lb-testd: %s needs a value\n", a.c_str());
                usage(2);
            }
            return argv[++i];
        };
        if (a == "--mode") mode = value();
        else if (a == "--listen") {
            std::string v = value();
            if (g_opt.listen.empty()) g_opt.listen = v;
            else g_opt.more_listen.push_back(v);
        }
        else if (a == "--hold-ms") g_opt.hold_ms = std::atoi(value().c_str());
        else if (a == "--stats") g_opt.stats = value();
        else if (a == "--name") g_opt.name = value();
        else if (a == "--read-chunk") g_opt.read_chunk = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--read-delay-ms") g_opt.read_delay_ms = std::atoi(value().c_str());
        else if (a == "--health-file") g_opt.health_file = value();
        else if (a == "-h" || a == "--help") usage(0);
        else {
            std::fprintf(stderr, "l4lb-testd: unknown option '%s'\n", a.c_str());
            usage(2);
        }
    }
    if (mode == "id") g_opt.mode = Mode::id;
    else if (mode == "echo") g_opt.mode = Mode::echo;
    else if (mode == "digest") g_opt.mode = Mode::digest;
    else if (mode == "sink") g_opt.mode = Mode::sink;
    else if (mode == "http") g_opt.mode = Mode::http;
    else if (mode == "hold") g_opt.mode = Mode::hold;
    else {
        std::fprintf(stderr, "l4lb-testd: --mode must be id, echo, digest, sink, http or hold\n");
        usage(2);
    }
    if (g_opt.listen.empty()) {
        std::fprintf(stderr, "l4lb-testd: --listen is required\n");
        usage(2);
    }

    ::signal(SIGPIPE, SIG_IGN);

    std::string real;
    int lfd = open_listener(g_opt.listen, real);
    if (lfd < 0) return 1;
    if (g_opt.name.empty()) g_opt.name = real;
    std::string line = "listening " + real;
    std::vector<int> more;
    for (const auto& spec : g_opt.more_listen) {
        std::string r;
        int fd = open_listener(spec, r);
        if (fd < 0) return 1;
        more.push_back(fd);
        line += " " + r;
    }
    int sfd = -1;
    if (!g_opt.stats.empty()) {
        std::string r;
        sfd = open_listener(g_opt.stats, r);
        if (sfd < 0) return 1;
        line += " stats " + r;
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);

    for (int fd : more) std::thread([fd] { std::exit(accept_loop(fd, false)); }).detach();
    if (sfd >= 0) std::thread([sfd] { std::exit(accept_loop(sfd, true)); }).detach();
    return accept_loop(lfd, false);
}
