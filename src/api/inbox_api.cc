#include "api/inbox_api.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <vector>

#include "json/string_writer.h"
#include "proto/inbox_request.h"

namespace hermod::api {

namespace {

using proto::InboxRequest;

bool ParseRequest(std::string_view body, InboxRequest* r) {
  return proto::ParseInboxRequest(body, r, 100000);
}

void Error(std::string& out, uint32_t code, std::string_view message) {
  out += "{\"error\":{\"code\":" + std::to_string(code) + ",\"message\":";
  json::AppendJsonString(out, message);
  out += "}}";
}

void AppendTime(std::string& out, std::string_view key, uint64_t ms) {
  if (ms == 0) return;
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(ms);
}

void AppendEntry(std::string& out, const core::InboxEntry& e, bool with_data) {
  out += "{\"channel\":";
  json::AppendJsonString(out, e.channel);
  out += ",\"offset\":" + std::to_string(e.offset) + ",\"status\":\"";
  out += core::InboxStateName(e.state);
  out += "\",\"deliveries\":" + std::to_string(e.deliveries);
  if (e.state == core::InboxState::kDead) {
    out += ",\"reason\":";
    json::AppendJsonString(out, e.reason);
  }
  AppendTime(out, "published_at", e.published_ms);
  AppendTime(out, "delivered_at", e.delivered_ms);
  if (e.state == core::InboxState::kAcked) AppendTime(out, "acked_at", e.done_ms);
  if (e.state == core::InboxState::kDead) AppendTime(out, "dead_at", e.done_ms);
  AppendTime(out, "expires_at", e.expires_ms);
  if (with_data && !e.data.empty()) {
    out += ",\"data\":";
    out += e.data;
  }
  out += '}';
}

bool Unavailable(core::Inbox* inbox, std::string& out) {
  if (inbox != nullptr) return false;
  Error(out, 108, "not available: no namespace has inbox: true");
  return true;
}

bool NotInbox(core::Inbox* inbox, std::string_view channel, std::string& out) {
  if (inbox->Options(channel) != nullptr) return false;
  Error(out, 107, "bad request: channel is not in an inbox namespace");
  return true;
}

bool Change(core::Inbox* inbox, std::string& body, std::string& out, bool redrive) {
  InboxRequest r;
  if (!ParseRequest(body, &r)) return false;
  if (Unavailable(inbox, out)) return true;
  if (r.channel.empty()) {
    Error(out, 107, "bad request: channel");
    return true;
  }
  if (NotInbox(inbox, r.channel, out)) return true;
  const core::InboxChange change = redrive
                                       ? inbox->Redrive(r.channel, r.offsets, {})
                                       : inbox->store().RemoveDead(r.channel, r.offsets, nullptr);
  if (!change) {
    Error(out, 107, "bad request: " + change.error);
    return true;
  }
  out += "{\"result\":{\"offsets\":[";
  for (size_t i = 0; i < change.changed.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(change.changed[i].offset);
  }
  out += "]}}";
  return true;
}

}  // namespace

bool InboxStatusCall(core::Inbox* inbox, std::string& body, std::string& out) {
  InboxRequest r;
  if (!ParseRequest(body, &r)) return false;
  if (Unavailable(inbox, out)) return true;
  if (r.channel.empty()) {
    Error(out, 107, "bad request: channel");
    return true;
  }
  if (NotInbox(inbox, r.channel, out)) return true;
  inbox->store().ReadThrough(r.channel, r.offsets);
  const core::InboxPosition position = inbox->store().Position(r.channel);
  out += "{\"result\":{\"offset\":" + std::to_string(position.offset) + ",\"epoch\":";
  json::AppendJsonString(out, position.epoch);
  out += ",\"publications\":[";
  bool first = true;
  for (const core::InboxEntry& e : inbox->store().Status(r.channel, r.offsets)) {
    if (!first) out += ',';
    first = false;
    AppendEntry(out, e, false);
  }
  out += "]}}";
  return true;
}

bool DeadLettersCall(core::Inbox* inbox, std::string& body, std::string& out) {
  InboxRequest r;
  if (!ParseRequest(body, &r)) return false;
  if (Unavailable(inbox, out)) return true;
  core::DeadLetterQuery query;
  query.channel = r.channel;
  query.user = r.user;
  query.cursor = r.cursor;
  query.limit = std::clamp<uint64_t>(r.limit, 1, 1000);
  const core::DeadLetterPage page = inbox->store().DeadLetters(query);
  out += "{\"result\":{\"dead_letters\":[";
  for (size_t i = 0; i < page.entries.size(); ++i) {
    if (i > 0) out += ',';
    AppendEntry(out, page.entries[i], true);
  }
  out += "],\"cursor\":\"";
  if (page.next_cursor != 0) out += std::to_string(page.next_cursor);
  out += "\"}}";
  return true;
}

bool DeadLettersRedriveCall(core::Inbox* inbox, std::string& body, std::string& out) {
  return Change(inbox, body, out, true);
}

bool DeadLettersRemoveCall(core::Inbox* inbox, std::string& body, std::string& out) {
  return Change(inbox, body, out, false);
}

void AppendInboxPublished(std::string& out, const core::Inbox::Published& p) {
  switch (p.status) {
    case core::InboxAppended::Status::kOk: {
      // One allocation: this answers every inbox publication.
      out.reserve(out.size() + 64 + 2 * p.position.epoch.size());
      out += "{\"result\":{\"offset\":";
      char digits[24];
      out.append(digits, std::to_chars(digits, digits + sizeof digits, p.position.offset).ptr);
      out += ",\"epoch\":";
      json::AppendJsonString(out, p.position.epoch);
      out += "}}";
      return;
    }
    case core::InboxAppended::Status::kFull:
      Error(out, 111, "too many requests: inbox full (inbox_size), nothing published");
      return;
    case core::InboxAppended::Status::kFailed:
      Error(out, 100, "internal server error: the inbox could not store it");
      return;
  }
}

}  // namespace hermod::api
