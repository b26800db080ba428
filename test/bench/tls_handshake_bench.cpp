// Benchmark: CPU time per side of a mutual-TLS handshake, full and resumed, for P-256 and
// RSA-4096 credentials, over loopback with the real tls::Stream. The server runs in a forked
// child so each side's CPU time is measured with getrusage on its own process.
//
// Usage: tls-handshake-bench [rounds] [path/to/ctrl-exec]
// (needs the openssl CLI to make throw-away certs; with a binary path it also prints the size
// of that binary, as built and stripped)
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

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

std::shared_ptr<tls::Credentials> load(const std::string& dir, const std::string& leaf) {
  auto c =
      tls::Credentials::load(dir + "/" + leaf + ".crt", dir + "/" + leaf + ".key", dir + "/ca.crt");
  if (!c) {
    std::fprintf(stderr, "%s\n", c.message().c_str());
    std::exit(1);
  }
  return *c;
}

struct Figures {
  double client_full_ms, client_resumed_ms, server_full_ms, server_resumed_ms;
};

// Runs `rounds` full handshakes, then `rounds` resumed ones; returns CPU ms per handshake.
Figures measure(const std::string& dir, int rounds) {
  Figures f{};
  for (int phase = 0; phase < 2; ++phase) {
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
      auto cfg = tls::Config::server(load(dir, "server"), tls::PeerCheck::required);
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
    auto cfg = tls::Config::client(load(dir, "client"), tls::PeerCheck::required);
    if (!cfg) std::exit(1);
    std::optional<tls::Session> session;
    double client_cpu = 0;
    int resumed = 0;
    // Connection 0 warms up (and, in the resumed phase, provides the session).
    for (int i = 0; i <= rounds; ++i) {
      double before = cpu_seconds(RUSAGE_SELF);
      bool ok = false;
      std::unique_ptr<event::Connector> conn = std::make_unique<event::Connector>(loop);
      std::unique_ptr<tls::Stream> stream;
      for (int attempt = 0; attempt < 200 && !ok; ++attempt) {
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
          if (ok && phase == 1 && !session) session = stream->session();
          if (stream->resumed()) ++resumed;
          stream->close();
        });
        loop.run();
      }
      if (!ok) {
        std::fprintf(stderr, "handshake failed\n");
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

} // namespace

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  char tmpl[] = "/tmp/cx-bench-XXXXXX";
  std::string root = mkdtemp(tmpl);
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
  for (const auto& k : kinds) {
    std::string dir = root + "/" + k.name;
    sh("mkdir -p " + dir);
    make_certs(dir, k.newkey);
    Figures f = measure(dir, k.rounds);
    std::printf("%-10s  %-22s  %10.3f  %10.3f\n", k.name, "full handshake", f.client_full_ms,
                f.server_full_ms);
    std::printf("%-10s  %-22s  %10.3f  %10.3f\n", k.name, "resumed (ticket)", f.client_resumed_ms,
                f.server_resumed_ms);
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
