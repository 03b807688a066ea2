#include "payload.h"

#include <charconv>

namespace hermod::bench {

namespace {

constexpr std::string_view kMarker = "{\"hb\":[";

char* PutNumber(char* p, char* end, uint64_t v) { return std::to_chars(p, end, v).ptr; }

bool GetNumber(const char*& p, const char* end, uint64_t& v) {
  auto [next, ec] = std::from_chars(p, end, v);
  if (ec != std::errc() || next == p) return false;
  p = next;
  return true;
}

}  // namespace

void WritePayload(std::string& out, const Stamp& stamp, size_t size) {
  char head[96];
  char* end = head + sizeof(head);
  char* p = head;
  for (char c : kMarker) *p++ = c;
  p = PutNumber(p, end, stamp.sent_ns);
  *p++ = ',';
  p = PutNumber(p, end, stamp.publisher);
  *p++ = ',';
  p = PutNumber(p, end, stamp.seq);
  *p++ = ']';
  size_t stamp_len = static_cast<size_t>(p - head);
  out.assign(head, stamp_len);
  // `,"p":"` + padding + `"}` needs 8 bytes; a smaller remainder just closes the object.
  if (size >= stamp_len + 8) {
    out.append(",\"p\":\"");
    out.append(size - stamp_len - 8, 'x');
    out.append("\"}");
  } else {
    out.push_back('}');
  }
}

bool ReadStamp(std::string_view message, Stamp& stamp) {
  size_t at = message.find(kMarker);
  if (at == std::string_view::npos) return false;
  const char* p = message.data() + at + kMarker.size();
  const char* end = message.data() + message.size();
  uint64_t publisher = 0;
  if (!GetNumber(p, end, stamp.sent_ns) || p == end || *p++ != ',') return false;
  if (!GetNumber(p, end, publisher) || p == end || *p++ != ',') return false;
  if (!GetNumber(p, end, stamp.seq) || p == end || *p != ']') return false;
  stamp.publisher = static_cast<uint32_t>(publisher);
  return true;
}

}  // namespace hermod::bench
