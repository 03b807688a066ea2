// What every measured message carries: the publisher's send time (CLOCK_MONOTONIC ns), the
// publisher's id and its sequence number, as a small JSON object padded to the requested size:
//
//   {"hb":[1234567890123,7,42],"p":"xxxxxxxx"}
//
// JSON, so that the same bytes travel as a hermod/Centrifugo publication's `data` unchanged,
// and ASCII, so that text-frame servers (echo, raw broadcast) pass them through. The receiver
// finds the stamp anywhere inside whatever envelope the protocol wrapped around it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hermod::bench {

struct Stamp {
  uint64_t sent_ns = 0;
  uint32_t publisher = 0;
  uint64_t seq = 0;
};

// Replaces out with the payload; it is at least as long as the stamp itself.
void WritePayload(std::string& out, const Stamp& stamp, size_t size);

// Finds and parses the stamp in message; false when there is none.
bool ReadStamp(std::string_view message, Stamp& stamp);

}  // namespace hermod::bench
