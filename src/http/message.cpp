// Header lookup and list-token helpers for the HTTP message types; see message.hpp.
#include "http/message.hpp"

#include "base/strings.hpp"

namespace cx::http {

const std::string* find_header(const Headers& headers, std::string_view lower_name) {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

bool has_token(std::string_view list, std::string_view token) {
  std::string want = to_lower(token);
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    if (to_lower(trim(list.substr(start, comma - start))) == want) return true;
    start = comma + 1;
  }
  return false;
}

bool Request::wants_keep_alive() const {
  const std::string* connection = header("connection");
  return connection != nullptr && has_token(*connection, "keep-alive");
}

} // namespace cx::http
