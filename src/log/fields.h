// Log lines with fields. spdlog carries one formatted message per line; hermod's JSON format
// (`log_format: json`) also wants the line's detail as members (`"client":"..","code":3000`)
// so that a log pipeline can filter on them without parsing the message. spdlog has no slot
// for that, so `Write` puts the fields in a thread-local for the duration of the call and the
// JSON formatter reads them back (`CurrentFields`). That is sound because hermod's sink formats
// on the calling thread, inside the log call (only the formatted bytes wait for the log writer
// thread, app/logging.cc). The text format
// ignores the fields: its message already says the same for a person.
//
//   log::Write(spdlog::level::info, {{"client", id}, {"code", 3000}}, "client {}: ...", id);
#pragma once

#include <spdlog/spdlog.h>

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>

namespace hermod::log {

// A key and a value that is text (written as a JSON string) or an integer (a JSON number).
// Borrowed: the strings must outlive the log call, which the call's own arguments do.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), text(v) {}
  Field(std::string_view k, const char* v) : key(k), text(v) {}
  template <std::integral T>
  Field(std::string_view k, T v) : key(k), number(static_cast<int64_t>(v)), is_number(true) {}

  std::string_view key;
  std::string_view text;
  int64_t number = 0;
  bool is_number = false;
};

namespace detail {
inline thread_local std::span<const Field> current_fields;
}

// The fields of the line being formatted on this thread; empty outside `Write`.
inline std::span<const Field> CurrentFields() { return detail::current_fields; }

template <typename... Args>
void Write(spdlog::level::level_enum level, std::initializer_list<Field> fields,
           spdlog::format_string_t<Args...> format, Args&&... args) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  const std::span<const Field> outer = detail::current_fields;
  detail::current_fields = std::span<const Field>(fields.begin(), fields.size());
  logger->log(level, format, std::forward<Args>(args)...);
  detail::current_fields = outer;
}

}  // namespace hermod::log
