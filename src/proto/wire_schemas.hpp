// The JSON bodies of the agent's replies (port 7443) and of the API (port 7445), described once
// (schema.hpp). The agent's replies are the bodies the structs of agent_wire.hpp write; the
// API's bodies are the component schemas of its OpenAPI document, under the names clients of the
// original know, and the e2e tests check every API response against them.
//
// The API passes each agent's reply through into its per-host results, adding host, rtt,
// reported_hostname and state (dispatcher-and-api §5.3-§5.7), so those results take the agent's
// members from the agent's descriptions instead of describing them again:
//   PingReply -> PingResult, RunResult -> RunResult, AsyncReply -> AsyncSubmitResult,
//   CapabilitiesReply -> HostCapabilities, ResultRecord's output -> HostStatus,
// and a script entry of CapabilitiesReply is the API's ScriptEntry as it is.
#pragma once

#include <string_view>
#include <vector>

#include "proto/schema.hpp"

namespace cx::proto {

// The words of the `state` of a per-host result in the API, in the order of engine::HostState,
// which names its states with them.
inline constexpr std::string_view kHostStates[] = {"ok",   "error",  "timeout", "unreachable",
                                                   "busy", "denied", "skipped"};

// The agent's reply bodies. Their names start with "agent." (ScriptEntry aside), so that a $ref
// to one from the API's document would not resolve, and fail its unit test.
struct AgentBodies {
  AgentBodies();

  Definition script_entry;         // ScriptInfo, as CapabilitiesReply lists it
  Definition run_result;           // RunResult: /run sync, and its HTTP-200 refusals
  Definition async_reply;          // AsyncReply: /run async, 202 and 409
  Definition ping_reply;           // PingReply
  Definition capabilities_reply;   // CapabilitiesReply
  Definition result_record;        // ResultRecord, and the 404 {"status":"unknown","reqid":R}
  Definition rotate_reply;         // RotateReply
  Definition renew_reply;          // RenewReply
  Definition renew_complete_reply; // RenewCompleteReply
  Definition error_reply;          // ErrorReply: the 4xx bodies
};
const AgentBodies& agent_bodies();

// The API's request and response bodies, its OpenAPI components, in the order the document
// lists them.
const std::vector<const Definition*>& api_bodies();
// The API body of that component name, or nullptr.
const Definition* find_api_body(std::string_view name);

} // namespace cx::proto
