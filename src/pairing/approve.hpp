// Approving and denying queued pairing requests (dispatcher-and-api §4.10, §4.11, agent-and-wire
// §5.5): shared by `ced approve`/`ced deny` and the interactive prompt of pairing-mode.
#pragma once

#include <optional>
#include <string>

#include "base/status.hpp"
#include "conf/dispatcher.hpp"
#include "state/pairing_queue.hpp"

namespace cx::pairing {

// Where approve finds its inputs. Built from the (leniently loaded) dispatcher config.
struct ApproveContext {
  std::string ca_dir;        // the CA directory (ca_dir, default paths::dispatcher_etc())
  std::string cert_path;     // the served dispatcher cert, for dispatcher_serial
  std::string dispatcher_id; // sanitised
  std::string queue_dir;     // paths::pairing_dir()
  std::string registry_dir;  // config registry_dir
};
ApproveContext approve_context(const conf::DispatcherConfig& config);

// Operator overrides from the command line (already validated).
struct ApproveOverrides {
  std::optional<std::string> lookup_by;
  std::optional<std::string> ip;
  std::optional<int> agent_port;
};

// The checks of §4.10 on the override flags; the message of the first that fails, or "".
std::string check_approve_overrides(const ApproveOverrides& o);

struct ApproveOutcome {
  std::string id;
  std::string name;
  std::string lookup_by;
  std::string ip;
  int port = 7443;
  std::string source_ip;
  std::string reverse_dns;
  bool reverse_confirmed = false;
  std::string dispatcher_serial; // "" when the served cert could not be read
};

// Signs the request's CSR (under the ca.serial lock, 825 days), registers the agent, writes
// `<id>.approved` for the listener and logs pair-approve. "No pending request '<id>'" when
// there is none.
Result<ApproveOutcome> approve_request(const ApproveContext& ctx, const std::string& id,
                                       const ApproveOverrides& overrides = {});
// The operator's report of an approval (§4.10), ending in a newline.
std::string format_approval(const ApproveOutcome& o);
// The stderr warning for an approval whose dispatcher serial could not be read.
std::string empty_serial_warning(const std::string& cert_path);

// Writes `<id>.denied`, unlinks the request and logs pair-deny. "No pending request '<id>'".
Status deny_request(const ApproveContext& ctx, const std::string& id);

} // namespace cx::pairing
