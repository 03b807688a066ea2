// The unidirectional and fragment parsers on arbitrary bytes (proto/stream_format.h): the
// value splitter, a connect request's wrapping, Last-Event-ID, a push or a subscribe reply as
// fragments, and the query string of /connection/fragments and uni_sse. Each must answer for
// every input, never crash, and keep its promises (checked below).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "json/syntax.h"
#include "proto/stream_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hermod::proto;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t seen = 0;
  ForEachJsonValue(input, [&](std::string_view value) {
    // Every value lies inside the input, in order, and is not empty.
    if (value.empty() || value.data() < input.data() ||
        value.data() + value.size() > input.data() + input.size()) {
      std::abort();
    }
    seen += value.size();
    const UniValue u = ToUni(value);
    if (u.kind == UniValue::kPush) {
      Fragment f;
      if (FragmentOf(u.body, &f)) {
        std::string event;
        AppendFragmentEvent(event, f, "e");
        // An event's data lines never hold a raw newline: one line ends each field.
        if (event.find("\n\n") + 2 != event.size()) std::abort();
      }
    }
    return true;
  });
  if (seen > size) std::abort();
  std::string command;
  if (WrapConnect(input, &command)) {
    // The wrapped command is one JSON value on one line: nothing can follow the connect.
    if (command.find('\n') != std::string::npos || !hermod::json::IsJson(command)) std::abort();
  }
  std::string epoch;
  uint64_t offset = 0;
  if (ParseLastEventId(input, &epoch, &offset)) {
    if (epoch.empty() || epoch.find(':') != std::string::npos) std::abort();
  }
  // A parsed Last-Event-ID of several channels written back parses to the same positions.
  std::vector<StreamPosition> positions;
  const size_t channels = 1 + input.size() % 4;
  if (ParseEventPositions(input, channels, &positions)) {
    if (positions.size() != channels) std::abort();
    std::string id;
    AppendEventPositions(id, positions);
    std::vector<StreamPosition> again;
    if (input.find(',') != std::string_view::npos) {
      if (!ParseEventPositions(id, channels, &again)) std::abort();
      for (size_t i = 0; i < channels; ++i) {
        if (again[i].known != positions[i].known || again[i].epoch != positions[i].epoch ||
            again[i].offset != positions[i].offset) {
          std::abort();
        }
      }
    }
  }
  // With named positions (channels the request did not name): written back, the same.
  std::vector<NamedPosition> named;
  const size_t positional = input.size() % 3;
  if (ParseEventPositions(input, positional, &positions, &named)) {
    std::string id;
    AppendEventPositions(id, positions, named);
    std::vector<StreamPosition> again;
    std::vector<NamedPosition> named_again;
    if (input.find(',') != std::string_view::npos || positional == 0) {
      if (!ParseEventPositions(id, positional, &again, &named_again)) std::abort();
      if (named_again.size() != named.size()) std::abort();
      for (size_t i = 0; i < named.size(); ++i) {
        if (named_again[i].channel != named[i].channel ||
            named_again[i].position.epoch != named[i].position.epoch ||
            named_again[i].position.offset != named[i].position.offset) {
          std::abort();
        }
      }
    }
  }
  SubscribeReplyView reply;
  (void)ParseSubscribeReply(input, &reply);
  std::vector<SubscribeReplyView> subs;
  (void)ParseConnectSubs(input, &subs);
  std::string line;
  AppendJsonLine(line, input);
  if (line.find('\n') != line.size() - 1) std::abort();
  std::string sse;
  AppendSseData(sse, input);
  if (sse.find("\n\n") + 2 != sse.size()) std::abort();
  std::string channel;
  std::string form;
  if (FormPublication(input, &channel, &form)) {
    // The publication's data is one JSON object (what the session publishes verbatim).
    if (channel.empty() || !hermod::json::IsJson(form) || form.front() != '{') std::abort();
  }
  std::vector<std::pair<std::string, std::string>> params;
  (void)hermod::http::ParseQuery(input, &params);
  return 0;
}
