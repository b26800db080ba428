// Reverse DNS with forward confirmation; see reverse_dns.hpp.
#include "pairing/reverse_dns.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <memory>

#include "event/address.hpp"

namespace cx::pairing {

ReverseDns lookup_reverse_dns_blocking(const std::string& ip) {
  ReverseDns out;
  auto addr = event::SockAddr::from_ip(ip, 0);
  if (!addr) return out;
  char host[NI_MAXHOST];
  if (::getnameinfo(addr->get(), addr->len, host, sizeof host, nullptr, 0, NI_NAMEREQD) != 0)
    return out;
  out.name = host;
  addrinfo hints{};
  hints.ai_family = addr->get()->sa_family;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host, nullptr, &hints, &res) != 0) return out;
  for (addrinfo* p = res; p; p = p->ai_next) {
    if (event::SockAddr::from_sockaddr(p->ai_addr, p->ai_addrlen).ip() == addr->ip()) {
      out.confirmed = true;
      break;
    }
  }
  ::freeaddrinfo(res);
  return out;
}

void lookup_reverse_dns(event::Loop& loop, const std::string& ip, uint64_t timeout_ms,
                        std::function<void(ReverseDns)> done) {
  // Shared by the worker, its completion and the deadline; whichever of the last two comes
  // first answers, and the other finds `done` empty.
  struct State {
    ReverseDns result;
    std::function<void(ReverseDns)> done;
    std::unique_ptr<event::Timer> timer;
    void answer(ReverseDns r) {
      timer.reset();
      if (auto fn = std::move(done)) {
        done = nullptr;
        fn(std::move(r));
      }
    }
  };
  auto st = std::make_shared<State>();
  st->done = std::move(done);
  st->timer = std::make_unique<event::Timer>(loop);
  st->timer->start(timeout_ms, [st] { st->answer({}); });
  event::queue_work(
      loop, [st, ip] { st->result = lookup_reverse_dns_blocking(ip); },
      [st] { st->answer(st->result); });
}

} // namespace cx::pairing
