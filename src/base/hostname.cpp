// Host names; see hostname.hpp.
#include "base/hostname.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>

namespace cx {

std::string short_hostname() {
  char buf[HOST_NAME_MAX + 1] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string host_fqdn() {
  static const std::string cached = [] {
    std::string name = short_hostname();
    if (name.find('.') != std::string::npos) return name;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_CANONNAME;
    addrinfo* res = nullptr;
    std::string out = name;
    if (::getaddrinfo(name.c_str(), nullptr, &hints, &res) == 0 && res) {
      if (res->ai_canonname && std::string(res->ai_canonname).find('.') != std::string::npos)
        out = res->ai_canonname;
      ::freeaddrinfo(res);
    }
    return out;
  }();
  return cached;
}

} // namespace cx
