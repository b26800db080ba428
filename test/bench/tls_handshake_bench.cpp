// Benchmark: CPU time per side of a mutual-TLS handshake, full and resumed, over loopback with
// the real tls::Config/tls::Stream. The server runs in a forked child so each side's CPU time is
// measured with getrusage on its own process. It prints:
//  1. CA, server and client sharing one key type (P-256, RSA-4096);
//  2. the ECDHE group: what tls::Config negotiates, and X25519 vs P-256 put first on both sides;
//  3. the fleet matrix CA key x dispatcher key x agent key, where the dispatcher is the TLS
//     client and the agent the TLS server (it serves 7443), both verifying the peer against the
//     CA: full handshakes per side, and resumed ones.
//
// Usage: tls-handshake-bench [rounds] [path/to/ctrl-exec]
// (needs the openssl CLI to make throw-away keys and certs; with a binary path it also prints the
// size of that binary, as built and stripped)
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/debug.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "event/tcp.hpp"
#include "tls/tls.hpp"

using namespace cx;

namespace {

double cpu_seconds(int who) {
  rusage ru;
  getrusage(who, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void sh(const std::string& cmd) {
  if (std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) != 0) {
    std::fprintf(stderr, "fixture command failed: %s\n", cmd.c_str());
    std::exit(1);
  }
}

// Makes ca/server/client certs of one key type in `dir`.
void make_certs(const std::string& dir, const std::string& newkey) {
  sh("cd " + dir + " && openssl req -x509 -nodes " + newkey +
     " -keyout ca.key -out ca.crt -days 2 -subj '/CN=ctrl-exec CA'");
  for (const char* leaf : {"server", "client"})
    sh("cd " + dir + " && openssl req -new -nodes " + newkey + " -keyout " + leaf + ".key -out " +
       leaf + ".csr -subj '/CN=" + leaf + "' && openssl x509 -req -in " + leaf +
       ".csr -CA ca.crt -CAkey ca.key -set_serial 0x" + (leaf[0] == 's' ? "5e" : "c1") +
       " -days 2 -out " + leaf + ".crt");
}

// The files one measurement uses: the CA both sides verify against, the server's (agent's)
// cert and key, the client's (dispatcher's) cert and key.
struct Creds {
  std::string ca, server_crt, server_key, client_crt, client_key;
};

Creds creds_in(const std::string& dir) {
  return {dir + "/ca.crt", dir + "/server.crt", dir + "/server.key", dir + "/client.crt",
          dir + "/client.key"};
}

std::shared_ptr<tls::Credentials> load(const std::string& crt, const std::string& key,
                                       const std::string& ca) {
  auto c = tls::Credentials::load(crt, key, ca);
  if (!c) {
    std::fprintf(stderr, "%s\n", c.message().c_str());
    std::exit(1);
  }
  return *c;
}

// ECDHE group preference forced on both sides (mbedtls_ssl_conf_curves keeps the pointer: static
// arrays); nullptr leaves tls::Config's own list (src/tls/tls.cpp kCurves). The mbedTLS server
// picks the first of its own list that the client offers. P-256 stays in both lists: in TLS 1.2
// the same list also admits the peers' ECDSA P-256 certificate keys.
const mbedtls_ecp_group_id kX25519First[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                             MBEDTLS_ECP_DP_NONE};
const mbedtls_ecp_group_id kP256First[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519,
                                           MBEDTLS_ECP_DP_NONE};

void force_curves(tls::Config& cfg, const mbedtls_ecp_group_id* curves) {
  if (curves) mbedtls_ssl_conf_curves(cfg.get(), curves);
}

// The client's mbedTLS debug output names the group the server picked ("ECDH curve: x25519",
// level 2). Only the uncounted warm-up handshake has the callback on.
std::string g_group;
void grab_group(void*, int, const char*, int, const char* msg) {
  static const char kTag[] = "ECDH curve: ";
  if (const char* p = std::strstr(msg, kTag)) {
    g_group = p + sizeof kTag - 1;
    while (!g_group.empty() && (g_group.back() == '\n' || g_group.back() == ' '))
      g_group.pop_back();
  }
}

struct Figures {
  double client_full_ms, client_resumed_ms, server_full_ms, server_resumed_ms;
  std::string group; // ECDHE group of the full handshakes
};

// Runs `rounds` full handshakes, then `resumed_rounds` resumed ones (none if 0); returns CPU ms
// per handshake.
Figures measure(const Creds& files, int rounds, int resumed_rounds,
                const mbedtls_ecp_group_id* curves = nullptr) {
  Figures f{};
  const int full_rounds = rounds;
  for (int phase = 0; phase < 2; ++phase) {
    if (phase == 1 && resumed_rounds <= 0) break;
    rounds = phase == 0 ? full_rounds : resumed_rounds;
    event::Loop loop;
    int fds[2], port_fds[2];
    if (pipe(fds) != 0 || pipe(port_fds) != 0) std::exit(1);
    pid_t pid = fork();
    if (pid == 0) {
      // The server binds port 0 itself and tells the parent which port it got.
      close(fds[0]);
      close(port_fds[0]);
      event::Loop child_loop;
      event::TcpListener l(child_loop);
      auto cfg = tls::Config::server(load(files.server_crt, files.server_key, files.ca),
                                     tls::PeerCheck::required);
      if (!cfg) _exit(1);
      force_curves(**cfg, curves);
      int done = 0;
      double start = 0;
      std::vector<std::unique_ptr<tls::Stream>> conns;
      if (!l.listen("127.0.0.1", 0, 128, [&] {
              auto tcp = l.accept();
              if (!tcp) return;
              conns.push_back(std::make_unique<tls::Stream>(*cfg, std::move(*tcp)));
              tls::Stream* s = conns.back().get();
              s->handshake([&, s](Status) {
                s->end();
                // Connection 0 is the warm-up: count CPU time from after it.
                if (++done == 1) start = cpu_seconds(RUSAGE_SELF);
                if (done == rounds + 1) l.close();
              });
            }).ok())
        _exit(1);
      int bound = l.local_port();
      (void)!write(port_fds[1], &bound, sizeof bound);
      close(port_fds[1]);
      child_loop.run();
      double used = cpu_seconds(RUSAGE_SELF) - start;
      (void)!write(fds[1], &used, sizeof used);
      _exit(0);
    }
    close(port_fds[1]);
    int port = 0;
    if (read(port_fds[0], &port, sizeof port) != sizeof port) std::exit(1);
    close(port_fds[0]);
    close(fds[1]);
    auto cfg = tls::Config::client(load(files.client_crt, files.client_key, files.ca),
                                   tls::PeerCheck::required);
    if (!cfg) std::exit(1);
    force_curves(**cfg, curves);
    std::optional<tls::Session> session;
    double client_cpu = 0;
    int resumed = 0;
    // Connection 0 warms up (and, in the resumed phase, provides the session).
    for (int i = 0; i <= rounds; ++i) {
      double before = cpu_seconds(RUSAGE_SELF);
      bool ok = false;
      std::string failure; // a handshake that ran and failed: no retry
      std::unique_ptr<event::Connector> conn = std::make_unique<event::Connector>(loop);
      std::unique_ptr<tls::Stream> stream;
      const bool probe = phase == 0 && i == 0;
      if (probe) {
        g_group.clear();
        mbedtls_debug_set_threshold(2);
        mbedtls_ssl_conf_dbg((*cfg)->get(), grab_group, nullptr);
      }
      for (int attempt = 0; attempt < 200 && !ok && failure.empty(); ++attempt) {
        std::unique_ptr<event::TcpStream> tcp;
        conn->connect("127.0.0.1", port, 1000, [&](Result<std::unique_ptr<event::TcpStream>> r) {
          if (r) tcp = std::move(*r);
        });
        loop.run();
        if (!tcp) {
          usleep(10000);
          continue;
        }
        stream = std::make_unique<tls::Stream>(*cfg, std::move(tcp));
        if (phase == 1 && session) stream->set_session(*session);
        stream->handshake([&](Status st) {
          ok = st.ok();
          if (!ok) failure = st.message();
          if (ok && phase == 1 && !session) session = stream->session();
          if (stream->resumed() && i > 0) ++resumed;
          stream->close();
        });
        loop.run();
      }
      if (probe) {
        mbedtls_ssl_conf_dbg((*cfg)->get(), nullptr, nullptr);
        mbedtls_debug_set_threshold(0);
        f.group = g_group.empty() ? "?" : g_group;
      }
      if (!ok) {
        std::fprintf(stderr, "handshake failed (%s): %s\n", files.server_crt.c_str(),
                     failure.c_str());
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
        std::exit(1);
      }
      if (i > 0) client_cpu += cpu_seconds(RUSAGE_SELF) - before;
    }
    double server_cpu = 0;
    if (read(fds[0], &server_cpu, sizeof server_cpu) != sizeof server_cpu) std::exit(1);
    close(fds[0]);
    waitpid(pid, nullptr, 0);
    double server_per = server_cpu / rounds * 1000;
    if (phase == 0) {
      if (resumed > 0)
        std::fprintf(stderr, "warning: %d/%d full handshakes resumed\n", resumed, rounds);
      f.client_full_ms = client_cpu / rounds * 1000;
      f.server_full_ms = server_per;
    } else {
      if (resumed < rounds) std::fprintf(stderr, "warning: only %d/%d resumed\n", resumed, rounds);
      f.client_resumed_ms = client_cpu / rounds * 1000;
      f.server_resumed_ms = server_per;
    }
  }
  return f;
}

// Key types of the fleet matrix. `divisor` scales the rounds down for the RSA sizes (by the
// larger of the two handshake keys) to keep the run bounded.
struct KeyType {
  const char* name;
  const char* genpkey; // openssl genpkey arguments
  int divisor;
};
const KeyType kP256{"P-256", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", 1};
const KeyType kRsa2048{"RSA-2048", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", 2};
const KeyType kRsa3072{"RSA-3072", "-algorithm RSA -pkeyopt rsa_keygen_bits:3072", 3};
const KeyType kRsa4096{"RSA-4096", "-algorithm RSA -pkeyopt rsa_keygen_bits:4096", 5};

// Keys and certs for the matrix under `root`: one key per role and type, made once; one CA cert
// per CA key; one leaf cert per (CA, role, key type), signed when first needed.
class Pki {
public:
  explicit Pki(std::string root) : root_(std::move(root)) { sh("mkdir -p " + root_); }

  std::string key(const std::string& role, const KeyType& kt) {
    std::string path = root_ + "/" + role + "-" + kt.name + ".key";
    if (made(path)) sh("openssl genpkey " + std::string(kt.genpkey) + " -out " + path);
    return path;
  }
  std::string ca(const KeyType& kt) {
    std::string path = root_ + "/ca-" + kt.name + ".crt";
    if (made(path))
      sh("openssl req -x509 -new -key " + key("ca", kt) + " -out " + path +
         " -days 2 -subj '/CN=ctrl-exec CA " + kt.name + "'");
    return path;
  }
  std::string leaf(const KeyType& ca_kt, const std::string& role, const KeyType& kt) {
    std::string path = root_ + "/" + role + "-" + kt.name + ".by-" + ca_kt.name + ".crt";
    if (made(path))
      sh("openssl req -new -key " + key(role, kt) + " -subj '/CN=" + role + "' -out " + path +
         ".csr && openssl x509 -req -in " + path + ".csr -CA " + ca(ca_kt) + " -CAkey " +
         key("ca", ca_kt) + " -set_serial 0x" + std::to_string(++serial_) + " -days 2 -out " +
         path);
    return path;
  }

private:
  // True the first time `path` is asked for (the caller then makes it).
  bool made(const std::string& path) {
    if (std::find(done_.begin(), done_.end(), path) != done_.end()) return false;
    done_.push_back(path);
    return true;
  }
  std::string root_;
  std::vector<std::string> done_;
  int serial_ = 0x100;
};

} // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  if (rounds < 1) rounds = 1;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  char tmpl[] = "/tmp/cx-bench-XXXXXX";
  std::string root = mkdtemp(tmpl);

  // 1. One key type for CA, server and client.
  std::printf("mutual-TLS handshake CPU time per side (mbedTLS, TLS 1.2, %d rounds each)\n",
              rounds);
  std::printf("%-10s  %-22s  %10s  %10s\n", "keys", "suite", "client ms", "server ms");
  struct Kind {
    const char* name;
    const char* newkey;
    int rounds;
  };
  const Kind kinds[] = {{"P-256", "-newkey ec -pkeyopt ec_paramgen_curve:P-256", rounds},
                        {"RSA-4096", "-newkey rsa:4096", std::max(rounds / 10, 5)}};
  std::string group;
  for (const auto& k : kinds) {
    std::string dir = root + "/" + k.name;
    sh("mkdir -p " + dir);
    make_certs(dir, k.newkey);
    Figures f = measure(creds_in(dir), k.rounds, k.rounds);
    if (group.empty()) group = f.group;
    std::printf("%-10s  %-22s  %10.3f  %10.3f\n", k.name, "full handshake", f.client_full_ms,
                f.server_full_ms);
    std::printf("%-10s  %-22s  %10.3f  %10.3f\n", k.name, "resumed (ticket)", f.client_resumed_ms,
                f.server_resumed_ms);
  }

  // 2. The ECDHE group: tls::Config's own choice, then each candidate put first on both sides
  // (all-P-256 credentials, full handshakes). The matrix below uses the cheaper one.
  std::printf("\nECDHE group (P-256 credentials, full handshakes, %d rounds): tls::Config "
              "negotiates %s\n",
              rounds, group.c_str());
  std::printf("%-10s  %10s  %10s  %10s\n", "preferred", "client ms", "server ms", "sum ms");
  struct Curve {
    const char* name;
    const mbedtls_ecp_group_id* list;
    double sum;
  };
  Curve curves[] = {{"X25519", kX25519First, 0}, {"P-256", kP256First, 0}};
  for (auto& c : curves) {
    Figures f = measure(creds_in(root + "/P-256"), rounds, 0, c.list);
    c.sum = f.client_full_ms + f.server_full_ms;
    std::printf("%-10s  %10.3f  %10.3f  %10.3f   (negotiated %s)\n", c.name, f.client_full_ms,
                f.server_full_ms, c.sum, f.group.c_str());
  }
  const Curve& cheap = curves[0].sum <= curves[1].sum ? curves[0] : curves[1];

  // 3. The fleet matrix: CA key x dispatcher (TLS client) key x agent (TLS server) key.
  std::printf(
      "\nfleet matrix: CPU ms per FULL mutual-TLS handshake; dispatcher = TLS client, agent "
      "= TLS server;\nECDHE %s first on both sides (the cheaper above); full rounds = %d / divisor "
      "of "
      "the larger RSA key\n(2048: 2, 3072: 3, 4096: 5; at least 5); resumed: %d rounds "
      "(ticket)\n",
      cheap.name, rounds, rounds);
  std::printf("%-9s %-10s %-9s %6s %-9s | %10s %10s %10s | %10s %10s\n", "CA", "dispatcher",
              "agent", "rounds", "ecdhe", "disp ms", "agent ms", "sum ms", "res disp", "res agent");
  Pki pki(root + "/matrix");
  const KeyType* cas[] = {&kP256, &kRsa4096, &kRsa2048, &kRsa3072};
  const KeyType* dispatchers[] = {&kP256, &kRsa4096};
  const KeyType* agents[] = {&kP256, &kRsa2048, &kRsa3072, &kRsa4096};
  for (const KeyType* ca : cas)
    for (const KeyType* d : dispatchers)
      for (const KeyType* a : agents) {
        Creds files{pki.ca(*ca), pki.leaf(*ca, "agent", *a), pki.key("agent", *a),
                    pki.leaf(*ca, "dispatcher", *d), pki.key("dispatcher", *d)};
        int n = std::max(rounds / std::max(d->divisor, a->divisor), std::min(rounds, 5));
        Figures f = measure(files, n, rounds, cheap.list);
        std::printf("%-9s %-10s %-9s %6d %-9s | %10.3f %10.3f %10.3f | %10.3f %10.3f\n", ca->name,
                    d->name, a->name, n, f.group.c_str(), f.client_full_ms, f.server_full_ms,
                    f.client_full_ms + f.server_full_ms, f.client_resumed_ms, f.server_resumed_ms);
      }

  if (argc > 2) {
    std::string stripped = root + "/ctrl-exec.stripped";
    sh(std::string("strip -o ") + stripped + " " + argv[2]);
    struct stat built {
    }, small{};
    stat(argv[2], &built);
    stat(stripped.c_str(), &small);
    std::printf("\nbinary %s: %lld bytes as built, %lld bytes stripped (%.2f MiB)\n", argv[2],
                static_cast<long long>(built.st_size), static_cast<long long>(small.st_size),
                static_cast<double>(small.st_size) / (1 << 20));
  }
  sh("rm -rf " + root);
  return 0;
}
