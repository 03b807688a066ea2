#include "broker/nats_proto.h"

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

namespace hermod::broker {

namespace {

constexpr std::string_view kCrlf = "\r\n";

bool Blank(char c) { return c == ' ' || c == '\t'; }

// The line's whitespace-separated fields, at most max of them (more: false).
bool Split(std::string_view line, std::string_view* fields, size_t max, size_t* n) {
  *n = 0;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && Blank(line[i])) ++i;
    if (i == line.size()) break;
    size_t j = i;
    while (j < line.size() && !Blank(line[j])) ++j;
    if (*n == max) return false;
    fields[(*n)++] = line.substr(i, j - i);
    i = j;
  }
  return true;
}

bool Number(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

// The verb, case-insensitively (nats-server sends upper case; the protocol allows either).
bool Is(std::string_view word, std::string_view verb) {
  if (word.size() != verb.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    char c = word[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != verb[i]) return false;
  }
  return true;
}

std::string_view Rest(std::string_view line, size_t verb) {
  line.remove_prefix(verb);
  while (!line.empty() && Blank(line.front())) line.remove_prefix(1);
  while (!line.empty() && Blank(line.back())) line.remove_suffix(1);
  return line;
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace

bool NatsParser::Fail(std::string why) {
  failed_ = true;
  error_ = std::move(why);
  return false;
}

void NatsParser::Reset() {
  buffer_.clear();
  need_ = 0;
  error_.clear();
  failed_ = false;
}

bool NatsParser::Feed(std::string_view bytes) {
  if (failed_) return false;
  if (buffer_.empty()) {
    const size_t used = Parse(bytes);
    if (used == std::string_view::npos) return false;
    buffer_.assign(bytes.substr(used));
  } else {
    buffer_.append(bytes);
    if (need_ != 0 && buffer_.size() < need_) return true;  // the payload is still cut
    const size_t used = Parse(buffer_);
    if (used == std::string_view::npos) return false;
    buffer_.erase(0, used);
  }
  // A cut line of max_line bytes may hold its CR already (refused once its LF is there if the
  // line is longer).
  if (need_ == 0 && buffer_.size() > max_line_ + 1) {
    return Fail("a line longer than " + std::to_string(max_line_) + " bytes");
  }
  return true;
}

size_t NatsParser::Parse(std::string_view data) {
  size_t at = 0;
  need_ = 0;
  while (at < data.size()) {
    const std::string_view rest = data.substr(at);
    const size_t end = rest.find(kCrlf);
    if (end == std::string_view::npos) break;
    if (end > max_line_) {
      Fail("a line longer than " + std::to_string(max_line_) + " bytes");
      return std::string_view::npos;
    }
    const size_t used = Message(rest.substr(0, end), rest);
    if (used == std::string_view::npos) return used;
    if (used == 0) break;  // a MSG whose payload is not all here yet
    at += used;
  }
  return at;
}

size_t NatsParser::Message(std::string_view line, std::string_view data) {
  const size_t line_len = line.size() + kCrlf.size();
  std::string_view f[5];
  size_t n = 0;
  const bool fits = Split(line, f, 5, &n);
  if (n == 0) {
    Fail("an empty line");
    return std::string_view::npos;
  }
  if (Is(f[0], "MSG")) {
    // MSG <subject> <sid> [reply] <#bytes>
    uint64_t sid = 0;
    uint64_t len = 0;
    if (!fits || n < 4 || !Number(f[2], &sid) || !Number(f[n - 1], &len)) {
      Fail("a malformed MSG line");
      return std::string_view::npos;
    }
    if (len > max_payload_) {
      Fail("a MSG of " + std::to_string(len) + " bytes, past max_payload " +
           std::to_string(max_payload_));
      return std::string_view::npos;
    }
    const size_t whole = line_len + static_cast<size_t>(len) + kCrlf.size();
    if (data.size() < whole) {
      need_ = whole;
      return 0;
    }
    if (data.substr(whole - kCrlf.size(), kCrlf.size()) != kCrlf) {
      Fail("a MSG payload not followed by CRLF");
      return std::string_view::npos;
    }
    handler_.OnMsg(f[1], sid, n == 5 ? f[3] : std::string_view(),
                   data.substr(line_len, static_cast<size_t>(len)));
    return whole;
  }
  if (Is(f[0], "PING") && n == 1) {
    handler_.OnPing();
  } else if (Is(f[0], "PONG") && n == 1) {
    handler_.OnPong();
  } else if (Is(f[0], "+OK") && n == 1) {
    handler_.OnOk();
  } else if (Is(f[0], "INFO")) {
    handler_.OnInfo(Rest(line, f[0].data() + f[0].size() - line.data()));
  } else if (Is(f[0], "-ERR")) {
    std::string_view text = Rest(line, f[0].data() + f[0].size() - line.data());
    if (text.size() >= 2 && text.front() == '\'' && text.back() == '\'') {
      text = text.substr(1, text.size() - 2);
    }
    handler_.OnErr(text);
  } else {
    Fail("an unknown protocol line");
    return std::string_view::npos;
  }
  return line_len;
}

uint64_t InfoMaxPayload(std::string_view json) {
  constexpr std::string_view kKey = "\"max_payload\"";
  const size_t at = json.find(kKey);
  if (at == std::string_view::npos) return 0;
  std::string_view rest = json.substr(at + kKey.size());
  while (!rest.empty() && (Blank(rest.front()) || rest.front() == '\r' || rest.front() == '\n'))
    rest.remove_prefix(1);
  if (rest.empty() || rest.front() != ':') return 0;
  rest.remove_prefix(1);
  while (!rest.empty() && Blank(rest.front())) rest.remove_prefix(1);
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  uint64_t v = 0;
  if (!Number(rest.substr(0, digits), &v)) return 0;
  return v;
}

bool InfoFlag(std::string_view json, std::string_view key) {
  const size_t at = json.find("\"" + std::string(key) + "\"");
  if (at == std::string_view::npos) return false;
  std::string_view rest = json.substr(at + key.size() + 2);
  while (!rest.empty() && (Blank(rest.front()) || rest.front() == '\r' || rest.front() == '\n'))
    rest.remove_prefix(1);
  if (rest.empty() || rest.front() != ':') return false;
  rest.remove_prefix(1);
  while (!rest.empty() && Blank(rest.front())) rest.remove_prefix(1);
  return rest.starts_with("true");
}

void AppendConnect(std::string& out, const ConnectOptions& o) {
  out += "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"headers\":false,";
  out += "\"lang\":\"C++\",\"version\":\"hermod\",\"protocol\":1,\"name\":";
  AppendJsonString(out, o.name);
  if (!o.user.empty()) {
    out += ",\"user\":";
    AppendJsonString(out, o.user);
    out += ",\"pass\":";
    AppendJsonString(out, o.pass);
  } else if (!o.token.empty()) {
    out += ",\"auth_token\":";
    AppendJsonString(out, o.token);
  }
  out += "}\r\n";
}

void AppendPub(std::string& out, std::string_view subject, std::string_view payload) {
  char len[24];
  const auto r = std::to_chars(len, len + sizeof(len), payload.size());
  out.reserve(out.size() + subject.size() + payload.size() + 32);
  out += "PUB ";
  out += subject;
  out += ' ';
  out.append(len, r.ptr);
  out += kCrlf;
  out += payload;
  out += kCrlf;
}

void AppendSub(std::string& out, std::string_view subject, uint64_t sid) {
  out += "SUB ";
  out += subject;
  out += ' ';
  out += std::to_string(sid);
  out += kCrlf;
}

void AppendUnsub(std::string& out, uint64_t sid) {
  out += "UNSUB ";
  out += std::to_string(sid);
  out += kCrlf;
}

}  // namespace hermod::broker
