// Centrifugo's delta compression on the wire (its "delta compression in channels"): a
// subscriber that asked for `delta: "fossil"` and was granted it (`delta: true` in the
// subscribe result) gets each publication's data either in full or, flagged `delta: true`,
// as a fossil delta (core/fossil_delta.h) against the data of the publication it got just
// before. In the JSON protocol both are JSON strings (the SDK parses the full text itself,
// so even a full payload is the data's JSON text quoted); in Protobuf both are raw bytes
// (the full one the publication's data as it is, so a delta subscriber's full form is the
// plain push). A delta no shorter than the data, or (JSON) not valid UTF-8, is not sent: the
// full payload goes instead, as Centrifugo does. Binary data (a Protobuf client's, sent to
// plain JSON subscribers as `b64data`) reaches a JSON delta subscriber as the JSON text of
// its base64 string (quoted): the SDK JSON-parses every payload of a delta subscription, so
// the application gets the base64 string, and deltas apply to that text.
//
// These functions rewrite a publication object (PublicationJson's form); the hub's
// PreparedPush holds their results once per publication for every delta subscriber.
#pragma once

#include <string>
#include <string_view>

#include "proto/transport.h"

namespace hermod::proto {

// The publication object a delta subscriber of format gets: a delta against base when base
// is not empty and a delta is worth sending (then *is_delta), else the full data. False when
// publication is not a publication object (the caller then sends it as it is).
bool DeltaPublication(std::string_view publication, std::string_view base, Format format,
                      std::string* out, bool* is_delta);

}  // namespace hermod::proto
