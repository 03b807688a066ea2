#include "json/syntax.h"

#include <simdjson.h>

#include <bitset>

namespace hermod::json {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Each production consumes its bytes or fails, leaving p_ at the first byte that breaks it
// and expected_ naming what the grammar allows there (only failures write it, so the
// success path pays nothing for the message).
class Walker {
 public:
  explicit Walker(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool Run() {
    SkipSpace();
    if (!Value()) return false;
    SkipSpace();
    return p_ == end_ || Fail("the end of the text after the top-level value");
  }
  const char* position() const { return p_; }
  const char* expected() const { return expected_; }

 private:
  bool Fail(const char* expected) {
    expected_ = expected;
    return false;
  }

  // §2: insignificant whitespace.
  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  // word is a literal (NUL-terminated), so it names itself when the text breaks it.
  bool Literal(std::string_view word) {
    for (char c : word) {
      if (p_ == end_ || *p_ != c) return Fail(word.data());
      ++p_;
    }
    return true;
  }

  // §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  bool Number() {
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return Fail("a digit");
    if (*p_ == '0') {
      ++p_;
    } else if (IsDigit(*p_)) {
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    } else {
      return Fail("a digit");
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Fail("a digit after the decimal point");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return Fail("a digit in the exponent");
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    return true;
  }

  // §7, at the opening quote.
  bool String() {
    ++p_;
    while (p_ != end_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return Fail("a control character escaped in a string");
      if (c != '\\') {
        ++p_;
        continue;
      }
      ++p_;
      if (p_ == end_) break;
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
          for (int k = 0; k < 4; ++k) {
            ++p_;
            if (p_ == end_ || !IsHex(*p_)) return Fail("four hex digits after \\u");
          }
          ++p_;
          break;
        default:
          return Fail("an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
      }
    }
    return Fail("the closing '\"' of the string");
  }

  bool Scalar() {
    if (p_ == end_) return Fail("a value");
    switch (*p_) {
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      case '-':
        return Number();
      default:
        return IsDigit(*p_) ? Number() : Fail("a value");
    }
  }

  // A value, containers included: open holds whether each open container is an object.
  bool Value() {
    Stack open;
    while (true) {
      if (p_ == end_) return Fail("a value");
      if (*p_ == '{' || *p_ == '[') {
        const bool object = *p_ == '{';
        if (open.size() == kMaxJsonDepth) return Fail("less nesting");
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
        const bool object = open.back();
        if (p_ != end_ && *p_ == ',') {
          ++p_;
          SkipSpace();
          if (object && !Key()) return false;
          break;  // the next member's value
        }
        if (p_ == end_ || *p_ != (object ? '}' : ']')) {
          return Fail(object ? "',' or '}'" : "',' or ']'");
        }
        ++p_;
        open.pop_back();
      }
    }
  }

  // An object member's name and its colon, leaving p_ at the value.
  bool Key() {
    if (p_ == end_ || *p_ != '"') return Fail("a string key in double quotes");
    if (!String()) return false;
    SkipSpace();
    if (p_ == end_ || *p_ != ':') return Fail("':' after the key");
    ++p_;
    SkipSpace();
    return true;
  }

  // The open containers, innermost last: a bit each (object or array), no allocation.
  class Stack {
   public:
    size_t size() const { return depth_; }
    bool empty() const { return depth_ == 0; }
    bool back() const { return bits_[depth_ - 1]; }
    void push_back(bool object) { bits_[depth_++] = object; }
    void pop_back() { --depth_; }

   private:
    std::bitset<kMaxJsonDepth> bits_;
    size_t depth_ = 0;
  };

  const char* p_;
  const char* end_;
  const char* expected_ = "";
};

}  // namespace

bool IsJson(std::string_view text) {
  if (!simdjson::validate_utf8(text.data(), text.size())) return false;
  return Walker(text).Run();
}

SyntaxError FindSyntaxError(std::string_view text) {
  Walker walker(text);
  SyntaxError error;
  if (walker.Run()) return error;
  error.found = true;
  error.offset = static_cast<size_t>(walker.position() - text.data());
  error.expected = walker.expected();
  error.line = 1;
  size_t line_start = 0;
  for (size_t k = 0; k < error.offset; ++k) {
    if (text[k] == '\n') {
      ++error.line;
      line_start = k + 1;
    }
  }
  error.column = 1;
  for (size_t k = line_start; k < error.offset; ++k) {
    if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++error.column;
  }
  return error;
}

}  // namespace hermod::json
