// Socket addresses: parsing IP literals and printing peers.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>

namespace cx::event {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;

  // Parses an IPv4 or IPv6 literal; nullopt for anything else.
  static std::optional<SockAddr> from_ip(const std::string& ip, int port);
  static SockAddr from_sockaddr(const sockaddr* sa, socklen_t len);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  // The address as text: "127.0.0.1", "::1", or "unknown".
  std::string ip() const;
  int port() const;
};

} // namespace cx::event
