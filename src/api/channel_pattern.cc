#include "api/channel_pattern.h"

#include <string>

namespace hermod::api {

namespace {

// The index of the `]` that ends the class starting at p[i] == '[', or npos.
size_t ClassEnd(std::string_view p, size_t i) {
  size_t j = i + 1;
  if (j < p.size() && p[j] == '!') ++j;
  if (j < p.size() && p[j] == ']') ++j;  // a leading ] is a member
  for (; j < p.size(); ++j) {
    if (p[j] == '\\') {
      ++j;
      continue;
    }
    if (p[j] == ']') return j;
  }
  return std::string_view::npos;
}

// The index of the `}` that ends the group starting at p[i] == '{', or npos.
size_t GroupEnd(std::string_view p, size_t i) {
  int depth = 0;
  for (size_t j = i; j < p.size(); ++j) {
    if (p[j] == '\\') {
      ++j;
    } else if (p[j] == '[') {
      j = ClassEnd(p, j);
      if (j == std::string_view::npos) return j;
    } else if (p[j] == '{') {
      ++depth;
    } else if (p[j] == '}' && --depth == 0) {
      return j;
    }
  }
  return std::string_view::npos;
}

bool InClass(std::string_view cls, char c) {  // cls: between [ and ], without a leading !
  for (size_t j = 0; j < cls.size(); ++j) {
    char lo = cls[j];
    if (lo == '\\' && j + 1 < cls.size()) lo = cls[++j];
    char hi = lo;
    if (j + 2 < cls.size() && cls[j + 1] == '-') {
      hi = cls[j + 2];
      if (hi == '\\' && j + 3 < cls.size()) {
        hi = cls[j + 3];
        ++j;
      }
      j += 2;
    }
    if (c >= lo && c <= hi) return true;
  }
  return false;
}

struct Matcher {
  size_t steps = 0;

  // Matches pattern p against name n, each from its start; rest is what follows p when p is
  // an alternative inside a group (matched after it).
  bool Match(std::string_view p, std::string_view n, std::string_view rest) {
    if (++steps > ChannelPattern::kMaxSteps) return false;
    while (!p.empty()) {
      switch (p[0]) {
        case '*': {
          p.remove_prefix(1);
          while (!p.empty() && p[0] == '*') p.remove_prefix(1);
          for (size_t k = 0; k <= n.size(); ++k) {
            if (Match(p, n.substr(k), rest)) return true;
            if (steps > ChannelPattern::kMaxSteps) return false;
          }
          return false;
        }
        case '?':
          if (n.empty()) return false;
          p.remove_prefix(1);
          n.remove_prefix(1);
          break;
        case '[': {
          const size_t end = ClassEnd(p, 0);
          if (n.empty() || end == std::string_view::npos) return false;
          std::string_view cls = p.substr(1, end - 1);
          bool negate = !cls.empty() && cls[0] == '!';
          if (negate) cls.remove_prefix(1);
          if (InClass(cls, n[0]) == negate) return false;
          p.remove_prefix(end + 1);
          n.remove_prefix(1);
          break;
        }
        case '{': {
          const size_t end = GroupEnd(p, 0);
          if (end == std::string_view::npos) return false;
          std::string_view body = p.substr(1, end - 1);
          // What follows the group, then the caller's rest: joined so each alternative is
          // followed by both.
          std::string after(p.substr(end + 1));
          after += rest;
          size_t start = 0;
          for (size_t j = 0; j <= body.size(); ++j) {
            bool split = j == body.size();
            if (!split && body[j] == '\\') {
              ++j;
              continue;
            }
            if (!split && (body[j] == '[' || body[j] == '{')) {
              j = body[j] == '[' ? ClassEnd(body, j) : GroupEnd(body, j);
              if (j == std::string_view::npos) return false;
              continue;
            }
            if (split || body[j] == ',') {
              if (Match(body.substr(start, j - start), n, after)) return true;
              start = j + 1;
            }
          }
          return false;
        }
        case '\\':
          if (p.size() < 2 || n.empty() || n[0] != p[1]) return false;
          p.remove_prefix(2);
          n.remove_prefix(1);
          break;
        default:
          if (n.empty() || n[0] != p[0]) return false;
          p.remove_prefix(1);
          n.remove_prefix(1);
      }
    }
    if (!rest.empty()) return Match(rest, n, {});
    return n.empty();
  }
};

}  // namespace

bool ChannelPattern::Valid(std::string_view p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (i + 1 == p.size()) return false;
      ++i;
    } else if (p[i] == '[') {
      i = ClassEnd(p, i);
      if (i == std::string_view::npos) return false;
    } else if (p[i] == '{') {
      size_t end = GroupEnd(p, i);
      if (end == std::string_view::npos || !Valid(p.substr(i + 1, end - i - 1))) return false;
      i = end;
    } else if (p[i] == '}') {
      return false;
    }
  }
  return true;
}

bool ChannelPattern::Matches(std::string_view pattern, std::string_view name) {
  Matcher matcher;
  return matcher.Match(pattern, name, {});
}

}  // namespace hermod::api
