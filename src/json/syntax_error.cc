#include "json/syntax_error.h"

namespace hermod::json {

namespace {

// A recursive-descent recogniser: each function consumes one production or records, once,
// the first offset where the text breaks it.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : s_(text) {}

  SyntaxError Run() {
    SkipSpace();
    if (Value(0)) {
      SkipSpace();
      if (i_ != s_.size()) Fail("the end of the text after the top-level value");
    }
    SyntaxError error;
    if (!failed_) return error;
    error.found = true;
    error.offset = i_;
    error.expected = expected_;
    error.line = 1;
    size_t line_start = 0;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++error.line;
        line_start = k + 1;
      }
    }
    error.column = 1;
    for (size_t k = line_start; k < i_ && k < s_.size(); ++k) {
      if ((static_cast<unsigned char>(s_[k]) & 0xC0) != 0x80) ++error.column;
    }
    return error;
  }

 private:
  bool Fail(const char* expected) {
    failed_ = true;
    expected_ = expected;
    return false;
  }
  bool Consume() {
    ++i_;
    return true;
  }
  bool At(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool IsDigit() const { return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; }
  void SkipSpace() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }

  bool Value(int depth) {
    if (i_ >= s_.size()) return Fail("a value");
    if ((At('{') || At('[')) && depth >= kMaxSyntaxDepth) return Fail("less nesting");
    switch (s_[i_]) {
      case '{':
        return Object(depth + 1);
      case '[':
        return Array(depth + 1);
      case '"':
        return String();
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        if (At('-') || IsDigit()) return Number();
        return Fail("a value");
    }
  }

  bool Object(int depth) {
    ++i_;  // '{'
    SkipSpace();
    if (At('}')) return Consume();
    while (true) {
      if (!At('"')) return Fail("a string key in double quotes");
      if (!String()) return false;
      SkipSpace();
      if (!At(':')) return Fail("':' after the key");
      ++i_;
      SkipSpace();
      if (!Value(depth)) return false;
      SkipSpace();
      if (At('}')) return Consume();
      if (!At(',')) return Fail("',' or '}'");
      ++i_;
      SkipSpace();
    }
  }

  bool Array(int depth) {
    ++i_;  // '['
    SkipSpace();
    if (At(']')) return Consume();
    while (true) {
      if (!Value(depth)) return false;
      SkipSpace();
      if (At(']')) return Consume();
      if (!At(',')) return Fail("',' or ']'");
      ++i_;
      SkipSpace();
    }
  }

  bool String() {
    ++i_;  // '"'
    while (i_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return Consume();
      if (c < 0x20) return Fail("a control character escaped in a string");
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) break;
        const char e = s_[i_];
        if (e == 'u') {
          for (int k = 0; k < 4; ++k) {
            ++i_;
            const bool hex = i_ < s_.size() &&
                             ((s_[i_] >= '0' && s_[i_] <= '9') ||
                              (s_[i_] >= 'a' && s_[i_] <= 'f') || (s_[i_] >= 'A' && s_[i_] <= 'F'));
            if (!hex) return Fail("four hex digits after \\u");
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                   e != 'r' && e != 't') {
          return Fail("an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
        }
      }
      ++i_;
    }
    return Fail("the closing '\"' of the string");
  }

  bool Literal(std::string_view word) {
    for (char c : word) {
      if (!At(c)) return Fail(word.data());  // a literal: NUL-terminated
      ++i_;
    }
    return true;
  }

  bool Number() {
    if (At('-')) ++i_;
    if (At('0')) {
      ++i_;
    } else if (IsDigit()) {
      while (IsDigit()) ++i_;
    } else {
      return Fail("a digit");
    }
    if (At('.')) {
      ++i_;
      if (!IsDigit()) return Fail("a digit after the decimal point");
      while (IsDigit()) ++i_;
    }
    if (At('e') || At('E')) {
      ++i_;
      if (At('+') || At('-')) ++i_;
      if (!IsDigit()) return Fail("a digit in the exponent");
      while (IsDigit()) ++i_;
    }
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
  bool failed_ = false;
  const char* expected_ = "";
};

}  // namespace

SyntaxError FindSyntaxError(std::string_view text) { return Scanner(text).Run(); }

}  // namespace hermod::json
