#include "proto/json_syntax.h"

#include <simdjson.h>

#include <bitset>
#include <cstdint>

namespace hermod::proto {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

class Walker {
 public:
  explicit Walker(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool Run() {
    SkipSpace();
    if (!Value()) return false;
    SkipSpace();
    return p_ == end_;
  }

 private:
  // RFC 8259 §2: insignificant whitespace.
  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  bool Number() {
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (IsDigit(*p_)) {
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    return true;
  }

  // §7, at the opening quote. UTF-8 was checked for the whole text first.
  bool String() {
    ++p_;
    while (p_ != end_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c != '\\') {
        ++p_;
        continue;
      }
      ++p_;
      if (p_ == end_) return false;
      switch (*p_) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          ++p_;
          break;
        case 'u':
          if (end_ - p_ < 5 || !IsHex(p_[1]) || !IsHex(p_[2]) || !IsHex(p_[3]) || !IsHex(p_[4])) {
            return false;
          }
          p_ += 5;
          break;
        default:
          return false;
      }
    }
    return false;
  }

  bool Scalar() {
    if (p_ == end_) return false;
    switch (*p_) {
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  // A value, containers included: open_ holds whether each open container is an object.
  bool Value() {
    Stack open;
    while (true) {
      if (p_ == end_) return false;
      if (*p_ == '{' || *p_ == '[') {
        const bool object = *p_ == '{';
        if (open.size() == kMaxJsonDepth) return false;
        open.push_back(object);
        ++p_;
        SkipSpace();
        if (p_ != end_ && *p_ == (object ? '}' : ']')) {
          ++p_;
          open.pop_back();
        } else {
          if (object && !Key()) return false;
          continue;  // the first member's value
        }
      } else if (!Scalar()) {
        return false;
      }
      // After a value: close containers, or go on to the next member.
      while (true) {
        if (open.empty()) return true;
        SkipSpace();
        if (p_ == end_) return false;
        const bool object = open.back();
        if (*p_ == ',') {
          ++p_;
          SkipSpace();
          if (object && !Key()) return false;
          break;  // the next member's value
        }
        if (*p_ != (object ? '}' : ']')) return false;
        ++p_;
        open.pop_back();
      }
    }
  }

  // An object member's name and its colon, leaving p_ at the value.
  bool Key() {
    if (p_ == end_ || *p_ != '"' || !String()) return false;
    SkipSpace();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    SkipSpace();
    return true;
  }

  // The open containers, innermost last: a bit each (object or array), no allocation.
  class Stack {
   public:
    bool empty() const { return depth_ == 0; }
    size_t size() const { return depth_; }
    bool back() const { return bits_[depth_ - 1]; }
    void push_back(bool object) { bits_[depth_++] = object; }
    void pop_back() { --depth_; }

   private:
    std::bitset<kMaxJsonDepth> bits_;
    size_t depth_ = 0;
  };

  const char* p_;
  const char* end_;
};

}  // namespace

bool IsJson(std::string_view text) {
  if (!simdjson::validate_utf8(text.data(), text.size())) return false;
  return Walker(text).Run();
}

}  // namespace hermod::proto
