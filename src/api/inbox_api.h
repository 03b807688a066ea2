// The server API of the inboxes (core/inbox.h): `inbox_status`, `dead_letters`,
// `dead_letters_redrive`, `dead_letters_remove`, and the answer of a `publish` to an inbox.
// server_api.cc's table routes the methods here. Each call parses its body, acts, and writes
// Centrifugo's `{"result":...}` or `{"error":...}` into out; false: the body is not the
// method's request (HTTP 400).
#pragma once

#include <string>

#include "core/inbox.h"

namespace hermod::api {

// {channel, offsets?}: each publication's state, count and times (all held when no offsets).
bool InboxStatusCall(core::Inbox* inbox, std::string& body, std::string& out);
// {channel?, user?, cursor?, limit?}: dead letters in the order they died, a page at a time.
bool DeadLettersCall(core::Inbox* inbox, std::string& body, std::string& out);
// {channel, offsets?}: back into the inbox (count reset), or forgotten; all the channel's
// dead letters when no offsets.
bool DeadLettersRedriveCall(core::Inbox* inbox, std::string& body, std::string& out);
bool DeadLettersRemoveCall(core::Inbox* inbox, std::string& body, std::string& out);
// A publish to an inbox: {"result":{offset, epoch}}, or the error (full: 111, failed: 100).
void AppendInboxPublished(std::string& out, const core::Inbox::Published& published);

}  // namespace hermod::api
